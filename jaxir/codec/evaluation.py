"""Rate–distortion evaluation of a learned codec: real bitstreams, bpp beside PSNR/SSIM, and the RD curve.

`evaluate_codec(config, workdir_or_weights)` codes every image of config.data.eval (degraded as the config
says) to a real .bin with `jaxir.codec.bitstream.Coder`, decodes it and scores the decoded (restored) image
against the clean one: bpp is the actual file size × 8 / pixels, not an estimate. `jaxir eval` calls it for
codec models; with `--rd-curve OUT.png` each evaluated point (one per λ) is added to OUT.json beside the PNG
and the curve of all points is redrawn.
"""
from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np


def is_codec(model) -> bool:
    from jaxir.codec.hyperprior import MeanScaleHyperprior

    return isinstance(model, MeanScaleHyperprior)


def load_codec(config, workdir_or_weights):
    """(model, variables, registered name) of a training workdir (with its config) or a weights file."""
    from jaxir import registry

    path = pathlib.Path(workdir_or_weights)
    if path.is_file():
        from jaxir.io import load_weights

        name, kwargs, variables = load_weights(path)
        return registry.build_model(name, **kwargs), variables, name
    from jaxir.train.loop import load_inference_variables

    name = config.model.name
    model = registry.build_model(name, **dict(config.model.get("kwargs", {})))
    return model, load_inference_variables(config, path), name


def evaluate_codec(config, workdir_or_weights, model=None, variables=None, name=None) -> dict[str, float]:
    """Mean psnr, ssim, bpp (real bitstreams), input_psnr and the number of images over config.data.eval."""
    from jaxir import metrics
    from jaxir.codec.bitstream import Coder, bits_per_pixel
    from jaxir.train.data import make_eval_dataset
    from jaxir.train.step import degraded_input

    if model is None:
        model, variables, name = load_codec(config, workdir_or_weights)
    dataset = make_eval_dataset(config.data, 1)
    if dataset is None:
        raise ValueError("config.data.eval is not set: nothing to evaluate on")
    coder = Coder(model, variables, name)
    degradation = [dict(d.to_dict() if hasattr(d, "to_dict") else d) for d in config.data.get("degradation") or []]
    totals: dict[str, float] = {}
    count = 0
    for batch in dataset:
        fields = {k: jnp.asarray(v) for k, v in batch.items() if k != "hw" and np.asarray(v).dtype.kind in "biuf"}
        if degradation or "input" in fields:
            inputs = np.asarray(degraded_input(fields, degradation, None), np.float32)
        else:  # the 'clean' setting: the codec compresses the clean image itself
            inputs = np.asarray(fields["target"], np.float32)
        for i, target in enumerate(np.asarray(batch["target"], np.float32)):
            h, w = target.shape[:2]
            data = coder.compress(np.clip(inputs[i, :h, :w], 0.0, 1.0))
            restored = np.clip(coder.decompress(data), 0.0, 1.0)
            scores = {
                "psnr": metrics.psnr(restored[None], target[None]),
                "ssim": metrics.ssim(restored[None], target[None]),
                "input_psnr": metrics.psnr(np.clip(inputs[i:i + 1, :h, :w], 0, 1), target[None]),
                "bpp": bits_per_pixel(data, h, w),
            }
            for k, v in scores.items():
                totals[k] = totals.get(k, 0.0) + float(np.mean(np.asarray(v)))
            count += 1
    if not count:
        raise ValueError("the eval set is empty")
    means = {k: v / count for k, v in totals.items()}
    means["images"] = count
    return means


def add_rd_point(png: str | pathlib.Path, label: str, scores: dict[str, float]) -> pathlib.Path:
    """Record (bpp, PSNR, SSIM) under `label` in PNG's .json sidecar and redraw the RD curve at PNG."""
    png = pathlib.Path(png)
    store = png.with_suffix(".json")
    points = json.loads(store.read_text()) if store.exists() else {}
    points[label] = {k: float(scores[k]) for k in ("bpp", "psnr", "ssim")}
    png.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(points, indent=2, sort_keys=True))
    draw_rd_curve(points, png)
    return png


def draw_rd_curve(points: dict[str, dict[str, float]], png: str | pathlib.Path) -> None:
    """PSNR and SSIM against bpp, points joined in bpp order, each labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(points.items(), key=lambda item: item[1]["bpp"])
    bpp = [p["bpp"] for _, p in ordered]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, unit in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM")):
        values = [p[key] for _, p in ordered]
        ax.plot(bpp, values, "o-")
        for (label, _), x, y in zip(ordered, bpp, values):
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
    fig.suptitle("rate–distortion (decoded and restored vs clean)")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
