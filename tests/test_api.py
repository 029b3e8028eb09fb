"""The Python API: documented names, paper config names, models, weights and `jaxir.restore`."""
from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jaxir
from jaxir import api, paper_configs
from jaxir.io import save_weights

TINY = {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]}
DOCUMENTED = ("Model", "count_params", "create_model", "load_weights", "model_names", "paper_config_names",
              "restore", "metrics", "degradations", "zoo")


@pytest.fixture(scope="module")
def tiny() -> api.Model:
    return jaxir.create_model("nafnet", seed=1, **TINY)


def _apply(model: api.Model, image: np.ndarray) -> np.ndarray:
    return np.asarray(model.module.apply(model.variables, jnp.asarray(image[None], jnp.float32)))[0]


def test_documented_names_exist_and_public_functions_are_annotated():
    assert set(DOCUMENTED) <= set(jaxir.__all__)
    for name in DOCUMENTED:
        assert getattr(jaxir, name) is not None, name
    assert jaxir.metrics.psnr is not None and jaxir.degradations.motion_blur is not None
    for name in ("count_params", "create_model", "load_weights", "model_names", "paper_config_names", "restore"):
        signature = inspect.signature(getattr(jaxir, name))
        assert signature.return_annotation is not inspect.Signature.empty, name
        for parameter in signature.parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                assert parameter.annotation is not inspect.Parameter.empty, (name, parameter.name)
    with pytest.raises(AttributeError):
        jaxir.no_such_name  # noqa: B018


def test_paper_config_names_come_from_the_experiment_recipes():
    names = jaxir.paper_config_names()
    for name in ("nafnet-gopro-width32", "nafnet-sidd-baseline-width64", "restormer-dpdd-dual",
                 "restormer-dpdd-single", "convir-gopro-s", "mimo-unet-gopro", "stripformer-gopro-finetune"):
        assert name in names
    assert api.resolve("restormer-dpdd-dual")[1]["inp_channels"] == 6
    assert api.resolve("restormer_dpdd_single")[1]["inp_channels"] == 3  # underscores are accepted
    model, kwargs = api.resolve("nafnet-gopro-width64", middle_blk_num=2)
    assert model == "nafnet" and kwargs["width"] == 64 and kwargs["middle_blk_num"] == 2
    assert api.resolve("nafnet", width=8) == ("nafnet", {"width": 8})
    with pytest.raises(KeyError, match="unknown model or paper config 'nafnet-gopro-width48'"):
        api.resolve("nafnet-gopro-width48")


def test_a_new_recipe_file_is_a_new_paper_config_without_code_changes(tmp_path):
    (tmp_path / "newnet_sots.py").write_text(
        "from experiments.base import base_config\nVARIANTS = ('small', 'large')\n\n"
        "def get_config(arg=None):\n    c = base_config()\n    c.model.name = 'nafnet'\n"
        "    c.model.kwargs = {'width': 8 if arg == 'small' else 16}\n    return c\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")  # no get_config: not a recipe
    configs = paper_configs.paper_configs(tmp_path)
    assert sorted(configs) == ["newnet-sots-large", "newnet-sots-small"]
    assert configs["newnet-sots-large"].model() == ("nafnet", {"width": 16})


def test_paper_config_parameter_count_is_the_official_one():
    # NAFNet-width32 GoPro: 17,111,907 parameters (golden sidecar paper_configs of nafnet_local.json).
    assert jaxir.count_params("nafnet-gopro-width32") == 17_111_907


def test_load_weights_converts_an_official_checkpoint_and_reads_converted_files(tiny, tmp_path):
    torch = pytest.importorskip("torch")
    from jaxir.torch_reference import build_reference

    reference = build_reference("nafnet", **TINY)
    torch.save({"params": reference.state_dict()}, tmp_path / "official.pth")
    model = jaxir.load_weights("nafnet", tmp_path / "official.pth", **TINY)
    image = np.random.default_rng(0).random((16, 20, 3), np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(image.transpose(2, 0, 1)[None])).numpy()[0].transpose(1, 2, 0)
    np.testing.assert_allclose(_apply(model, image), want, atol=1e-5)

    save_weights(tmp_path / "w.msgpack", model.name, model.kwargs, model.variables)
    again = jaxir.load_weights(None, tmp_path / "w.msgpack")
    np.testing.assert_array_equal(_apply(again, image), _apply(model, image))
    with pytest.raises(ValueError, match="holds a 'nafnet' model, not 'xydeblur'"):
        jaxir.load_weights("xydeblur", tmp_path / "w.msgpack")
    with pytest.raises(ValueError, match="name the model"):
        jaxir.load_weights(None, tmp_path / "official.pth")


