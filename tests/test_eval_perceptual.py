"""`jaxir eval --benchmark ... --metrics psnr,ssim,lpips,niqe,fid,kid [--samples K]`: the perceptual columns of
DvSR's table, and a stochastic model scored on its samples and their average."""
from __future__ import annotations

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
from PIL import Image

from jaxir import evaluation, registry
from jaxir.cli import main
from jaxir.io import save_weights

needs_basicsr = pytest.mark.skipif(importlib.util.find_spec("basicsr") is None,
                                   reason="NIQE parameters: `pip install --no-deps basicsr==1.4.2` (as CI does)")
SMALL_DVSR = {"predictor_channels": 32, "predictor_mult": [1, 2], "denoiser_channels": 32, "denoiser_mult": [1, 1],
              "num_res_blocks": 1}
FRAMES = [("GOPR0384_11_00", "000001", "astronaut"), ("GOPR0384_11_00", "000002", "coffee"),
          ("GOPR0385_11_01", "000001", "chelsea")]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))


def _pairs():
    """(sharp, blurred) uint8 crops of bundled photos, 100x200 (NIQE needs two 96x96 blocks)."""
    for _, _, photo in FRAMES:
        sharp = getattr(skimage.data, photo)()[100:200, 60:260]
        blur = scipy.ndimage.gaussian_filter(sharp.astype(np.float32), (1.5, 1.5, 0))
        yield sharp, np.clip(np.round(blur), 0, 255).astype(np.uint8)


@pytest.fixture
def gopro_tree(tmp_path) -> pathlib.Path:
    root = tmp_path / "gopro_manual"
    for (scene, frame, _), (sharp, blur) in zip(FRAMES, _pairs()):
        for kind, image in (("sharp", sharp), ("blur", blur)):
            path = root / "GOPRO_Large" / "test" / scene / kind / f"{frame}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path)
    return root


@needs_basicsr
def test_named_outputs_become_rows_and_niqe_is_the_restorations(monkeypatch):
    """Two outputs per image -> two rows; NIQE per image is niqe() of the clamped, uint8-rounded output."""
    from jaxir.metrics.niqe import load_params, niqe

    records = [{"input": b.astype(np.float32) / 255, "target": s.astype(np.float32) / 255, "name": f"{i}.png"}
               for i, (s, b) in enumerate(_pairs())]

    def predict(batch):
        return {"identity": batch, "brighter": batch + 0.02}

    perceptual = evaluation.PerceptualMetrics(niqe_params=load_params())
    result = evaluation.evaluate_benchmark("gopro", predict, sources={"gopro": records},
                                           metrics=["psnr", "niqe"], perceptual=perceptual)
    assert [s.name for s in result.sets] == ["gopro (identity)", "gopro (brighter)"]
    assert result.metrics == ("psnr", "niqe")
    identity = result.sets[0]
    want = [niqe(np.round(np.clip(r["input"], 0, 1) * 255) / 255, params=perceptual.niqe_params) for r in records]
    np.testing.assert_allclose([row["niqe"] for row in identity.per_image], want, rtol=1e-12)
    assert identity.means["psnr"] != result.sets[1].means["psnr"]
    markdown = result.to_markdown()
    assert "| set | data | images | PSNR | NIQE |" in markdown and "| gopro (brighter) (not comparable) |" in markdown


def test_metric_requests_are_checked(gopro_tree, tmp_path, capsys):
    weights = tmp_path / "w.msgpack"
    args = ["eval", "--benchmark", "gopro", "--checkpoint", str(weights), "--data-dir", str(gopro_tree)]
    assert main(args + ["--metrics", "psnr,sharpness"]) == 2
    assert "unknown ['sharpness']" in capsys.readouterr().err
    assert main(args + ["--metrics", "psnr,fid"]) == 2
    assert "--inception PATH" in capsys.readouterr().err
    assert main(args + ["--metrics", "kid", "--inception", str(tmp_path / "nope.pth")]) == 2
    assert "nope.pth does not exist" in capsys.readouterr().err
    assert main(["eval", "--config", "experiments/nafnet_gopro.py", "--checkpoint", str(weights),
                 "--metrics", "niqe"]) == 2
    assert "go with --benchmark" in capsys.readouterr().err


def _random_inception(torch, path):
    """pytorch-fid's network with random weights and BatchNorm statistics from one batch (healthy features)."""
    from jaxir.torch_reference import build_reference

    torch.manual_seed(0)
    reference = build_reference("fid_inception")
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    reference.train()
    with torch.no_grad():
        reference(torch.rand(4, 3, 80, 80))
    torch.save(reference.eval().state_dict(), path)


@needs_basicsr
@pytest.mark.heavy  # Inception + a 100-step DvSR sampler: ~9 CPU-minutes (30 min wall on the shared 2 cores)
def test_dvsr_eval_reports_the_six_metrics_of_its_table_for_sample_and_average(gopro_tree, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    _random_inception(torch, tmp_path / "inception.pth")
    model = registry.build_model("dvsr", **SMALL_DVSR)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    variables = jax.tree_util.tree_map(lambda v: v + 0.01, variables)  # non-zero denoiser output
    save_weights(tmp_path / "dvsr.msgpack", "dvsr", SMALL_DVSR, variables)
    out = tmp_path / "out"
    code = main(["eval", "--benchmark", "gopro", "--checkpoint", str(tmp_path / "dvsr.msgpack"), "--data-dir",
                 str(gopro_tree), "--out", str(out), "--metrics", "lpips,niqe,fid,kid,psnr,ssim",
                 "--inception", str(tmp_path / "inception.pth"), "--samples", "2", "--seed", "3"])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "gopro.json").read_text())
    rows = {row["name"]: row for row in result["sets"]}
    assert sorted(rows) == ["gopro (SA-2)", "gopro (sample)"]
    for row in rows.values():
        assert row["images"] == 3 and not row["comparable"]  # 3 of GoPro's 1111
        assert sorted(row["metrics"]) == ["fid", "kid", "lpips", "niqe", "psnr", "ssim"]
        assert all(np.isfinite(v) for v in row["metrics"].values()), row["metrics"]
        assert row["metrics"]["fid"] > 0 and all("niqe" in r and "lpips" in r for r in row["per_image"])
    assert rows["gopro (SA-2)"]["metrics"]["psnr"] != rows["gopro (sample)"]["metrics"]["psnr"]
    assert result["model"]["samples"] == {"count": 2, "seed": 3}
    markdown = (out / "gopro.md").read_text()
    assert "| set | data | images | LPIPS | NIQE | FID | KID | PSNR | SSIM |" in markdown
