"""`jaxir eval --benchmark` end to end on fixture trees of the official layouts: allinone3 (PromptIR), allinone5
(MoCE-IR) and cdd11 (CDD-11's 11 combinations)."""
import json

import jax
import numpy as np
import pytest
from test_evaluation import _centre_crop, _load, _png, _random_image, _random_variables, _write_allinone

from jaxir import evaluation, registry
from jaxir.cli import main
from jaxir.io import load_weights, save_weights
from jaxir.metrics.conventions import evaluate_per_image

TINY_PROMPTIR = {"dim": 8, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 2, 2, 4],
                 "prompt_sizes": [8, 4, 2]}


def test_promptir_allinone3_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))
    _write_allinone(tmp_path / "data", np.random.default_rng(3))
    model = registry.build_model("promptir", **TINY_PROMPTIR)
    weights = tmp_path / "promptir.msgpack"
    save_weights(weights, "promptir", TINY_PROMPTIR, _random_variables(model, (1, 32, 32, 3)))

    out = tmp_path / "out"
    code = main(["eval", "--config", "experiments/promptir_aio3.py", "--checkpoint", str(weights),
                 "--benchmark", "allinone3", "--data-dir", str(tmp_path / "data"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "allinone3.json").read_text())
    rows = {row["name"]: row for row in result["sets"]}
    assert list(rows) == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert result["model"]["name"] == "promptir"
    # The fixture holds a few pairs, so the row is marked not comparable with the paper.
    assert "| average (not comparable) |" in (out / "allinone3.md").read_text()

    # Derain scored from the centre-cropped files through the same weights.
    variables = load_weights(weights)[2]
    apply = jax.jit(lambda v, x: model.apply(v, x))
    scores = []
    for n in (1, 2):
        rain = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"rain-{n}.png"), 16)[None]
        clean = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"norain-{n}.png"), 16)[None]
        scores.append(float(evaluate_per_image(np.asarray(apply(variables, rain)), clean, "allinone3")["psnr"][0]))
    assert rows["derain"]["metrics"]["psnr"] == pytest.approx(np.mean(scores), rel=1e-5)


# MoCE-IR-S's layout at a tiny width (the test_allinone_train.py model): 3 levels, one expert per token.
TINY_MOCE_IR = {"dim": 8, "levels": 3, "heads": [1, 2, 2], "num_blocks": [1, 1, 1], "num_dec_blocks": [1, 1],
                "num_refinement_blocks": 1, "num_experts": 3, "topk": 1, "rank_type": "spread",
                "depth_type": "constant", "stage_depth": [1, 1]}


