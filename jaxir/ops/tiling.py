"""Tiled inference: restore an image of any size in bounded memory.

The image is cut into overlapping tiles of a fixed size (so one compiled function
serves every tile), each restored, and blended back. Across an overlap the blend weight is
zero for the outer quarter next to each tile's edge and ramps linearly in between,
so seams vanish and no pixel is taken from near a tile border: for a fully
convolutional model whose receptive-field radius is at most overlap // 4, the
result equals the untiled output exactly.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _blend_ramp(tile: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        margin = overlap // 4
        inner = overlap - 2 * margin
        edge = np.concatenate([
            np.zeros(margin, np.float32),
            (np.arange(inner, dtype=np.float32) + 1.0) / (inner + 1.0),
            np.ones(margin, np.float32),
        ])
        if not at_start:
            ramp[:overlap] = edge
        if not at_end:
            ramp[-overlap:] = edge[::-1]
    return ramp


def tiled_apply(fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray, tile: int, overlap: int,
                out_channels: int | None = None) -> np.ndarray:
    """Apply `fn` (NHWC batch of one tile -> same-size NHWC) over `image` (HWC) tile by tile."""
    if tile <= 0 or overlap < 0 or overlap >= tile:
        raise ValueError(f"need tile > overlap >= 0, got tile={tile}, overlap={overlap}")
    h, w, c = image.shape
    th, tw = min(tile, h), min(tile, w)
    rows, cols = tile_starts(h, th, th - overlap), tile_starts(w, tw, tw - overlap)
    out, weight = None, np.zeros((h, w, 1), np.float32)
    for i, y in enumerate(rows):
        wy = _blend_ramp(th, min(overlap, th - 1), i == 0, i == len(rows) - 1)
        for j, x in enumerate(cols):
            wx = _blend_ramp(tw, min(overlap, tw - 1), j == 0, j == len(cols) - 1)
            restored = np.asarray(fn(image[None, y:y + th, x:x + tw]))[0]
            if out is None:
                out = np.zeros((h, w, out_channels or restored.shape[-1]), np.float32)
            wt = (wy[:, None] * wx[None, :])[..., None]
            out[y:y + th, x:x + tw] += restored * wt
            weight[y:y + th, x:x + tw] += wt
    return out / weight
