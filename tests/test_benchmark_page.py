"""`jaxir eval --benchmark ... --report DIR` (HTML page) and the partial-benchmark warning."""
from __future__ import annotations

import html.parser
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxir import evaluation, registry
from jaxir.benchmark_page import BenchmarkPage, render
from jaxir.cli import main
from jaxir.io import save_weights

TINY_NAFNET = {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}


class _Page(html.parser.HTMLParser):
    """Rows of the page's two tables and its image sources; fails on mismatched tags."""

    VOID = {"meta", "img", "br"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table = None
        self._row_class = ""
        self.row_classes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.VOID:
            self.stack.append(tag)
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
            self.row_classes.append(attrs.get("class", ""))
        elif tag in ("td", "th"):
            self.tables[self._table][-1].append("")
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        rows = self.tables.get(self._table) if self._table else None
        if rows and rows[-1] and self.stack and self.stack[-1] in ("td", "th"):
            rows[-1][-1] += data


def _parse(path: pathlib.Path) -> _Page:
    page = _Page()
    page.feed(path.read_text())
    page.close()
    assert not page.stack
    return page


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture
def gopro_four_pairs(tmp_path) -> pathlib.Path:
    """A four-pair GoPro tree (GOPRO_Large/test/<scene>/{blur,sharp}), as a new user's partial download."""
    rng = np.random.default_rng(0)
    for scene in ("GOPR0384_11_00", "GOPR0385_11_01"):
        for frame, noise in (("000001", 5), ("000002", 40)):
            sharp = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
            blur = np.clip(sharp.astype(int) + rng.integers(-noise, noise + 1, sharp.shape), 0, 255).astype(np.uint8)
            for kind, image in (("sharp", sharp), ("blur", blur)):
                path = tmp_path / "GoPro" / "GOPRO_Large" / "test" / scene / kind / f"{frame}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    return tmp_path / "GoPro"


@pytest.fixture
def weights(tmp_path) -> pathlib.Path:
    model = registry.build_model("nafnet", **TINY_NAFNET)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32))
    variables = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)  # zero residual: identity
    path = tmp_path / "nafnet.msgpack"
    save_weights(path, "nafnet", TINY_NAFNET, variables)
    return path


def test_partial_gopro_download_is_warned_about_and_the_page_shows_every_image(
        gopro_four_pairs, weights, tmp_path, capsys):
    out, report = tmp_path / "out", tmp_path / "report"
    assert main(["eval", "--benchmark", "gopro", "--checkpoint", str(weights), "--data-dir", str(gopro_four_pairs),
                 "--out", str(out), "--report", str(report), "--paper"]) == 0
    captured = capsys.readouterr()
    assert ("warning: gopro: 4 test images in gopro:test, but the protocol has 1111 (a partial or wrong "
            "download?): not comparable with the paper") in captured.err
    markdown = (out / "gopro.md").read_text()
    assert "**Warning** — gopro: 4 test images" in markdown
    assert "| gopro (not comparable) | gopro:test | 4 of 1111 |" in markdown
    data = json.loads((out / "gopro.json").read_text())
    assert data["comparable"] is False and data["sets"][0]["expected_images"] == 1111

    page = _parse(report / "index.html")
    results = page.tables["results"]
    assert results[0][:3] == ["set", "data", "images"]
    assert results[1][:3] == ["gopro (not comparable)", "gopro:test", "4 of 1111"]
    rows = page.tables["images"][1:]
    assert len(rows) == 4
    psnrs = [float(r[2]) for r in rows]
    assert psnrs == sorted(psnrs)  # worst first
    per_image = {r["name"]: r["psnr"] for r in data["sets"][0]["per_image"]}
    assert sorted(per_image.values()) == pytest.approx(psnrs, abs=0.006)
    assert len(page.images) == 12
    for src in page.images:
        image = Image.open(report / src)
        image.verify()
    # Thumbnails are the real images: the zero-residual model returns its input, so restored == input.
    first_input, first_restored, first_target = (np.asarray(Image.open(report / s)) for s in page.images[:3])
    np.testing.assert_array_equal(first_input, first_restored)
    assert first_input.shape == first_target.shape == (20, 28, 3)
    assert not np.array_equal(first_input, first_target)


def test_page_puts_the_papers_numbers_beside_the_measured_ones(tmp_path):
    gopro = evaluation.BENCHMARKS["gopro"]
    paper = tuple(r for r in gopro.paper if r.label == "NAFNet-width64")
    per_image = [{"name": "a", "psnr": 30.0, "ssim": 0.9}, {"name": "b", "psnr": 20.0, "ssim": 0.8}]
    measured = evaluation.SetResult("gopro", "gopro", "test", 1111, {"psnr": 33.7, "ssim": 0.966}, per_image, 1111)
    result = evaluation.BenchmarkResult(gopro, [measured], {"name": "nafnet", "kwargs": {"width": 64}}, paper)
    page = BenchmarkPage(tmp_path)
    for row in per_image:
        image = np.full((8, 8, 3), row["psnr"] / 40, np.float32)
        page.add_image("gopro", row["name"], image, image, image, row)
    parsed = _parse(page.write(result))
    assert parsed.tables["results"][0][-2:] == ["NAFNet-width64 PSNR", "NAFNet-width64 SSIM"]
    assert parsed.tables["results"][1] == ["gopro", "gopro:test", "1111", "33.70", "0.9660", "33.71", "0.9668"]
    assert '<p class="warn">' not in (tmp_path / "index.html").read_text()  # the full test set: no warning
    assert [r[1] for r in parsed.tables["images"][1:]] == ["b", "a"]
    assert "megvii-research/NAFNet" in render(result, page.images)


def test_report_needs_a_benchmark(weights, capsys):
    assert main(["eval", "--config", "experiments/nafnet_gopro.py", "--checkpoint", str(weights),
                 "--report", "x"]) == 2
    assert "--report goes with --benchmark" in capsys.readouterr().err
