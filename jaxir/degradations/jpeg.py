"""JPEG compression artefacts (host side).

JPEG needs a real codec, which XLA does not have, so this runs on the host with
Pillow on numpy arrays and cannot be jitted or used inside `synthesize`; call it
from a data pipeline (e.g. a Grain map transform) before batches reach the device.
"""

from __future__ import annotations

import io
import numbers
from typing import Sequence

import numpy as np
from PIL import Image


def _compress_one(image: np.ndarray, quality: int) -> np.ndarray:
    if not (isinstance(quality, numbers.Integral) and 1 <= quality <= 100):
        raise ValueError(f"JPEG quality must be an int in [1, 100], got {quality!r}")
    grey = image.shape[-1] == 1
    pixels = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    pil = Image.fromarray(pixels[..., 0] if grey else pixels)  # uint8 2-D -> "L", (H, W, 3) -> "RGB"
    buffer = io.BytesIO()
    # Pillow's defaults: 4:2:0 chroma subsampling and the standard IJG quantisation tables.
    pil.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer), dtype=np.float32) / 255.0
    return decoded[..., None] if grey else decoded


def jpeg_compress_np(img: np.ndarray, quality: int | Sequence[int]) -> np.ndarray:
    """JPEG-encodes and decodes images with Pillow (host-side numpy; not jit-able).

    Args:
      img: (H, W, C) or (N, H, W, C) float in [0, 1] with C in {1, 3}; values are
        clipped and rounded to 8 bits before encoding, as when saving a file.
      quality: JPEG quality in [1, 100], one for all images or one per image.

    Returns:
      float32 array of the same shape in [0, 1] (multiples of 1/255).
    """
    img = np.asarray(img, dtype=np.float32)
    if img.ndim not in (3, 4) or img.shape[-1] not in (1, 3):
        raise ValueError(f"expected (H, W, C) or (N, H, W, C) with C in {{1, 3}}, got shape {img.shape}")
    if img.ndim == 3:
        if not isinstance(quality, numbers.Integral):
            raise ValueError(f"a single image takes one int quality, got {quality!r}")
        return _compress_one(img, quality)
    qualities = [quality] * img.shape[0] if isinstance(quality, numbers.Integral) else list(quality)
    if len(qualities) != img.shape[0]:
        raise ValueError(f"got {len(qualities)} qualities for {img.shape[0]} images")
    return np.stack([_compress_one(image, q) for image, q in zip(img, qualities)])
