"""`jaxir eval --benchmark`: protocol table, data resolution, end-to-end runs on fixture datasets."""
from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from data_pipelines import builders
from jaxir import evaluation, registry
from jaxir.cli import main
from jaxir.io import save_weights
from jaxir.metrics.conventions import CONVENTIONS, evaluate_per_image

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_NAFNET = {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}


def _png(path: pathlib.Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)


def _load(path: pathlib.Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0


def _random_image(rng, h, w) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _random_variables(model, input_shape, seed=0):
    """Random weights of the right shapes without compiling `model.init` (slow on CPU)."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct(input_shape, jnp.float32))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: (0.1 * rng.standard_normal(s.shape)).astype(s.dtype), shapes)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv(evaluation.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def gopro_manual(tmp_path_factory) -> pathlib.Path:
    """GOPRO_Large/test/<scene>/{blur,sharp}/<frame>.png, two scenes, odd sizes."""
    root = tmp_path_factory.mktemp("gopro_manual")
    rng = np.random.default_rng(0)
    for scene in ("GOPR0384_11_00", "GOPR0385_11_01"):
        for frame in ("000001", "000002"):
            sharp = _random_image(rng, 21, 26)
            blur = np.clip(sharp.astype(int) + rng.integers(-20, 21, sharp.shape), 0, 255).astype(np.uint8)
            _png(root / "GOPRO_Large" / "test" / scene / "sharp" / f"{frame}.png", sharp)
            _png(root / "GOPRO_Large" / "test" / scene / "blur" / f"{frame}.png", blur)
    return root


@pytest.fixture(scope="module")
def nafnet_weights(tmp_path_factory) -> pathlib.Path:
    model = registry.build_model("nafnet", **TINY_NAFNET)
    variables = _random_variables(model, (1, 16, 16, 3))
    path = tmp_path_factory.mktemp("weights") / "nafnet.msgpack"
    save_weights(path, "nafnet", TINY_NAFNET, variables)
    return path


# -- the table ----------------------------------------------------------------


def test_table_names_known_builders_conventions_and_required_protocols():
    required = {"gopro", "hide", "realblur_j", "realblur_r", "dpdd", "dpdd_dual", "realdof", "lfdof",
                "sots_indoor", "sots_outdoor", "rain100l", "rain100h", "bsd68", "cbsd68", "kodak24",
                "urban100", "sidd", "lol", "allinone3", "allinone5"}
    assert required <= set(evaluation.BENCHMARKS)
    for name, benchmark in evaluation.BENCHMARKS.items():
        assert benchmark.name == name and benchmark.convention in CONVENTIONS
        for eval_set in benchmark.sets:
            assert eval_set.dataset.partition("/")[0] in builders.BUILDERS, (name, eval_set.dataset)
    assert evaluation.BENCHMARKS["dpdd_dual"].sets[0].channels == 6
    assert evaluation.BENCHMARKS["bsd68"].sets[0].channels == 1
    assert [s.name for s in evaluation.BENCHMARKS["allinone3"].sets] == [
        "denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert len(evaluation.BENCHMARKS["allinone5"].sets) == 5


def test_conventions_markdown_lists_every_benchmark_and_the_doc_is_current():
    table = evaluation.conventions_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(evaluation.BENCHMARKS)
    assert "centre crop to ×16" in rows[list(evaluation.BENCHMARKS).index("allinone3")]
    doc = (ROOT / "docs" / "conventions.md").read_text()
    assert table in doc, "docs/conventions.md is stale: run jaxir.evaluation.write_conventions_doc()"


def test_benchmark_spec_selects_sets_and_rejects_unknown_names():
    benchmark, sets = evaluation.get_benchmark("cbsd68:sigma25,sigma50")
    assert benchmark.name == "cbsd68" and [s.name for s in sets] == ["sigma25", "sigma50"]
    with pytest.raises(ValueError, match="unknown benchmark 'gopr'.*gopro.*allinone3"):
        evaluation.get_benchmark("gopr")
    with pytest.raises(ValueError, match="no set.*sigma30.*sigma15"):
        evaluation.get_benchmark("cbsd68:sigma30")


def test_paper_numbers_match_the_model_variant_by_its_fields():
    gopro = evaluation.BENCHMARKS["gopro"]
    arch = {"enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]}
    wide = registry.build_model("nafnet", width=64, **arch)
    labels = [r.label for r in gopro.paper if r.matches("nafnet", wide)]
    assert labels == ["NAFNet-width64", "NAFNet-width64 (paper)"]
    scores = next(r for r in gopro.paper if r.label == "NAFNet-width64").scores["gopro"]
    assert scores == {"psnr": 33.7103, "ssim": 0.9668}
    assert not any(r.matches("nafnet", registry.build_model("nafnet", **TINY_NAFNET)) for r in gopro.paper)
    convir_l = [r.label for r in gopro.paper if r.matches("convir", registry.build_model("convir", num_res=16))]
    assert convir_l == ["ConvIR-L"]

    # --paper puts the matched numbers beside the measured ones, with their source.
    matched = tuple(r for r in gopro.paper if r.label == "NAFNet-width64")
    measured = evaluation.SetResult("gopro", "gopro", "test", 1111, {"psnr": 33.7, "ssim": 0.966}, [])
    result = evaluation.BenchmarkResult(gopro, [measured], {"name": "nafnet"}, matched)
    markdown = result.to_markdown(paper=True)
    assert "| set | data | images | PSNR | SSIM | NAFNet-width64 PSNR | NAFNet-width64 SSIM |" in markdown
    assert "| gopro | gopro:test | 1111 | 33.70 | 0.9660 | 33.71 | 0.9668 |" in markdown
    assert "megvii-research/NAFNet readme.md" in markdown
    assert "NAFNet-width64 PSNR" not in result.to_markdown(paper=False)


# -- end to end ----------------------------------------------------------------


def test_cli_eval_on_official_gopro_folder_writes_tables_equal_to_direct_metrics(
        gopro_manual, nafnet_weights, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["eval", "--config", "experiments/nafnet_gopro.py", "--checkpoint", str(nafnet_weights),
                 "--benchmark", "gopro", "--data-dir", str(gopro_manual), "--out", str(out), "--paper"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    result = json.loads((out / "gopro.json").read_text())
    markdown = (out / "gopro.md").read_text()
    assert markdown in printed and "No published numbers are recorded" in markdown

    # The same numbers computed directly from the files, in the builder's order.
    model = registry.build_model("nafnet", **TINY_NAFNET)
    from jaxir.io import load_weights
    variables = load_weights(nafnet_weights)[2]
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
    preds, targets, names = [], [], []
    for scene in ("GOPR0384_11_00", "GOPR0385_11_01"):
        for frame in ("000001", "000002"):
            folder = gopro_manual / "GOPRO_Large" / "test" / scene
            blur = _load(folder / "blur" / f"{frame}.png")[None]
            preds.append(np.asarray(apply(variables, blur)))
            targets.append(_load(folder / "sharp" / f"{frame}.png")[None])
            names.append(f"{scene}/{frame}.png")
    expected = evaluate_per_image(np.concatenate(preds), np.concatenate(targets), "gopro")
    (row,) = result["sets"]
    assert row["images"] == 4 and [r["name"] for r in row["per_image"]] == names
    for metric in ("psnr", "ssim"):
        np.testing.assert_allclose([r[metric] for r in row["per_image"]], np.asarray(expected[metric]),
                                   rtol=1e-5)
        assert row["metrics"][metric] == pytest.approx(float(np.mean(np.asarray(expected[metric], np.float64))))
    assert f"{row['metrics']['psnr']:.2f}" in markdown
    assert result["model"]["name"] == "nafnet" and result["convention"] == "gopro"

    # The official folder was built once into the cache, and is found there again.
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and (cached[0] / "gopro").is_dir()
    assert evaluation.resolve_data_dir("gopro", gopro_manual) == cached[0]


def test_identity_model_on_pairs_of_equal_images_scores_perfectly(tmp_path):
    rng = np.random.default_rng(1)
    for n, (h, w) in enumerate([(19, 23), (19, 23), (22, 17)], start=1):
        image = _random_image(rng, h, w)
        for role in ("low", "high"):
            _png(tmp_path / "LOLdataset" / "eval15" / role / f"{n}.png", image)
    seen = []

    def identity(batch):
        seen.append(batch.shape)
        return batch

    result = evaluation.evaluate_benchmark("lol", identity, data_dir=tmp_path, pad_multiple=8)
    (row,) = result.sets
    assert row.count == 3 and row.means["psnr"] == float("inf") and row.means["ssim"] == pytest.approx(1.0)
    assert all(shape[1] % 8 == 0 and shape[2] % 8 == 0 for shape in seen)
    written = json.loads(evaluation.write_results(result, tmp_path / "out")[1].read_text())
    assert written["sets"][0]["metrics"]["psnr"] == "inf"


def _png16(path: pathlib.Path, image: np.ndarray) -> None:
    """A 16-bit RGB PNG, as DPDD ships (Pillow cannot write them)."""
    from jaxir.io import write_image

    write_image(path, image.astype(np.float64) / 65535.0, bit_depth=16)


def _as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / np.iinfo(image.dtype).max


def _write_dpdd(root: pathlib.Path, rng) -> None:
    """Restormer's re-packed layout test/DPDD/{inputL,inputR,inputC,target}/, 16-bit files."""
    for n in (1, 2):
        target = rng.integers(0, 65536, (34, 40, 3)).astype(np.uint16)
        for view in ("inputL", "inputR", "inputC", "target"):
            image = target if view == "target" else np.clip(
                target.astype(int) + rng.integers(-3000, 3001, target.shape), 0, 65535).astype(np.uint16)
            _png16(root / "test" / "DPDD" / view / f"{n}.png", image)


def test_dual_pixel_benchmark_feeds_six_channels_and_reports_lpips(tmp_path, capsys):
    _write_dpdd(tmp_path / "dpdd", np.random.default_rng(2))
    kwargs = {"inp_channels": 6, "dual_pixel_task": True, "dim": 8, "num_blocks": [1, 1, 1, 1],
              "num_refinement_blocks": 1, "heads": [1, 1, 1, 1]}
    model = registry.build_model("restormer", **kwargs)
    variables = _random_variables(model, (1, 16, 16, 6))
    weights = tmp_path / "restormer.msgpack"
    save_weights(weights, "restormer", kwargs, variables)
    config = tmp_path / "cfg.py"
    config.write_text("from experiments.base import base_config\n\n"
                      "def get_config(arg=None):\n    c = base_config()\n    c.model.name = 'restormer'\n"
                      "    return c\n")
    args = ["eval", "--config", str(config), "--checkpoint", str(weights), "--data-dir", str(tmp_path / "dpdd"),
            "--out", str(tmp_path / "out")]
    assert main(args + ["--benchmark", "dpdd_dual"]) == 0, capsys.readouterr().err
    row = json.loads((tmp_path / "out" / "dpdd_dual.json").read_text())["sets"][0]
    assert row["images"] == 2 and set(row["metrics"]) == {"psnr", "ssim", "mae", "lpips"}

    source = builders.data_source("dpdd", "test", next((tmp_path / "cache").iterdir()))
    record = source[0]
    dual = _as_float(np.concatenate([record["input_left"], record["input_right"]], -1)[None])
    padded = np.pad(dual, ((0, 0), (0, 6), (0, 0), (0, 0)), mode="reflect")  # 34 -> 40 (multiple of 8)
    restored = np.asarray(jax.jit(lambda v, x: model.apply(v, x, train=False))(variables, padded))[:, :34]
    expected = evaluate_per_image(restored, _as_float(record["target"][None]), "dpdd")
    assert row["per_image"][0]["psnr"] == pytest.approx(float(expected["psnr"][0]), rel=1e-5)
    assert row["per_image"][0]["lpips"] == pytest.approx(float(expected["lpips"][0]), rel=1e-4, abs=1e-6)

    # The centre-view benchmark needs a 3-channel model.
    assert main(args + ["--benchmark", "dpdd"]) == 2
    assert "3-channel RGB inputs but the model takes 6 channels" in capsys.readouterr().err


def _write_allinone(root: pathlib.Path, rng) -> None:
    for n in (1, 2):
        _png(root / "CBSD68" / "original_png" / f"{n:04d}.png", _random_image(rng, 37, 45))
        clean = _random_image(rng, 35, 50)
        _png(root / "Rain100L" / f"norain-{n}.png", clean)
        _png(root / "Rain100L" / f"rain-{n}.png", np.maximum(clean, 200).astype(np.uint8))
    clear = _random_image(rng, 40, 33)
    _png(root / "SOTS" / "outdoor" / "gt" / "0001.png", clear)
    _png(root / "SOTS" / "outdoor" / "hazy" / "0001_0.8_0.2.png", (clear // 2 + 100).astype(np.uint8))


def _centre_crop(image: np.ndarray, multiple: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = (h % multiple) // 2, (w % multiple) // 2
    return image[top:top + h - h % multiple, left:left + w - w % multiple]


def test_allinone3_reports_every_task_and_their_average(tmp_path):
    _write_allinone(tmp_path / "data", np.random.default_rng(3))
    inputs = []

    def identity(batch):
        inputs.append(np.asarray(batch))
        return batch

    result = evaluation.evaluate_benchmark("allinone3", identity, data_dir=tmp_path / "data", input_channels=3)
    rows = {s.name: s for s in result.sets}
    assert list(rows) == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze"]
    assert [rows[n].count for n in rows] == [2, 2, 2, 2, 1]
    assert result.average["psnr"] == pytest.approx(np.mean([s.means["psnr"] for s in result.sets]))
    # Noisy inputs are centre-cropped to multiples of 16, clipped and stored as uint8, as PromptIR does.
    noisy = inputs[0]
    assert noisy.shape == (1, 32, 32, 3)
    np.testing.assert_allclose(noisy * 255, np.round(noisy * 255), atol=1e-3)
    assert rows["denoise_15"].means["psnr"] > rows["denoise_25"].means["psnr"] > rows["denoise_50"].means["psnr"]

    # The identity's derain score is the input/target PSNR of the centre crops.
    expected = []
    for n in (1, 2):
        rain = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"rain-{n}.png"), 16)
        clean = _centre_crop(_load(tmp_path / "data" / "Rain100L" / f"norain-{n}.png"), 16)
        expected.append(float(evaluate_per_image(rain[None], clean[None], "allinone3")["psnr"][0]))
    assert rows["derain"].means["psnr"] == pytest.approx(np.mean(expected), rel=1e-6)

    markdown = result.to_markdown()
    # Fixture sets are smaller than the protocol's: scored, but marked not comparable with the paper.
    assert "| average (not comparable) |" in markdown
    assert "| denoise_50 (not comparable) | cbsd68:test | 2 of 68 |" in markdown

    # Fixed seeds: the same numbers again, and a subset of the tasks on request.
    again = evaluation.evaluate_benchmark("allinone3:denoise_25,dehaze", identity, data_dir=tmp_path / "data")
    assert [s.name for s in again.sets] == ["denoise_25", "dehaze"]
    assert again.sets[0].means == rows["denoise_25"].means


def test_channel_and_data_errors_are_clear(tmp_path, gopro_manual):
    with pytest.raises(ValueError, match="one-channel greyscale inputs but the model takes 3 channels"):
        evaluation.evaluate_benchmark("bsd68", lambda x: x, data_dir=tmp_path, input_channels=3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluation.evaluate_benchmark("gopro", lambda x: x, data_dir=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="neither built in TFDS data dir.*nor found there"):
        evaluation.evaluate_benchmark("hide", lambda x: x, data_dir=gopro_manual)
    with pytest.raises(ValueError, match="returned shape"):
        evaluation.evaluate_benchmark("gopro", lambda x: x[..., :1], data_dir=gopro_manual)


def test_greyscale_benchmark_scores_one_channel_images(tmp_path):
    rng = np.random.default_rng(4)
    for n in (1, 2):
        _png(tmp_path / "BSD68" / f"test{n:03d}.png", rng.integers(0, 256, (20, 24), dtype=np.uint8))
    shapes = []

    def identity(batch):
        shapes.append(batch.shape)
        return batch

    result = evaluation.evaluate_benchmark("bsd68:sigma25", identity, data_dir=tmp_path, input_channels=1)
    assert shapes == [(1, 20, 24, 1)] * 2
    # Unclipped float noise of sigma 25/255 (Restormer): PSNR ~ 20.2 dB (uint8 rounding adds a little).
    assert result.sets[0].means["psnr"] == pytest.approx(20.2, abs=0.6)


def test_cli_benchmark_list_and_unknown_name(capsys, nafnet_weights):
    assert main(["eval", "--config", "experiments/nafnet_gopro.py", "--benchmark", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in evaluation.BENCHMARKS)
    assert main(["eval", "--config", "experiments/nafnet_gopro.py", "--checkpoint", str(nafnet_weights),
                 "--benchmark", "gopor"]) == 2
    assert "valid benchmarks: gopro" in capsys.readouterr().err


def test_readme_carries_the_current_conventions_table():
    import pathlib

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = [line for line in evaluation.conventions_markdown().splitlines() if line.startswith("| `")]
    assert table and all(line in readme for line in table), "README's conventions table is stale"


@pytest.mark.parametrize("name,kwargs,config", [
    ("mair_unet", {"dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "ssm_ratio": 1.0,
                   "scan_len": 4}, "experiments/mair_gopro.py"),
    ("acl", {"dim": 4, "num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 1, 1]},
     "experiments/acl_gopro.py"),
    ("mambairv2", {"upscale": 1, "embed_dim": 6, "d_state": 2, "depths": [1], "num_heads": [1], "window_size": 8,
                   "inner_rank": 2, "num_tokens": 4, "mlp_ratio": 1.0}, "experiments/mambairv2_cbsd68.py"),
    ("mair", {"upscale": 1, "upsampler": "", "embed_dim": 4, "depths": [2], "d_state": 2, "ssm_ratio": 1.0,
              "mlp_ratio": 1.0, "scan_len": 4}, "experiments/mair_cbsd68.py"),
])
def test_state_space_models_run_the_gopro_protocol(gopro_manual, tmp_path, capsys, name, kwargs, config):
    """The scan orders and routing are rebuilt for the fixture's odd sizes (padded to the model's multiple)."""
    model = registry.build_model(name, **kwargs)
    path = tmp_path / f"{name}.msgpack"
    save_weights(path, name, kwargs, _random_variables(model, (1, 24, 32, 3)))
    out = tmp_path / "out"
    code = main(["eval", "--config", config, "--checkpoint", str(path), "--benchmark", "gopro",
                 "--data-dir", str(gopro_manual), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    (row,) = json.loads((out / "gopro.json").read_text())["sets"]
    assert row["images"] == 4 and np.isfinite(row["metrics"]["psnr"])
