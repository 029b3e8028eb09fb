"""MIMO-UNet / MIMO-UNet+ and the shared MIMO-family blocks (golden parity: tests/test_parity.py)."""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxir import registry
from jaxir.models import mimo_blocks
from jaxir.models.mimo_unet import MIMOUNet
from jaxir.parity import count_params


def random_variables(model, x, seed=0, scale=0.05):
    """Variables shaped by an abstract init, filled with small random numbers (no compiled init)."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), s.dtype), shapes)


@pytest.fixture(scope="module")
def tiny():
    model = MIMOUNet(num_res=1, base_channel=8)
    x = jnp.asarray(np.random.default_rng(1).random((2, 32, 48, 3), np.float32))
    return model, x, random_variables(model, x)


def test_three_outputs_coarse_to_fine(tiny):
    model, x, variables = tiny
    outputs = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
    assert isinstance(outputs, tuple) and len(outputs) == 3
    assert [o.shape for o in outputs] == [(2, 8, 12, 3), (2, 16, 24, 3), (2, 32, 48, 3)]
    assert all(o.dtype == jnp.float32 for o in outputs)
    # Each output is a residual on the input at its scale (nearest-neighbour pyramid).
    x, x_2, x_4 = mimo_blocks.input_pyramid(x)
    for out, image in zip(outputs, (x_4, x_2, x)):
        assert not np.allclose(out, image)
        assert np.abs(np.asarray(out - image)).mean() < 1.0


def test_input_pyramid_is_torch_nearest():
    x = np.random.default_rng(0).random((1, 3, 12, 20), np.float32)
    ours = mimo_blocks.input_pyramid(jnp.asarray(x.transpose(0, 2, 3, 1)))
    half = torch.nn.functional.interpolate(torch.from_numpy(x), scale_factor=0.5)
    quarter = torch.nn.functional.interpolate(half, scale_factor=0.5)
    np.testing.assert_array_equal(np.asarray(ours[1]), half.numpy().transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(np.asarray(ours[2]), quarter.numpy().transpose(0, 2, 3, 1))
    up = torch.nn.functional.interpolate(half, scale_factor=2)
    np.testing.assert_array_equal(np.asarray(mimo_blocks.double_nearest(ours[1])), up.numpy().transpose(0, 2, 3, 1))


def test_basic_conv_structure():
    x = jnp.ones((1, 8, 8, 4))
    conv = mimo_blocks.BasicConv(6, 3, norm=True)
    variables = jax.eval_shape(lambda: conv.init(jax.random.key(0), x))
    flat = flax.traverse_util.flatten_dict(variables)
    # Official `main.0` is the conv (no bias under norm), `main.1` the BatchNorm.
    assert set(flat) == {("params", "main_0", "kernel"), ("params", "main_1", "scale"), ("params", "main_1", "bias"),
                         ("batch_stats", "main_1", "mean"), ("batch_stats", "main_1", "var")}
    up = mimo_blocks.BasicConv(6, 4, stride=2, transpose=True)
    assert jax.eval_shape(lambda: up.init_with_output(jax.random.key(0), x)[0]).shape == (1, 16, 16, 6)
    with pytest.raises(ValueError, match="activation"):
        mimo_blocks.BasicConv(6, 3, activation="swish").init(jax.random.key(0), x)


def test_paper_param_counts_from_defaults():
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    assert count_params(registry.build_model("mimo_unet"), x) == 6_807_171
    plus = registry.build_model("mimo_unet_plus")
    assert (plus.num_res, plus.skip_dropout) == (20, 0.1)
    assert count_params(plus, x) == 16_107_651


def test_plus_dropout_only_in_training():
    model = MIMOUNet(num_res=1, base_channel=8, skip_dropout=0.5)
    x = jnp.asarray(np.random.default_rng(2).random((1, 16, 16, 3), np.float32))
    variables = random_variables(model, x, scale=0.2)
    run = jax.jit(lambda v, x, key: model.apply(v, x, train=True, rngs={"dropout": key}))
    a = run(variables, x, jax.random.key(0))[-1]
    b = run(variables, x, jax.random.key(1))[-1]
    c = run(variables, x, jax.random.key(0))[-1]
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)
    # Evaluation is deterministic and matches the same network without dropout.
    plain = MIMOUNet(num_res=1, base_channel=8)
    np.testing.assert_allclose(model.apply(variables, x)[-1], plain.apply(variables, x)[-1], atol=1e-6)
    with pytest.raises(flax.errors.InvalidRngError):
        model.apply(variables, x, train=True)


def test_bfloat16_compute_is_finite_and_close(tiny):
    model, x, variables = tiny
    half = MIMOUNet(num_res=1, base_channel=8, dtype=jnp.bfloat16)
    out16 = jax.jit(lambda v, x: half.apply(v, x))(variables, x)
    out32 = model.apply(variables, x)
    for a, b in zip(out16, out32):
        assert a.dtype == jnp.float32 and np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, atol=0.1)


def test_invalid_inputs_raise():
    model = MIMOUNet(num_res=1, base_channel=8)
    with pytest.raises(ValueError, match="divisible by 4"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.ones((1, 30, 32, 3))))
    with pytest.raises(ValueError, match="3 input channels"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.ones((1, 32, 32, 1))))
    with pytest.raises(ValueError, match="NHWC"):
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.ones((32, 32, 3))))


def test_registry_entries():
    for name in ("mimo_unet", "mimo_unet_plus"):
        entry = registry.get_entry(name)
        assert entry.pad_multiple == 4
        assert entry.official_file == "models/MIMOUNet.py"
    assert registry.entry_for_official("chosj95/MIMO-UNet", "MIMOUNetPlus").name == "mimo_unet_plus"


@pytest.mark.parametrize("name", ["mimo_unet", "mimo_unet_plus"])
def test_experiment_configs(name):
    from jaxir.config import load_config

    config = load_config(f"experiments/{name}_gopro.py")
    assert config.model.name == name and registry.build_model(name, **config.model.kwargs) is not None
    assert config.train.num_steps == 3000 * 526
    assert config.optim.schedule == "multistep" and config.optim.gamma == 0.5
    assert list(config.optim.milestones) == [500 * 526 * k for k in range(1, 6)]
    assert [(t["name"], t["weight"]) for t in config.loss.terms] == [("l1", 1.0), ("fft", 0.1)]
    assert config.data.crop_size == 256 and config.data.batch_size == 4
