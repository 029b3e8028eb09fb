"""Restormer: block structure, the dual-pixel variant, input checks, bfloat16, experiment configs.

Numerical parity with the official code is tests/test_parity.py (restormer, restormer_dualpixel).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from data_pipelines.pipelines import ProgressiveSchedule
from jaxir import registry
from jaxir.config import load_config
from jaxir.inference import make_predict_fn
from jaxir.models.restormer import GDFN, MDTA, TransformerBlock

SMALL = dict(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 2, 2, 4))


def _init(model, x):
    return model.init(jax.random.key(0), x)


def _random_variables(model, x, seed=0):
    """Variables of the right shapes filled from numpy: skips compiling the random initialisers (slow on CPU)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0.0, 0.2, s.shape), jnp.float32), shapes)


def _shapes(model, x):
    return {k: v.shape for k, v in _flat_params(jax.eval_shape(lambda: model.init(jax.random.key(0), x))).items()}


def _flat_params(variables):
    return {"/".join(k): v for k, v in traverse_util.flatten_dict(variables["params"]).items()}


def test_gdfn_hidden_width_truncates():
    """int(48 * 2.66) = 127 hidden channels per gate branch (254 before the split)."""
    x = jnp.zeros((1, 8, 8, 48))
    params = _shapes(GDFN(ffn_expansion_factor=2.66), x)
    assert params["project_in/kernel"] == (1, 1, 48, 254)
    assert params["dwconv/kernel"] == (3, 3, 1, 254)
    assert params["project_out/kernel"] == (1, 1, 127, 48)
    assert "project_in/bias" not in params  # bias=False by default, as the official models


def test_mdta_matches_a_direct_reference():
    """Transposed attention: per head, softmax(temperature * q_hat k_hat^T) over channels, q/k L2-normalised over pixels."""
    heads, c, h, w = 2, 8, 4, 6
    x = jax.random.normal(jax.random.key(1), (2, h, w, c))
    module = MDTA(num_heads=heads)
    variables = _random_variables(module, x)
    temperature = np.array([0.7, 2.5], np.float32)
    variables["params"]["temperature"] = jnp.asarray(temperature)
    got = np.asarray(module.apply(variables, x))

    p = _flat_params(variables)
    qkv = np.einsum("bhwc,cd->bhwd", np.asarray(x), np.asarray(p["qkv/kernel"])[0, 0])
    dw = np.asarray(p["qkv_dwconv/kernel"])[:, :, 0, :]
    padded = np.pad(qkv, ((0, 0), (1, 1), (1, 1), (0, 0)))
    qkv = sum(padded[:, i:i + h, j:j + w] * dw[i, j] for i in range(3) for j in range(3))
    q, k, v = np.split(qkv.reshape(2, h * w, 3 * c), 3, axis=-1)
    out = np.zeros((2, h * w, c), np.float32)
    d = c // heads
    for head in range(heads):
        sl = slice(head * d, (head + 1) * d)
        qh, kh, vh = q[..., sl].transpose(0, 2, 1), k[..., sl].transpose(0, 2, 1), v[..., sl].transpose(0, 2, 1)
        qh = qh / np.linalg.norm(qh, axis=-1, keepdims=True)
        kh = kh / np.linalg.norm(kh, axis=-1, keepdims=True)
        logits = temperature[head] * qh @ kh.transpose(0, 2, 1)  # (B, d, d): channel to channel
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        out[..., sl] = (attn @ vh).transpose(0, 2, 1)
    want = np.einsum("bnc,cd->bnd", out, np.asarray(p["project_out/kernel"])[0, 0]).reshape(2, h, w, c)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_temperature_is_one_per_head():
    assert _shapes(TransformerBlock(num_heads=4), jnp.zeros((1, 8, 8, 16)))["attn/temperature"] == (4,)
    params = _flat_params(_init(MDTA(num_heads=4), jnp.zeros((1, 4, 4, 16))))
    np.testing.assert_array_equal(params["temperature"], np.ones(4))


def test_bias_free_layer_norm_has_no_bias_and_skips_centring():
    x = jax.random.normal(jax.random.key(2), (1, 4, 4, 16)) + 3.0
    with_bias = _shapes(TransformerBlock(num_heads=2, layer_norm_type="WithBias"), x)
    bias_free = _shapes(TransformerBlock(num_heads=2, layer_norm_type="BiasFree"), x)
    assert "norm1/body/bias" in with_bias and "norm1/body/bias" not in bias_free
    from jaxir.models.restormer import RestormerLayerNorm

    norm = RestormerLayerNorm("BiasFree")
    y = np.asarray(norm.apply({"params": {"body": {"scale": jnp.ones(16)}}}, x))
    xn = np.asarray(x)
    np.testing.assert_allclose(y, xn / np.sqrt(xn.var(-1, keepdims=True) + 1e-5), rtol=1e-5, atol=1e-5)


def test_unknown_layer_norm_type_is_an_error():
    model = registry.build_model("restormer", layer_norm_type="Batch", **SMALL)
    with pytest.raises(ValueError, match="layer_norm_type"):
        _shapes(model, jnp.zeros((1, 16, 16, 3)))


