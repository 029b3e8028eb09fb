"""Reading and writing images and converted weights."""
from __future__ import annotations

import json
import pathlib

import cv2
import numpy as np
from flax import serialization
from PIL import Image

from data_pipelines.sources import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """RGB float32 HWC in [0, 1]: 8-bit files / 255, 16-bit files / 65535 (16-bit PNGs via OpenCV).

    Raises FileNotFoundError for a missing file, ValueError for one that cannot be decoded.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    image = load_image(path)
    scale = np.float32(65535.0 if image.dtype == np.uint16 else 255.0)
    return image.astype(np.float32) / scale


def write_image(path: str | pathlib.Path, image: np.ndarray, *, bit_depth: int = 8) -> None:
    """Writes an HWC (or HW) float image in [0, 1], rounded to 8 bits, or to 16 bits as a PNG (OpenCV)."""
    path = pathlib.Path(path)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if bit_depth == 16 and path.suffix.lower() != ".png":
        raise ValueError(f"16-bit images are written as PNG only, got {path.name}")
    peak = 2**bit_depth - 1
    array = np.clip(np.round(np.asarray(image, np.float32) * peak), 0, peak)
    path.parent.mkdir(parents=True, exist_ok=True)
    if bit_depth == 8:
        Image.fromarray(array.astype(np.uint8)).save(path)
        return
    array = array.astype(np.uint16)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 3 and array.shape[-1] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR order
    elif array.ndim != 2:
        raise ValueError(f"expected a grey or RGB image, got shape {array.shape}")
    encoded, data = cv2.imencode(".png", array)
    if not encoded:
        raise ValueError(f"OpenCV could not encode a 16-bit PNG of shape {array.shape}")
    path.write_bytes(data.tobytes())


def list_images(path: str | pathlib.Path) -> list[pathlib.Path]:
    path = pathlib.Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path}")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


def save_weights(path: str | pathlib.Path, model_name: str, model_kwargs: dict, variables) -> None:
    """A converted model: msgpack of the variables, with the model name and kwargs beside them."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": model_name, "kwargs": json.dumps(model_kwargs), "variables": variables}
    path.write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(payload)))


def load_weights(path: str | pathlib.Path) -> tuple[str, dict, dict]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        return payload["model"], json.loads(payload["kwargs"]), payload["variables"]
    except Exception as err:  # msgpack raises several unrelated types
        raise ValueError(f"{path} is not a jaxir weights file (from `jaxir convert`): {err}") from None
