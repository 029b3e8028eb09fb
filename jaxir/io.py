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


# ----------------------------------------------------------------------------
# Full-fidelity pixels for `jaxir restore`: bit depth, grey/colour, alpha and orientation kept.

# EXIF orientation tag value -> numpy transform giving the upright image (as PIL.ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}
_EXIF_ORIENTATION = 0x0112


def apply_orientation(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """The upright view of HWC pixels stored with EXIF `orientation` (1..8; None or 1: as stored)."""
    transform = _ORIENTATIONS.get(int(orientation or 1))
    return np.ascontiguousarray(transform(pixels) if transform else pixels)


def pil_to_pixels(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """HWC uint8/uint16 pixels of a PIL image in its own layout (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).

    Returns the pixels and notes on what could not be kept (e.g. CMYK becomes RGB).
    """
    notes: list[str] = []
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image)
        if grey.min(initial=0) < 0 or grey.max(initial=0) > 65535:
            raise ValueError("32-bit integer images are not supported")
        return grey.astype(np.uint16)[..., None], notes
    if mode == "F":
        raise ValueError("32-bit float images are not supported")
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode)
    elif mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode == "PA":
        image, mode = image.convert("RGBA"), "RGBA"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        notes.append(f"{mode} image converted to RGB")
        image, mode = image.convert("RGB"), "RGB"
    return np.atleast_3d(np.asarray(image, np.uint8)).copy(), notes


def read_pixels(path: str | pathlib.Path) -> tuple[np.ndarray, list[str]]:
    """An image file's pixels as stored (uint8 or uint16, HWC with 1-4 channels), EXIF orientation applied."""
    from data_pipelines.sources import decode_png16, is_png16

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            orientation = image.getexif().get(_EXIF_ORIENTATION)
            data = path.read_bytes()
            if is_png16(data[:32]):
                pixels, notes = decode_png16(data), []
            else:
                image.load()
                pixels, notes = pil_to_pixels(image)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None
    return apply_orientation(pixels, orientation), notes


_LOSSY_NO_ALPHA = (".jpg", ".jpeg")
_SIXTEEN_BIT = (".png", ".tif", ".tiff")


def write_pixels(path: str | pathlib.Path, pixels: np.ndarray) -> list[str]:
    """Writes HWC uint8/uint16 pixels (1-4 channels); returns notes on what the format could not keep."""
    path = pathlib.Path(path)
    pixels = np.atleast_3d(pixels)
    suffix = path.suffix.lower()
    notes: list[str] = []
    if pixels.shape[-1] in (2, 4) and suffix in _LOSSY_NO_ALPHA:
        notes.append(f"{suffix} has no alpha channel: alpha dropped (write a .png to keep it)")
        pixels = pixels[..., :-1]
    if pixels.dtype == np.uint16 and suffix not in _SIXTEEN_BIT:
        notes.append(f"{suffix} holds 8 bits per sample: written at 8 bits (write a .png or .tif to keep 16)")
        pixels = np.round(pixels.astype(np.float64) / 257.0).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.dtype == np.uint8:
        mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
        Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode).save(path)
        return notes
    if pixels.shape[-1] == 2:
        notes.append("16-bit grey+alpha is written as 16-bit RGBA (OpenCV has no grey+alpha)")
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1:]], axis=-1)
    order = {1: None, 3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}[pixels.shape[-1]]
    array = pixels[..., 0] if order is None else cv2.cvtColor(np.ascontiguousarray(pixels), order)
    encoded, data = cv2.imencode(suffix, array)
    if not encoded:
        raise ValueError(f"OpenCV could not encode {path.name} ({pixels.shape}, {pixels.dtype})")
    path.write_bytes(data.tobytes())
    return notes
