"""Evaluation over a whole eval set, and the sample grid PNG (degraded | restored | clean)."""
from __future__ import annotations

import pathlib
from typing import Any, Callable, Iterable

import jax
import numpy as np
from jax.sharding import Mesh

from jaxir.train import sharding as shd


def _device_fields(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Numeric fields the step reads ('name' strings and the 'hw' bookkeeping stay on the host)."""
    return {k: v for k, v in batch.items() if k != "hw" and np.asarray(v).dtype.kind in "biuf"}


def _pad_batch(batch: dict[str, np.ndarray], multiple: int) -> dict[str, np.ndarray]:
    """Repeat the last record so the batch splits evenly over devices; the copies are dropped after."""
    n = len(batch["target"])
    extra = -n % multiple
    if extra == 0:
        return batch
    return {k: np.concatenate([v, np.repeat(v[-1:], extra, axis=0)]) for k, v in batch.items()}


def run_eval(eval_step: Callable, variables: Any, dataset: Iterable[dict], mesh: Mesh,
             num_samples: int = 0) -> tuple[dict[str, float], list[dict[str, np.ndarray]]]:
    """Mean per-image scores over the eval set, and the first `num_samples` (degraded, restored, clean)."""
    totals: dict[str, float] = {}
    count = 0
    samples: list[dict[str, np.ndarray]] = []
    devices = mesh.shape[shd.DATA_AXIS]
    for batch in dataset:
        fields = _device_fields(batch)
        n = len(fields["target"])
        scores, images = eval_step(variables, shd.shard_full_batch(_pad_batch(fields, devices), mesh))
        scores = jax.device_get(scores)
        for name, values in scores.items():
            totals[name] = totals.get(name, 0.0) + float(np.sum(np.asarray(values, np.float64)[:n]))
        count += n
        for i in range(min(n, num_samples - len(samples))):
            samples.append({"degraded": np.asarray(images["degraded"][i]),
                            "restored": np.asarray(images["restored"][i]),
                            "clean": np.asarray(batch["target"][i])})
    if count == 0:
        raise ValueError("the eval set is empty")
    means = {name: total / count for name, total in totals.items()}
    if "psnr" in means and "input_psnr" in means:
        means["psnr_gain"] = means["psnr"] - means["input_psnr"]
    return means, samples


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[top:top + size, left:left + size]


def save_sample_grid(samples: list[dict[str, np.ndarray]], path: str | pathlib.Path, crop: int = 256) -> None:
    """One row per sample: degraded | restored | clean, centre crops of at most `crop` pixels."""
    from PIL import Image

    if not samples:
        raise ValueError("no samples to draw")
    rows = []
    for sample in samples:
        tiles = [_center_crop(sample[k][..., :3], crop) for k in ("degraded", "restored", "clean")]
        h = min(t.shape[0] for t in tiles)
        w = min(t.shape[1] for t in tiles)
        rows.append(np.concatenate([t[:h, :w] for t in tiles], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    grid = np.concatenate(rows, axis=0)
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(np.clip(grid, 0, 1) * 255).astype(np.uint8)).save(path)
