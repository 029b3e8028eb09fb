"""`jaxir bench --pipeline`: sources, the recorded Markdown table, errors (speeds are not asserted)."""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from PIL import Image

from data_pipelines import bench, builders
from jaxir.cli import main


def _images(folder: pathlib.Path, count: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).save(folder / f"{n}.png")


@pytest.fixture
def paired_dir(tmp_path) -> pathlib.Path:
    _images(tmp_path / "pairs" / "input", 4, seed=0)
    _images(tmp_path / "pairs" / "target", 4, seed=1)
    return tmp_path / "pairs"


def _table_rows(text: str, section: str) -> list[list[str]]:
    block = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
            if line.startswith("| 20")]


def test_cli_records_one_row_per_worker_count_under_pipelines(paired_dir, tmp_path, capsys):
    from jaxir.bench import record_row

    record = tmp_path / "BENCHMARKS.md"
    record_row(record, "| model row |")  # an existing Models table must survive
    args = ["bench", "--pipeline", f"folder:{paired_dir}", "--workers", "0,1", "--batch", "2", "--size", "16",
            "--steps", "2", "--record", str(record)]
    assert main(args) == 0, capsys.readouterr().err
    assert "| workers |" in capsys.readouterr().out
    assert main(args[:4] + ["0"] + args[5:]) == 0
    text = record.read_text()
    assert text.count("## Pipelines") == 1 and text.count("| date | pipeline |") == 1
    assert "| model row |" in text.split("## Pipelines")[0]
    rows = _table_rows(text, "Pipelines")
    assert [row[4] for row in rows] == ["0", "1", "0"]
    header = [c.strip() for c in bench.TABLE_HEADER.splitlines()[0].strip("|").split("|")]
    for row in rows:
        assert len(row) == len(header)
        assert row[1] == f"folder:{paired_dir}" and row[3] == "4" and row[5] == "2" and row[6] == "16"
        assert float(row[8]) > 0 and row[9].split(":")[0] in ("CPU", "GPU", "TPU")


def test_clean_folder_and_bundled_photos_get_synthetic_noise(tmp_path):
    _images(tmp_path / "clean", 3)
    (result,) = bench.run_pipeline_benchmarks(str(tmp_path / "clean"), [0], batch=2, crop=16, steps=1)
    assert "CleanFolder" in result.source and "gaussian_noise" in result.source and result.records == 3
    assert result.images_per_s > 0 and result.first_batch_s >= 0
    (result,) = bench.run_pipeline_benchmarks("bundled", "0", batch=1, crop=16, steps=1)
    assert result.source.startswith("BundledPhotos(train) + gaussian_noise") and result.records >= 2


def test_tfds_pipeline_reads_a_prepared_dataset(tmp_path):
    for n in (1, 2, 3):
        for role in ("low", "high"):
            path = tmp_path / "manual" / "LOLdataset" / "our485" / role / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), 10 * n, np.uint8)).save(path)
    builders.build("lol", tmp_path / "manual", tmp_path / "data")
    (result,) = bench.run_pipeline_benchmarks(f"tfds:lol:train@{tmp_path / 'data'}", [0], batch=2, crop=8,
                                              steps=1)
    assert result.source == "TFDS lol:train (paired)" and result.records == 3


def test_bad_requests_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="comma-separated integers"):
        bench.parse_workers("0,two")
    with pytest.raises(ValueError, match="counts >= 0"):
        bench.parse_workers("-1")
    with pytest.raises(ValueError, match="unknown pipeline 'nope'.*bundled"):
        bench.make_pipeline_source("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bench.make_pipeline_source(f"folder:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="tfds:NAME"):
        bench.make_pipeline_source("tfds:lol")
    with pytest.raises(FileNotFoundError, match="lol"):
        bench.make_pipeline_source(f"tfds:lol@{tmp_path}")