def test_restore_keeps_kind_dtype_and_layout(tiny, tmp_path):
    rng = np.random.default_rng(0)
    image = rng.random((18, 22, 3), np.float32)
    want = np.clip(_apply(tiny, image), 0, 1)

    out = jaxir.restore(image, model=tiny)
    assert out.dtype == np.float32 and out.shape == image.shape
    np.testing.assert_allclose(out, want, atol=1e-6)
    assert isinstance(jaxir.restore(jnp.asarray(image), model=tiny), jax.Array)

    eight = np.round(image * 255).astype(np.uint8)
    assert jaxir.restore(eight, model=tiny).dtype == np.uint8
    sixteen = np.round(image * 65535).astype(np.uint16)
    out16 = jaxir.restore(sixteen, model=tiny)
    assert out16.dtype == np.uint16
    # Computed in float: within one 16-bit step of the float restoration of the 16-bit input.
    np.testing.assert_allclose(out16 / 65535.0, np.clip(_apply(tiny, sixteen / 65535.0), 0, 1), atol=1.01 / 65535)

    grey = eight[..., 0]
    out_grey = jaxir.restore(grey, model=tiny)
    assert out_grey.shape == grey.shape and out_grey.dtype == np.uint8
    rgba = np.concatenate([eight, rng.integers(0, 256, (18, 22, 1), dtype=np.uint8)], axis=-1)
    out_rgba = jaxir.restore(rgba, model=tiny)
    np.testing.assert_array_equal(out_rgba[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out_rgba[..., :3], jaxir.restore(eight, model=tiny))

    pil = Image.fromarray(rgba, "RGBA")
    out_pil = jaxir.restore(pil, model=tiny, tile=16, overlap=8)
    assert out_pil.mode == "RGBA" and out_pil.size == pil.size
    np.testing.assert_array_equal(np.asarray(out_pil)[..., 3], rgba[..., 3])
    pil16 = Image.fromarray(sixteen[..., 0].astype(np.int32), "I")
    out_pil16 = jaxir.restore(pil16, model=tiny)
    assert out_pil16.mode == "I" and np.asarray(out_pil16).max() > 255  # still 16-bit values

    save_weights(tmp_path / "w.msgpack", tiny.name, tiny.kwargs, tiny.variables)
    np.testing.assert_allclose(jaxir.restore(image, model=str(tmp_path / "w.msgpack")), want, atol=1e-6)
    with pytest.raises(TypeError, match="jaxir Model"):
        jaxir.restore(image, model=(tiny.module, tiny.variables))
    with pytest.raises(ValueError, match="1-4 channels"):
        jaxir.restore(np.zeros((8, 8, 5), np.float32), model=tiny)


def test_colour_through_a_greyscale_model_is_restored_per_channel_and_said(tiny):
    grey_model = jaxir.create_model("nafnet", img_channel=1, **TINY)
    image = np.random.default_rng(1).random((12, 16, 3), np.float32)
    with pytest.warns(UserWarning, match="each colour channel was restored on its own"):
        out = jaxir.restore(image, model=grey_model)
    assert out.shape == image.shape
    np.testing.assert_allclose(out[..., 1:2], np.clip(_apply(grey_model, image[..., 1:2]), 0, 1), atol=1e-6)


def test_create_model_is_seeded(tiny):
    again = jaxir.create_model("nafnet", seed=1, **TINY)
    other = jaxir.create_model("nafnet", seed=2, **TINY)
    leaves = lambda m: jax.tree_util.tree_leaves(m.variables)  # noqa: E731
    assert all(np.array_equal(a, b) for a, b in zip(leaves(tiny), leaves(again)))
    assert not all(np.array_equal(a, b) for a, b in zip(leaves(tiny), leaves(other)))
    assert jaxir.count_params(tiny) == jaxir.count_params("nafnet", **TINY)
