"""Reading and writing images and converted weights."""
from __future__ import annotations

import json
import pathlib

import numpy as np
from PIL import Image, UnidentifiedImageError
from flax import serialization

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: str | pathlib.Path) -> np.ndarray:
    """RGB float32 HWC in [0, 1]; 16-bit PNGs keep their precision."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            if img.mode in ("I;16", "I;16B", "I"):
                return np.repeat((np.asarray(img, np.float32) / 65535.0)[..., None], 3, axis=-1)
            return np.asarray(img.convert("RGB"), np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


def write_image(path: str | pathlib.Path, image: np.ndarray) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    Image.fromarray(array).save(path)


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
