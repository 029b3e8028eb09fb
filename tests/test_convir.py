"""ConvIR (all task variants): attention blocks against PyTorch primitives, sizes, variants, dtypes.

The full-network golden parity is in tests/test_parity.py.
"""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaxir import registry
from jaxir.models import convir
from jaxir.parity import count_params


def random_variables(model, *args, seed=0, scale=0.05, **kwargs):
    """Variables shaped by an abstract init, filled with small random numbers (no compiled init)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))
    rng = np.random.default_rng(seed)

    def fill(path, s):
        if path[-1].key == "var":
            return jnp.asarray(1.0 + rng.random(s.shape), s.dtype)
        return jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype)

    return jax.tree_util.tree_map_with_path(fill, shapes)


def as_torch(x):
    return torch.from_numpy(np.array(x))


def nchw(x):
    return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def nhwc(t):
    return t.numpy().transpose(0, 2, 3, 1)


def test_resize_matches_torch_align_corners():
    x = np.random.default_rng(0).standard_normal((2, 5, 7, 3)).astype(np.float32)
    for size in ((10, 14), (40, 56), (5, 7), (9, 3)):
        want = F.interpolate(nchw(x), size=size, mode="bilinear", align_corners=True)
        np.testing.assert_allclose(convir.resize_bilinear_align_corners(jnp.asarray(x), size), nhwc(want), atol=1e-6)


def _modulation_reference(filtered, identity, mean, p):
    inside, lamb_l, lamb_h = (as_torch(p[k])[None, :, None, None]
                              for k in ("inside_all", "lamb_l", "lamb_h"))
    return (filtered * (inside + 1) - inside * mean) * lamb_l + identity * (lamb_h + 1)


@pytest.mark.parametrize("dilation", [1, 3])
def test_square_attention_matches_unfold_reference(dilation):
    """Dilated square attention: per-image 3x3 filters from the global mean, applied per channel group."""
    n, h, w, c, group, k = 2, 9, 11, 16, 8, 3
    layer = convir.DynamicFilter(c, k, dilation, group)
    x = np.random.default_rng(1).standard_normal((n, h, w, c)).astype(np.float32)
    variables = random_variables(layer, jnp.asarray(x), scale=0.5)
    ours = layer.apply(variables, jnp.asarray(x))

    # Reference written from the paper's description with torch primitives (NCHW).
    p, stats = variables["params"], variables["batch_stats"]["bn"]
    xt = nchw(x)
    mean = xt.mean(dim=(2, 3), keepdim=True)
    logits = torch.einsum("nc,co->no", mean[:, :, 0, 0], as_torch(p["conv"]["kernel"][0, 0]))
    logits = (logits - as_torch(stats["mean"])) / torch.sqrt(as_torch(stats["var"]) + 1e-5)
    logits = logits * as_torch(p["bn"]["scale"]) + as_torch(p["bn"]["bias"])
    filters = torch.tanh(logits).reshape(n, group, 1, k * k, 1)
    patches = F.unfold(F.pad(xt, [dilation] * 4, mode="reflect"), k, dilation=dilation)
    filtered = (patches.reshape(n, group, c // group, k * k, h * w) * filters).sum(3).reshape(n, c, h, w)
    want = _modulation_reference(filtered, xt, mean, p)
    np.testing.assert_allclose(ours, nhwc(want), atol=2e-5)


@pytest.mark.parametrize("horizontal", [True, False])
def test_strip_attention_matches_unfold_reference(horizontal):
    """Dilated rectangle attention: 1x3 (horizontal) or 3x1 (vertical) filters, mean along the strip."""
    n, h, w, c, group, k, d = 2, 10, 12, 16, 8, 3, 4
    layer = convir.StripAttention(c, k, d, group, horizontal)
    x = np.random.default_rng(2).standard_normal((n, h, w, c)).astype(np.float32)
    variables = random_variables(layer, jnp.asarray(x), scale=0.5)
    ours = layer.apply(variables, jnp.asarray(x))

    p = variables["params"]
    xt = nchw(x)
    logits = torch.einsum("nc,co->no", xt.mean(dim=(2, 3)), as_torch(p["conv"]["kernel"][0, 0]))
    filters = torch.tanh(logits).reshape(n, group, 1, k, 1)
    pad, kernel, strip_mean = ([d, d, 0, 0], (1, k), xt.mean(3, keepdim=True)) if horizontal else \
        ([0, 0, d, d], (k, 1), xt.mean(2, keepdim=True))
    patches = F.unfold(F.pad(xt, pad, mode="reflect"), kernel, dilation=d)
    filtered = (patches.reshape(n, group, c // group, k, h * w) * filters).sum(3).reshape(n, c, h, w)
    want = _modulation_reference(filtered, xt, strip_mean, p)
    np.testing.assert_allclose(ours, nhwc(want), atol=2e-5)


def test_attention_identity_at_official_init():
    """Zero-initialised modulation: each attention starts as the identity, as in the official init."""
    x = jnp.asarray(np.random.default_rng(3).standard_normal((1, 16, 16, 8)), jnp.float32)
    out, variables = jax.jit(convir.DynamicFilter(8, 3, 2, 8).init_with_output)(jax.random.key(0), x)
    np.testing.assert_allclose(out, x, atol=1e-6)
    # The filter predictor keeps the official kaiming_normal(fan_out) init: std sqrt(2 / (8 * 9)).
    kernel = variables["params"]["conv"]["kernel"]
    assert kernel.shape == (1, 1, 8, 72)
    assert 0.7 < float(jnp.std(kernel)) / np.sqrt(2 / 72) < 1.3
    out, variables = jax.jit(convir.CubicAttention(8, 8, 2, 3).init_with_output)(jax.random.key(0), x)
    np.testing.assert_allclose(out, x, atol=1e-6)
    assert variables["params"]["W_spatial_att"]["conv"]["kernel"].shape == (1, 1, 8, 24)


def test_deep_pool_layer_branches_and_names():
    layer = convir.DeepPoolLayer(8, 8, (7, 9, 11))
    shapes = jax.eval_shape(lambda: layer.init(jax.random.key(0), jnp.ones((1, 64, 64, 8))))
    params = shapes["params"]
    assert sorted(params) == ["conv_sum", "convs_0", "convs_1", "convs_2", "dynas_0", "dynas_1", "dynas_2"]
    assert set(params["dynas_0"]) == {"square_att", "strip_att"}
    assert set(params["dynas_0"]["strip_att"]) == {"H_spatial_att", "W_spatial_att", "gamma", "beta"}
    assert set(shapes["batch_stats"]["dynas_2"]["square_att"]["bn"]) == {"mean", "var"}
    # The 8x-pooled branch at 64 has 8 rows: reflection by 7 fits, by 8 it would not.
    with pytest.raises(ValueError, match="reflection padding of 8"):
        jax.eval_shape(lambda: convir.DeepPoolLayer(8, 8, (8, 9, 11)).init(jax.random.key(0), jnp.ones((1, 64, 64, 8))))


def test_min_sizes_and_registry_entries():
    assert convir.min_input_size((7, 9, 11)) == 256
    assert convir.min_input_size((3, 7, 9)) == 128
    motion, derain = registry.get_entry("convir"), registry.get_entry("convir_derain")
    assert (motion.pad_multiple, motion.min_size) == (32, 256)
    assert (derain.pad_multiple, derain.min_size) == (32, 128)
    assert registry.build_model("convir").dilations == (7, 9, 11)
    assert registry.build_model("convir_derain").dilations == (3, 7, 9)
    for entry, file in ((motion, "Motion_Deblurring/models/ConvIR.py"), (derain, "Image_deraining/models/ConvIR.py")):
        assert registry.entry_for_official("c-yn/ConvIR", "ConvIR", file) is entry


def test_versions_and_official_kwargs():
    assert [convir.build_convir(version=v).num_res for v in ("small", "base", "large")] == [4, 8, 16]
    assert convir.build_convir().num_res == 16 and convir.build_convir().base_channel == 32
    with pytest.raises(ValueError, match="version"):
        convir.build_convir(version="huge")
    with pytest.raises(ValueError, match="not both"):
        convir.build_convir(version="small", num_res=4)
    # Dehazing/ITS's `data` argument always yields [7, 9, 11], even for GTA5.
    entry = registry.get_entry("convir_derain")
    model = entry.builder(**entry.translate_kwargs({"version": "base", "data": "GTA5"}))
    assert (model.num_res, model.dilations) == (8, (7, 9, 11))
    model = entry.builder(**entry.translate_kwargs({"num_res": 2, "base_channel": 8, "dilation": [3, 7, 9]}))
    assert (model.num_res, model.base_channel, model.dilations) == (2, 8, (3, 7, 9))


def test_paper_param_counts_from_versions():
    x = jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
    counts = {v: count_params(registry.build_model("convir", version=v), x) for v in ("small", "base", "large")}
    assert counts == {"small": 5_530_505, "base": 8_630_665, "large": 14_830_985}
    assert count_params(registry.build_model("convir_derain", version="small"), x) == 5_530_505


def test_invalid_inputs_raise():
    model = convir.build_convir(num_res=1, base_channel=8)
    init = lambda shape: jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.ones(shape)))
    with pytest.raises(ValueError, match="divisible by 32"):
        init((1, 256, 272, 3))
    with pytest.raises(ValueError, match="at least 256"):
        init((1, 224, 256, 3))
    with pytest.raises(ValueError, match="3 input channels"):
        init((1, 256, 256, 4))
    with pytest.raises(ValueError, match="base_channel divisible by 8"):
        jax.eval_shape(lambda: convir.ConvIR(num_res=1, base_channel=12).init(jax.random.key(0), jnp.ones((1, 256, 256, 3))))
    with pytest.raises(ValueError, match="3 dilations"):
        jax.eval_shape(lambda: convir.ConvIR(num_res=1, base_channel=8, dilations=(3, 7)).init(
            jax.random.key(0), jnp.ones((1, 256, 256, 3))))


@pytest.fixture(scope="module")
def tiny_derain():
    model = convir.build_convir_derain(num_res=1, base_channel=8)
    x = jnp.asarray(np.random.default_rng(4).random((1, 128, 160, 3), np.float32))
    variables = random_variables(model, x)
    return model, x, variables, jax.jit(lambda v, x: model.apply(v, x))(variables, x)


def test_outputs_coarse_to_fine(tiny_derain):
    _, x, _, outputs = tiny_derain
    assert [o.shape for o in outputs] == [(1, 32, 40, 3), (1, 64, 80, 3), (1, 128, 160, 3)]
    assert all(np.all(np.isfinite(o)) for o in outputs)
    # Each output is a residual on the input at its scale.
    assert np.abs(np.asarray(outputs[-1] - x)).mean() < 1.0


def test_batch_norm_training_mode(tiny_derain):
    model, x, variables, outputs = tiny_derain
    # Training normalises the filter logits with batch statistics and updates the running ones.
    x2 = jnp.concatenate([x, x[:, ::-1]], axis=0)
    train_out, updates = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x2)
    old = flax.traverse_util.flatten_dict(variables["batch_stats"])
    new = flax.traverse_util.flatten_dict(updates["batch_stats"])
    assert old.keys() == new.keys() and len(old) == 2 * 6 * 3  # mean/var, 6 stages, 3 branches
    assert all(not np.allclose(old[k], new[k]) for k in old)
    assert train_out[-1].shape == (2, 128, 160, 3)
    assert not np.allclose(train_out[-1][:1], outputs[-1])


def test_bfloat16_filter_block_is_finite_and_close():
    block = convir.ResBlock(8, use_filter=True, dilations=(1, 2, 3))
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 32, 32, 8)), jnp.float32)
    variables = random_variables(block, x, scale=0.2)
    out32 = jax.jit(block.apply)(variables, x)
    half = convir.ResBlock(8, True, (1, 2, 3), jnp.bfloat16)
    out16 = jax.jit(half.apply)(variables, x.astype(jnp.bfloat16))
    assert out16.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(out16, np.float32)))
    # bfloat16 keeps ~3 significant digits: compare against the output's scale.
    error = np.abs(np.asarray(out16, np.float32) - np.asarray(out32))
    assert error.max() < 0.03 * np.abs(np.asarray(out32)).max()


@pytest.mark.slow
def test_bfloat16_compute_is_finite_and_close(tiny_derain):
    _, x, variables, out32 = tiny_derain
    half = convir.build_convir_derain(num_res=1, base_channel=8, dtype=jnp.bfloat16)
    out16 = jax.jit(lambda v, x: half.apply(v, x))(variables, x)
    for a, b in zip(out16, out32):
        assert a.dtype == jnp.float32 and np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, atol=0.1)


@pytest.mark.parametrize("spec, model, num_res, steps", [
    ("convir_gopro.py", "convir", 16, 3000 * 526),
    ("convir_gopro.py:s", "convir", 4, 3000 * 526),
    ("convir_derain.py:b", "convir_derain", 8, 300 * 3428),
    ("convir_dehaze_its.py", "convir", 4, 1000 * 3498),
    ("convir_dehaze_its.py:nh_haze-b", "convir", 8, 5000 * 23),
    ("convir_dehaze_ots.py:l", "convir", 16, 30 * 39244),
    ("convir_desnow.py:srrs-b", "convir", 8, 2000 * 313),
])
def test_experiment_configs(spec, model, num_res, steps):
    from jaxir.config import load_config
    from jaxir.losses import build_loss

    config = load_config(f"experiments/{spec}")
    assert (config.model.name, config.model.kwargs.num_res, config.train.num_steps) == (model, num_res, steps)
    assert registry.build_model(config.model.name, **config.model.kwargs).num_res == num_res
    entry = registry.get_entry(model)
    crop = config.data.crop_size
    for side in (crop, crop) if isinstance(crop, int) else crop:
        assert side % entry.pad_multiple == 0 and side >= entry.min_size
    assert [t["name"] for t in config.loss.terms] == ["l1", "fft"] and config.loss.terms[1]["weight"] == 0.1
    build_loss([dict(t) for t in config.loss.terms], config.loss.multiscale)
    assert 0 < config.optim.warmup_steps < steps and config.optim.min_lr == 1e-6
    assert config.optim.clip_norm in (0.001, 0.01)


def test_experiment_config_errors():
    from experiments import convir_dehaze_its, convir_desnow, convir_gopro

    with pytest.raises(ValueError, match="size"):
        convir_gopro.get_config("xl")
    with pytest.raises(ValueError, match="dataset"):
        convir_dehaze_its.get_config("haze4k-s")
    with pytest.raises(ValueError, match="dataset"):
        convir_desnow.get_config("rain")
