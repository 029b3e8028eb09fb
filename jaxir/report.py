"""`jaxir report RUN_DIR`: a training run as pictures.

Reads the run's `metrics.jsonl` and draws, with matplotlib, `curves.png`: the
loss and each loss term, eval PSNR and SSIM (beside the degraded input's), and
the learning rate, against the step. The sample grids the loop saves at every
eval (`samples/step_<step>.png`: degraded | restored | clean) are stacked into
`samples_over_time.png`, one panel per eval, so the restorations can be seen improving.
"""
from __future__ import annotations

import pathlib
import re
from collections.abc import Sequence

import numpy as np

from jaxir.train.loop import SAMPLES_DIR, SAMPLES_FILE
from jaxir.train.metric_writers import METRICS_FILE, read_metrics

_STEP_FILE = re.compile(r"step_(\d+)\.png$")


def _series(records: Sequence[dict], split: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(r["step"], r[key]) for r in records
              if r.get("split") == split and isinstance(r.get(key), (int, float))]
    if not points:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*points)
    return np.asarray(steps, np.float64), np.asarray(values, np.float64)


def plot_curves(records: Sequence[dict], path: str | pathlib.Path, title: str = "") -> pathlib.Path:
    """Loss terms, eval PSNR/SSIM and learning rate against the step, as one PNG."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    axes = figure.subplots(2, 2)
    loss_keys = sorted({k for r in records if r.get("split") == "train" for k in r
                        if k == "loss" or k.startswith("loss/")})
    panels = [
        (axes[0, 0], "training loss", [("train", k, k) for k in loss_keys]),
        (axes[0, 1], "eval PSNR (dB)", [("eval", "psnr", "restored"), ("eval", "input_psnr", "degraded input")]),
        (axes[1, 0], "eval SSIM", [("eval", "ssim", "restored"), ("eval", "input_ssim", "degraded input")]),
        (axes[1, 1], "learning rate", [("train", "lr", "lr")]),
    ]
    for ax, label, lines in panels:
        drawn = 0
        for split, key, name in lines:
            steps, values = _series(records, split, key)
            if len(steps):
                style = "--" if key.startswith("input_") else "-"
                ax.plot(steps, values, style, marker="o" if split == "eval" else None, markersize=3, label=name)
                drawn += 1
        ax.set_title(label)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    if loss_keys and all(v > 0 for k in loss_keys for v in _series(records, "train", k)[1]):
        axes[0, 0].set_yscale("log")
    if title:
        figure.suptitle(title)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def sample_grids(run_dir: str | pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """(step, path) of the sample grids a run saved, in step order."""
    folder = pathlib.Path(run_dir) / SAMPLES_DIR
    grids = []
    for path in folder.glob("step_*.png") if folder.is_dir() else ():
        match = _STEP_FILE.search(path.name)
        if match:
            grids.append((int(match.group(1)), path))
    return sorted(grids)


def plot_samples(grids: Sequence[tuple[int, pathlib.Path]], path: str | pathlib.Path) -> pathlib.Path:
    """The sample grids of successive evals, one titled panel each, top to bottom."""
    from matplotlib.figure import Figure
    from PIL import Image

    if not grids:
        raise ValueError("no sample grids to draw")
    images = [np.asarray(Image.open(p).convert("RGB")) for _, p in grids]
    width = 9.0
    heights = [width * im.shape[0] / im.shape[1] for im in images]
    figure = Figure(figsize=(width, sum(heights) + 0.4 * len(images)), layout="constrained")
    axes = figure.subplots(len(images), 1, squeeze=False)[:, 0]
    for ax, (step, _), image in zip(axes, grids, images):
        ax.imshow(image)
        ax.set_title(f"step {step}: degraded | restored | clean", fontsize="small")
        ax.set_axis_off()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def write_report(run_dir: str | pathlib.Path, out_dir: str | pathlib.Path | None = None) -> list[pathlib.Path]:
    """Draws a run's curves and sample grids into out_dir (default RUN_DIR/report); returns the files."""
    run_dir = pathlib.Path(run_dir)
    if not (run_dir / METRICS_FILE).is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir} (is it a `jaxir train` workdir?)")
    out = pathlib.Path(out_dir) if out_dir else run_dir / "report"
    records = read_metrics(run_dir)
    if not records:
        raise ValueError(f"{run_dir / METRICS_FILE} is empty")
    written = [plot_curves(records, out / "curves.png", title=str(run_dir))]
    grids = sample_grids(run_dir)
    if not grids and (run_dir / SAMPLES_FILE).is_file():  # runs from before per-eval grids
        last = max(r["step"] for r in records)
        grids = [(last, run_dir / SAMPLES_FILE)]
    if grids:
        written.append(plot_samples(grids, out / "samples_over_time.png"))
    return written
