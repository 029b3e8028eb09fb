"""`jaxir report RUN_DIR`: training curves and sample grids over time as PNG files."""
from __future__ import annotations

import json
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

from jaxir.cli import main
from jaxir.report import plot_curves, sample_grids, write_report
from jaxir.train.eval_loop import save_sample_grid

C0 = np.array([0x1F, 0x77, 0xB4])  # matplotlib's first line colour


def _fake_run(root: pathlib.Path, evals=(100, 200, 300)) -> pathlib.Path:
    rng = np.random.default_rng(0)
    lines = []
    for step in range(50, 301, 50):
        lines.append({"step": step, "split": "train", "loss": 1.0 / step, "loss/l1": 0.8 / step,
                      "loss/fft": 0.2 / step, "lr": 1e-3 * (1 - step / 400), "grad_norm": 1.0})
        if step in evals:
            lines.append({"step": step, "split": "eval", "psnr": 20 + step / 100, "ssim": 0.5 + step / 1000,
                          "input_psnr": 19.0, "input_ssim": 0.4})
            clean = rng.random((32, 40, 3)).astype(np.float32)
            save_sample_grid([{"degraded": clean * 0.5, "restored": clean * (step / 300), "clean": clean}],
                             root / "samples" / f"step_{step:08d}.png")
    (root / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


def _colour_fraction(image: np.ndarray, colour: np.ndarray) -> float:
    return float(np.mean(np.all(np.abs(image[..., :3].astype(int) - colour) <= 12, axis=-1)))


def test_report_draws_every_panel_and_the_grids_in_step_order(tmp_path):
    run = _fake_run(tmp_path / "run")
    curves, samples = write_report(run)
    assert curves == run / "report" / "curves.png" and samples == run / "report" / "samples_over_time.png"
    image = np.asarray(Image.open(curves).convert("RGB"))
    assert image.shape[0] > 500 and image.shape[1] > 800
    h, w = image.shape[:2]
    # Every one of the four panels (loss, PSNR, SSIM, lr) has a drawn C0 line.
    for quadrant in (image[: h // 2, : w // 2], image[: h // 2, w // 2:], image[h // 2:, : w // 2],
                     image[h // 2:, w // 2:]):
        assert _colour_fraction(quadrant, C0) > 1e-4
    assert [step for step, _ in sample_grids(run)] == [100, 200, 300]
    grid = np.asarray(Image.open(samples).convert("RGB"))
    assert grid.shape[0] >= 800  # three titled panels stacked (one alone is under 400 px high)


def test_panels_without_data_say_so_instead_of_failing(tmp_path):
    records = [{"step": 1, "split": "train", "loss": 0.5}, {"step": 2, "split": "train", "loss": 0.4}]
    path = plot_curves(records, tmp_path / "c.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    h, w = image.shape[:2]
    assert _colour_fraction(image[: h // 2, : w // 2], C0) > 1e-4
    assert _colour_fraction(image[: h // 2, w // 2:], C0) == 0  # no eval logged: no line


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err


def test_report_of_a_real_training_run(tmp_path, capsys):
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    import train_helpers
    from jaxir.train.loop import train

    train(train_helpers.tiny_config(num_steps=4, eval_every=2), tmp_path)
    assert [step for step, _ in sample_grids(tmp_path)] == [2, 4]
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "pictures")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "pictures" / name) for name in ("curves.png", "samples_over_time.png")]
    for path in printed:
        Image.open(path).verify()
