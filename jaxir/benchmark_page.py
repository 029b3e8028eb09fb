"""`jaxir eval --benchmark ... --report DIR`: the results as an HTML page.

The page holds the results table beside the paper's numbers (a set whose size
differs from the protocol's is marked not comparable), then one row per image
with thumbnails of the model input, the restoration and the ground truth and
their scores, sorted worst first: where a port differs from the paper, this is
where to look.

    page = BenchmarkPage("report/")
    result = evaluate_benchmark(..., on_image=page.add_image)
    page.write(result)
"""
from __future__ import annotations

import html
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxir.evaluation import _METRIC_LABELS, BenchmarkResult, _fmt, _paper_average

THUMBNAIL = 192
# Lower is better for these; the page sorts by PSNR where scored, else by the first metric.
_LOWER_IS_BETTER = {"mae", "lpips", "niqe", "fid", "kid"}


def _thumbnail(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 HWC (RGB or grey) of at most `side` pixels; a 6-channel dual-pixel input shows its left view."""
    from PIL import Image

    image = np.asarray(image, np.float32)
    if image.ndim == 3 and image.shape[-1] not in (1, 3):
        image = image[..., :3]
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "image"


class BenchmarkPage:
    """Collects per-image thumbnails during a benchmark run and writes `index.html` beside them."""

    def __init__(self, out_dir: str | pathlib.Path, thumbnail: int = THUMBNAIL):
        self.out = pathlib.Path(out_dir).expanduser()
        self.thumbnail = thumbnail
        self.images: list[dict[str, Any]] = []

    def add_image(self, set_name: str, name: str, model_input: np.ndarray, restored: np.ndarray,
                  target: np.ndarray, scores: Mapping[str, float]) -> None:
        """An `evaluation.ImageHook`: saves the three thumbnails of one image."""
        from PIL import Image

        folder = self.out / "images" / _slug(set_name)
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{len(self.images):05d}_{_slug(name)}"
        files = {}
        for kind, image in (("input", model_input), ("restored", restored), ("target", target)):
            path = folder / f"{stem}_{kind}.png"
            Image.fromarray(_thumbnail(image, self.thumbnail)).save(path)
            files[kind] = path.relative_to(self.out).as_posix()
        self.images.append({"set": set_name, "name": name, "files": files,
                            "scores": {k: v for k, v in scores.items() if k != "name"}})

    def write(self, result: BenchmarkResult, paper: bool = True) -> pathlib.Path:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "index.html"
        path.write_text(render(result, self.images, paper))
        return path


def _sort_key(metrics: tuple[str, ...]):
    metric = "psnr" if "psnr" in metrics else metrics[0]
    sign = -1.0 if metric in _LOWER_IS_BETTER else 1.0

    def key(row: Mapping[str, Any]) -> float:
        value = row["scores"].get(metric, float("nan"))
        return float("inf") if not np.isfinite(value) else sign * value

    return key, metric


def render(result: BenchmarkResult, images: list[dict[str, Any]], paper: bool = True) -> str:
    b = result.benchmark
    e = html.escape
    metrics = result.metrics
    shown = result.paper if paper else ()
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(b.name)}: {e(b.title)}</title>",
           "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
           "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.l,th.l{text-align:left}"
           ".warn{background:#fde2e2;color:#8a1c1c;padding:6px 10px}tr.nc td{background:#fdf1f1}"
           "img{display:block}</style></head><body>",
           f"<h1>{e(b.name)}: {e(b.title)}</h1>"]
    if result.model:
        out.append(f"<p>Model <code>{e(str(result.model.get('name')))}</code> "
                   f"<code>{e(str(result.model.get('kwargs', {})))}</code>"
                   + (f", weights <code>{e(str(result.model['weights']))}</code>" if result.model.get("weights")
                      else "") + "</p>")
    out.append(f"<p>Convention <code>{e(b.convention)}</code>; protocol: {e(b.protocol)}.</p>")
    for s in result.sets:
        if not s.comparable:
            out.append(f'<p class="warn">Warning: {e(s.count_warning())}.</p>')

    header = ["set", "data", "images"] + [_METRIC_LABELS[m] for m in metrics]
    header += [f"{r.label} {_METRIC_LABELS[m]}" for r in shown for m in metrics]
    out += ['<h2>Results</h2><table id="results">',
            "<tr>" + "".join(f'<th class="l">{e(h)}</th>' if i < 2 else f"<th>{e(h)}</th>"
                             for i, h in enumerate(header)) + "</tr>"]
    for s in result.sets:
        cells = [s.name + ("" if s.comparable else " (not comparable)"), f"{s.dataset}:{s.split}",
                 str(s.count) if s.comparable else f"{s.count} of {s.expected}"]
        cells += [_fmt(m, s.means[m]) for m in metrics]
        cells += [_fmt(m, r.scores.get(s.name, {}).get(m)) for r in shown for m in metrics]
        out.append(f'<tr class="{"set" if s.comparable else "set nc"}">'
                   + "".join(f'<td class="l">{e(c)}</td>' if i < 2 else f"<td>{e(c)}</td>"
                             for i, c in enumerate(cells)) + "</tr>")
    average = result.average
    if average is not None:
        cells = ["average" + ("" if result.comparable else " (not comparable)"), "",
                 str(sum(s.count for s in result.sets))] + [_fmt(m, average[m]) for m in metrics]
        cells += [_fmt(m, _paper_average(r, result.sets, m)) for r in shown for m in metrics]
        out.append('<tr class="average">' + "".join(
            f'<td class="l">{e(c)}</td>' if i < 2 else f"<td>{e(c)}</td>" for i, c in enumerate(cells)) + "</tr>")
    out.append("</table>")
    if paper:
        if shown:
            out.append("<ul>" + "".join(f"<li>{e(r.label)}: {e(r.source)}</li>" for r in shown) + "</ul>")
        else:
            out.append(f"<p>No published numbers are recorded for this model on <code>{e(b.name)}</code>.</p>")

    key, metric = _sort_key(metrics)
    out += [f"<h2>Per image, worst {e(_METRIC_LABELS[metric])} first</h2>", '<table id="images">',
            '<tr><th class="l">set</th><th class="l">image</th>'
            + "".join(f"<th>{_METRIC_LABELS[m]}</th>" for m in metrics)
            + "<th>input</th><th>restored</th><th>ground truth</th></tr>"]
    for row in sorted(images, key=key):
        out.append('<tr class="image">' + f'<td class="l">{e(row["set"])}</td><td class="l">{e(row["name"])}</td>'
                   + "".join(f"<td>{_fmt(m, row['scores'].get(m))}</td>" for m in metrics)
                   + "".join(f'<td><img src="{e(row["files"][k])}" alt="{k}"></td>'
                             for k in ("input", "restored", "target")) + "</tr>")
    out.append("</table></body></html>")
    return "\n".join(out) + "\n"