def test_global_residual_and_dual_pixel_skip():
    """With the output conv zeroed, the single-image model returns its input; the dual-pixel one returns 0."""
    x = jax.random.uniform(jax.random.key(3), (1, 16, 16, 3))
    model = registry.build_model("restormer", **SMALL)
    variables = _random_variables(model, x)
    params = _flat_params(variables)
    assert not any(k.startswith("skip_conv") for k in params)
    zeroed = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.zeros_like(v) if path[1].key == "output" else v, variables)
    np.testing.assert_allclose(jax.jit(model.apply)(zeroed, x), x, atol=1e-6)

    dual = registry.build_model("restormer", inp_channels=6, dual_pixel_task=True, **SMALL)
    x6 = jnp.concatenate([x, x[..., ::-1]], axis=-1)
    variables = _random_variables(dual, x6)
    params = _flat_params(variables)
    assert params["skip_conv/kernel"].shape == (1, 1, 8, 16)  # dim -> 2 * dim at the refinement stage
    assert params["patch_embed/proj/kernel"].shape == (3, 3, 6, 8)
    zeroed = jax.tree_util.tree_map_with_path(
        lambda path, v: jnp.zeros_like(v) if path[1].key == "output" else v, variables)
    out = jax.jit(dual.apply)(zeroed, x6)
    assert out.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("shape, match", [
    ((1, 20, 16, 3), "divisible by 8"),
    ((1, 16, 12, 3), "divisible by 8"),
    ((1, 16, 16, 4), "3 channels"),
    ((16, 16, 3), "NHWC"),
])
def test_invalid_inputs_are_rejected(shape, match):
    model = registry.build_model("restormer", **SMALL)
    with pytest.raises(ValueError, match=match):
        _shapes(model, jnp.zeros(shape))


def test_odd_sizes_through_inference_padding():
    entry = registry.get_entry("restormer")
    assert entry.pad_multiple == 8
    model = registry.build_model("restormer", **SMALL)
    variables = _random_variables(model, jnp.zeros((1, 16, 16, 3)))
    predict = make_predict_fn(model, variables, entry.pad_multiple, entry.min_size)
    image = np.random.default_rng(0).uniform(size=(1, 19, 13, 3)).astype(np.float32)
    assert predict(image).shape == image.shape


def test_official_kwargs_are_translated():
    official = dict(inp_channels=6, out_channels=3, dim=8, num_blocks=[1, 1, 1, 2], num_refinement_blocks=1,
                    heads=[1, 2, 2, 4], ffn_expansion_factor=2.66, bias=True, LayerNorm_type="BiasFree",
                    dual_pixel_task=True)
    _, model = registry.build_official("swz30/Restormer", "Restormer", official)
    assert model.use_bias and model.layer_norm_type == "BiasFree" and model.inp_channels == 6
    assert model.num_blocks == (1, 1, 1, 2)


def test_bfloat16_compute_keeps_float32_params_and_finite_output():
    model = registry.build_model("restormer", dtype=jnp.bfloat16, **SMALL)
    x = jax.random.uniform(jax.random.key(4), (1, 16, 24, 3))
    variables = _random_variables(model, x)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(variables))
    y = jax.jit(model.apply)(variables, x)
    assert y.dtype == jnp.float32 and y.shape == x.shape and np.isfinite(np.asarray(y)).all()


@pytest.mark.slow
def test_gradients_reach_every_parameter():
    model = registry.build_model("restormer", inp_channels=6, dual_pixel_task=True, **SMALL)
    x = jax.random.uniform(jax.random.key(5), (1, 16, 16, 6))
    variables = _random_variables(model, x)
    grads = jax.jit(jax.grad(lambda p: jnp.mean(model.apply({"params": p}, x) ** 2)))(variables["params"])
    for path, g in _flat_params({"params": grads}).items():
        assert np.any(np.asarray(g) != 0), f"no gradient reaches {path}"


# --- experiment configs ---

@pytest.mark.parametrize("spec, channels, dual", [
    ("experiments/restormer_gopro.py", 3, False),
    ("experiments/restormer_dpdd.py", 6, True),
    ("experiments/restormer_dpdd.py:single", 3, False),
])
def test_restormer_configs(spec, channels, dual):
    config = load_config(spec)
    kwargs = config.model.kwargs.to_dict()
    assert kwargs["inp_channels"] == channels and kwargs["dual_pixel_task"] == dual
    assert config.data.get("dual_pixel", False) == dual
    assert config.data.train.source == "tfds"
    model = registry.build_model(config.model.name, **kwargs)
    assert model.dim == 48 and model.num_blocks == (4, 6, 6, 8)

    schedule = ProgressiveSchedule(**config.data.progressive.to_dict())
    assert sum(schedule.milestones) == config.train.num_steps == 300_000
    assert schedule.sizes(0) == (128, 64) and schedule.sizes(91_999) == (128, 64)
    assert schedule.sizes(92_000) == (160, 40) and schedule.sizes(299_999) == (384, 8)
    assert (config.data.crop_size, config.data.batch_size) == schedule.sizes(0)
    assert dict(config.loss.terms[0]) == {"name": "l1", "weight": 1.0}
    assert config.optim.lr == 3e-4 and config.optim.weight_decay == 1e-4 and config.optim.clip_norm == 0.01
    assert list(config.optim.periods) == [92_000, 208_000] and list(config.optim.eta_mins) == [3e-4, 1e-6]


def test_restormer_config_arguments_are_checked():
    with pytest.raises(ValueError, match="must be one of"):
        load_config("experiments/restormer_dpdd.py:triple")
    with pytest.raises(ValueError, match="no argument"):
        load_config("experiments/restormer_gopro.py:fast")
