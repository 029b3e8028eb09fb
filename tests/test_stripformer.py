"""Stripformer and the shared attention helpers: strip structure, input offset, input checks, bfloat16, config.

Numerical parity with the official code is tests/test_parity.py (stripformer).
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxir import registry
from jaxir.config import load_config
from jaxir.models.attention import dot_product_attention, l2_normalize, merge_heads, split_heads
from jaxir.models.stripformer import InterSA, IntraSA, Mlp

# Smallest widths the official head counts allow: 10 / 2 = 5 bottleneck channels per half, 5 heads;
# decoder 6 / 2 = 3 per half, 3 heads.
TINY = dict(channels=(8, 8, 10), decoder_dim=6, heads=5, decoder_heads=3)


def _random_variables(model, *inputs, seed=0):
    """Variables of the right shapes filled from numpy: skips compiling the random initialisers (slow on CPU)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: jnp.asarray(rng.normal(0.0, 0.2, s.shape), jnp.float32), shapes)


def test_split_and_merge_heads_round_trip_and_order():
    x = jnp.arange(2 * 3 * 12, dtype=jnp.float32).reshape(2, 3, 12)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(heads[:, 1], x[..., 3:6])  # head 1 holds features 3..5
    np.testing.assert_array_equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="not divisible by 5 heads"):
        split_heads(x, 5)


def test_dot_product_attention_and_normalize_match_numpy():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 3, 5, 4)).astype(np.float32) for _ in range(3))
    logits = q @ k.swapaxes(-1, -2) * 0.3
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    np.testing.assert_allclose(dot_product_attention(q, k, v, 0.3), weights @ v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l2_normalize(q), q / np.linalg.norm(q, axis=-1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(l2_normalize(jnp.zeros((2, 3))), 0.0)  # eps guards the zero vector


def test_intra_strip_attention_stays_in_its_row_and_column():
    """A pixel change reaches only its row and column (then the PEG's 3x3 conv widens that by one).

    One channel is changed: a shift of all channels of a pixel would vanish in the LayerNorm.
    """
    block = IntraSA(num_heads=2)
    x = jax.random.normal(jax.random.key(0), (1, 9, 11, 8))
    variables = _random_variables(block, x)
    apply = jax.jit(block.apply)
    changed = np.abs(np.asarray(apply(variables, x.at[0, 4, 5, 0].add(3.0)) - apply(variables, x))).max(-1)[0]
    rows, cols = np.nonzero(changed > 1e-6)
    assert changed[4, 0] > 1e-6 and changed[0, 5] > 1e-6  # the far ends of its row and column
    assert np.all((np.abs(rows - 4) <= 1) | (np.abs(cols - 5) <= 1))


def test_inter_strip_attention_mixes_rows():
    """Whole rows are tokens: a change in one row reaches every row and column."""
    block = InterSA(num_heads=2)
    x = jax.random.normal(jax.random.key(1), (1, 8, 12, 8))
    variables = _random_variables(block, x)
    apply = jax.jit(block.apply)
    changed = np.abs(np.asarray(apply(variables, x.at[0, 4, 5, 0].add(3.0)) - apply(variables, x))).max(-1)[0]
    assert np.all(changed > 1e-7)


def test_mlp_uses_the_official_initialisation():
    x = jnp.zeros((1, 4, 64))
    params = Mlp().init(jax.random.key(0), x)["params"]
    bound = math.sqrt(6.0 / (64 + 256))  # Xavier uniform, fan_in + fan_out
    assert params["fc1"]["kernel"].shape == (64, 256)
    assert float(jnp.abs(params["fc1"]["kernel"]).max()) <= bound
    assert float(jnp.abs(params["fc1"]["kernel"]).max()) > 0.9 * bound
    assert 0 < float(jnp.abs(params["fc2"]["bias"]).max()) < 1e-5  # N(0, 1e-6)


def test_input_offset_wraps_the_network():
    """input_offset=0.5 runs the network on x - 0.5 and adds 0.5 back, as the official scripts."""
    x = jax.random.uniform(jax.random.key(2), (1, 8, 12, 3))
    plain = registry.build_model("stripformer", **TINY)
    shifted = registry.build_model("stripformer", input_offset=0.5, **TINY)
    variables = _random_variables(plain, x)
    both = jax.jit(lambda v, x: (plain.apply(v, x - 0.5) + 0.5, shifted.apply(v, x)))
    want, got = both(variables, x)
    assert float(jnp.max(jnp.abs(got - x))) > 1e-3  # the network did something
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_paper_widths_and_block_layout():
    model = registry.build_model("stripformer")
    assert tuple(model.channels) == (64, 128, 320) and model.decoder_dim == 192
    assert model.heads == 5 and model.decoder_heads == 3 and model.input_offset == 0.0
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3))))
    params = {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(shapes["params"]).items()}
    assert params["Trans_block_1/qkv_local_h/kernel"] == (160, 480)  # intra: half the channels
    assert params["Trans_block_2/conv_h/kernel"] == (1, 1, 160, 480)  # inter: 1x1 conv to q, k, v
    assert params["Trans_block_12/PEG/PEG/kernel"] == (3, 3, 1, 320)  # depthwise position encoding
    assert params["decoder/de_block_6/fuse_out/kernel"] == (1, 1, 192, 192)
    assert "Trans_block_13/PEG/PEG/kernel" not in params and "decoder/de_block_7/PEG/PEG/kernel" not in params


@pytest.mark.parametrize("shape, match", [
    ((1, 10, 16, 3), "divisible by 4"),
    ((1, 16, 18, 3), "divisible by 4"),
    ((1, 16, 16, 6), "RGB"),
])
def test_invalid_inputs_are_rejected(shape, match):
    model = registry.build_model("stripformer", **TINY)
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))


def test_widths_that_do_not_split_into_heads_are_rejected():
    model = registry.build_model("stripformer", channels=(8, 8, 12), decoder_dim=6)  # 6 channels, 5 heads
    with pytest.raises(ValueError, match="not divisible by 5 heads"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3))))


def test_bfloat16_compute_on_a_non_square_input():
    model = registry.build_model("stripformer", dtype=jnp.bfloat16, **TINY)
    x = jax.random.uniform(jax.random.key(3), (2, 12, 20, 3))
    variables = _random_variables(model, x)
    y = jax.jit(model.apply)(variables, x)
    assert y.dtype == jnp.float32 and y.shape == x.shape and np.isfinite(np.asarray(y)).all()


@pytest.mark.parametrize("stage, crop, epochs", [("pretrain", 256, 3000), ("finetune", 512, 1000)])
def test_stripformer_config(stage, crop, epochs):
    config = load_config(f"experiments/stripformer_gopro.py:{stage}")
    model = registry.build_model(config.model.name, **config.model.kwargs.to_dict())
    assert model.input_offset == 0.5 and tuple(model.channels) == (64, 128, 320)
    assert config.data.crop_size == crop and config.data.batch_size == 8
    assert config.train.num_steps == epochs * 263
    assert config.optim.lr == 1e-4 and config.optim.min_lr == 1e-7 and config.optim.weight_decay == 0.0
    assert [(t["name"], t["weight"]) for t in config.loss.terms] == [("charbonnier", 1.0), ("edge", 0.05)]
    with pytest.raises(ValueError, match="must be one of"):
        load_config("experiments/stripformer_gopro.py:finetuned")