def _write_allinone5(root, rng):
    """allinone3's trees plus GoPro test (GOPRO_Large/test/<scene>/{blur,sharp}) and LOLv1 eval15 (low/high)."""
    _write_allinone(root, rng)
    sharp = _random_image(rng, 36, 40)
    _png(root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "sharp" / "000001.png", sharp)
    _png(root / "GOPRO_Large" / "test" / "GOPR0384_11_00" / "blur" / "000001.png", (sharp // 2 + 60).astype(np.uint8))
    for n in (1, 22):
        high = _random_image(rng, 33, 48)
        _png(root / "LOLdataset" / "eval15" / "high" / f"{n}.png", high)
        _png(root / "LOLdataset" / "eval15" / "low" / f"{n}.png", (high // 8).astype(np.uint8))


# About a CPU-minute (MoCE-IR compiled per test-image size, LPIPS-VGG): beyond the default budget.
@pytest.mark.slow
def test_moce_ir_allinone5_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))
    _write_allinone5(tmp_path / "data", np.random.default_rng(5))
    model = registry.build_model("moce_ir", **TINY_MOCE_IR)
    weights = tmp_path / "moce_ir.msgpack"
    save_weights(weights, "moce_ir", TINY_MOCE_IR, _random_variables(model, (1, 32, 32, 3)))

    out = tmp_path / "out"
    code = main(["eval", "--config", "experiments/moce_ir_aio5.py:s", "--checkpoint", str(weights),
                 "--benchmark", "allinone5", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--paper"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "allinone5.json").read_text())
    rows = {row["name"]: row for row in result["sets"]}
    assert list(rows) == ["denoise_25", "derain", "dehaze", "deblur", "lowlight"]
    assert [rows[n]["images"] for n in rows] == [2, 2, 1, 1, 2]
    assert [rows[n]["dataset"] for n in rows] == ["cbsd68", "rain100l", "sots_outdoor", "gopro", "lol"]
    assert result["model"]["name"] == "moce_ir" and result["model"]["kwargs"]["num_experts"] == 3
    for row in rows.values():  # MoCE-IR's test.py reports PSNR, SSIM and LPIPS (VGG) per set
        assert set(row["metrics"]) == {"psnr", "ssim", "lpips"}
        assert all(np.isfinite(v) for v in row["metrics"].values())
    average = result["average"]
    for metric in ("psnr", "ssim", "lpips"):
        assert average[metric] == pytest.approx(np.mean([r["metrics"][metric] for r in rows.values()]), rel=1e-6)

    table = (out / "allinone5.md").read_text()
    assert "| set | data | images | PSNR | SSIM | LPIPS |" in table
    lines = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0].lstrip("| ") for line in lines] == [
        "denoise_25 (not comparable)", "derain (not comparable)", "dehaze (not comparable)",
        "deblur (not comparable)", "lowlight (not comparable)", "average (not comparable)"]
    assert f"| {average['psnr']:.2f} | {average['ssim']:.4f} | {average['lpips']:.4f} |" in table

    # Low light scored from the centre-cropped files through the same weights (MoCE-IR's convention).
    variables = load_weights(weights)[2]
    apply = jax.jit(lambda v, x: model.apply(v, x))
    scores = []
    for n in (1, 22):
        low = _centre_crop(_load(tmp_path / "data" / "LOLdataset" / "eval15" / "low" / f"{n}.png"), 16)[None]
        high = _centre_crop(_load(tmp_path / "data" / "LOLdataset" / "eval15" / "high" / f"{n}.png"), 16)[None]
        scores.append(float(evaluate_per_image(np.asarray(apply(variables, low)), high, "allinone5")["psnr"][0]))
    assert rows["lowlight"]["metrics"]["psnr"] == pytest.approx(np.mean(scores), rel=1e-5)


def _write_cdd11(root, rng, names=("000001.png", "000002.png")):
    """OneRestore's CDD-11 test layout: test/clear/<name> and test/<combination>/<name> for the 11 combinations;
    each combination darkens the clear image by its own amount, so every row scores differently."""
    for name in names:
        clear = _random_image(rng, 30, 37)
        _png(root / "CDD-11" / "test" / "clear" / name, clear)
        for i, combination in enumerate(evaluation.CDD11_COMBINATIONS):
            degraded = np.clip(clear.astype(int) - 8 * (i + 1) + rng.integers(-3, 4, clear.shape), 0, 255)
            _png(root / "CDD-11" / "test" / combination / name, degraded.astype(np.uint8))


def test_cdd11_combinations_match_the_builder_and_the_scores_follow_onerestore():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from data_pipelines.builders.composite import CDD11_COMBINATIONS

    assert evaluation.CDD11_COMBINATIONS == CDD11_COMBINATIONS
    benchmark = evaluation.BENCHMARKS["cdd11"]
    assert [s.split for s in benchmark.sets] == [f"test_{c}" for c in CDD11_COMBINATIONS] and benchmark.average
    # OneRestore's cal_psnr_ssim.py on uint8 images / 255: skimage PSNR and SSIM(win_size=7, channel_axis=-1).
    rng = np.random.default_rng(0)
    target = _random_image(rng, 30, 37)
    pred = np.clip(target.astype(int) + rng.integers(-25, 26, target.shape), 0, 255).astype(np.uint8)
    scores = evaluate_per_image((pred / 255.0)[None].astype(np.float32), (target / 255.0)[None].astype(np.float32),
                                "cdd11")
    want_psnr = peak_signal_noise_ratio(target / 255.0, pred / 255.0, data_range=1.0)
    want_ssim = structural_similarity(target / 255.0, pred / 255.0, win_size=7, channel_axis=-1, data_range=1.0)
    assert float(scores["psnr"][0]) == pytest.approx(want_psnr, abs=1e-3)
    assert float(scores["ssim"][0]) == pytest.approx(want_ssim, abs=1e-4)


def test_cdd11_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))
    _write_cdd11(tmp_path / "data", np.random.default_rng(11))
    kwargs = {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}
    model = registry.build_model("nafnet", **kwargs)
    weights = tmp_path / "nafnet.msgpack"
    save_weights(weights, "nafnet", kwargs, _random_variables(model, (1, 16, 16, 3)))

    out = tmp_path / "out"
    code = main(["eval", "--checkpoint", str(weights), "--benchmark", "cdd11", "--data-dir", str(tmp_path / "data"),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "cdd11.json").read_text())
    rows = {row["name"]: row for row in result["sets"]}
    assert list(rows) == list(evaluation.CDD11_COMBINATIONS)
    assert all(row["images"] == 2 and row["dataset"] == "cdd11" for row in rows.values())
    assert rows["low_haze_snow"]["split"] == "test_low_haze_snow"
    assert len({round(row["metrics"]["psnr"], 4) for row in rows.values()}) == 11
    for metric in ("psnr", "ssim"):
        want = np.mean([row["metrics"][metric] for row in rows.values()])
        assert result["average"][metric] == pytest.approx(want, rel=1e-6)

    table = (out / "cdd11.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0] == "| set | data | images | PSNR | SSIM |"
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[1:]] == [*evaluation.CDD11_COMBINATIONS, "average"]
    assert f"| {result['average']['psnr']:.2f} | {result['average']['ssim']:.4f} |" in lines[-1]

    # One row recomputed from the files, full size (no crop), through the same weights.
    variables = load_weights(weights)[2]
    apply = jax.jit(lambda v, x: model.apply(v, x))
    psnrs = []
    for name in ("000001.png", "000002.png"):
        degraded = _load(tmp_path / "data" / "CDD-11" / "test" / "haze_rain" / name)
        clear = _load(tmp_path / "data" / "CDD-11" / "test" / "clear" / name)
        restored = np.asarray(apply(variables, degraded[None]))  # NAFNet pads to its multiple itself
        psnrs.append(float(evaluate_per_image(restored, clear[None], "cdd11")["psnr"][0]))
    assert rows["haze_rain"]["metrics"]["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-5)
