"""The sharded train step on 8 simulated devices equals the single-device step, replicated and FSDP."""
import functools

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from train_helpers import TinyNet

from jaxir.losses import build_loss
from jaxir.train import sharding as shd
from jaxir.train.optim import make_optimizer
from jaxir.train.state import create_sharded_state
from jaxir.train.step import jit_train_step, make_train_step

OPTIM = {"lr": 1e-2, "b1": 0.9, "b2": 0.99, "weight_decay": 1e-3, "warmup_steps": 1, "clip_norm": 1.0}
NUM_STEPS = 3
FSDP_MIN_SIZE = 64


def _batches(with_input: bool):
    rng = np.random.default_rng(0)
    for _ in range(NUM_STEPS):
        target = rng.random((8, 16, 16, 3), np.float32)
        batch = {"target": target, "seed": rng.integers(0, 2**32, 8, dtype=np.uint32)}
        if with_input:
            batch["input"] = target + 0.1 * rng.standard_normal(target.shape).astype(np.float32)
        yield batch


@functools.lru_cache(maxsize=None)
def _train(num_devices, param_sharding, *, batch_norm=False, with_input=True):
    """(state, losses) after NUM_STEPS steps on the first `num_devices` devices; memoised across tests."""
    devices = jax.devices()[:num_devices]
    model = TinyNet(features=16, use_batch_norm=batch_norm)
    tx, schedule = make_optimizer(OPTIM, NUM_STEPS)
    mesh = shd.make_mesh(devices)
    state, shardings = create_sharded_state(model, tx, (1, 16, 16, 3), 0, True, mesh, param_sharding, FSDP_MIN_SIZE)
    step = jit_train_step(
        make_train_step(model, build_loss([{"name": "l1"}]), tx, schedule, ema_decay=0.5,
                        degradation=None if with_input else [{"name": "gaussian_noise", "sigma": 0.1}]),
        shardings, mesh)
    losses = []
    for batch in _batches(with_input):
        state, metrics = step(state, shd.shard_batch(batch, mesh))
        losses.append(float(metrics["loss"]))
    return state, losses


@pytest.fixture(scope="module")
def single_device_run():
    assert jax.device_count() == 8, "tests/conftest.py should simulate 8 CPU devices"
    return _train(1, "replicated")


def _assert_close(tree_a, tree_b):
    for a, b in zip(jax.tree.leaves(jax.device_get(tree_a)), jax.tree.leaves(jax.device_get(tree_b))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("param_sharding", ["replicated", "fsdp"])
def test_sharded_step_matches_single_device(single_device_run, param_sharding):
    single_state, single_losses = single_device_run
    state, losses = _train(8, param_sharding)
    np.testing.assert_allclose(losses, single_losses, atol=1e-5, rtol=1e-5)
    _assert_close(state.params, single_state.params)
    _assert_close(state.ema_params, single_state.ema_params)
    _assert_close(state.opt_state, single_state.opt_state)
    assert losses[-1] < losses[0]


def test_fsdp_really_shards_params_optimizer_state_and_ema():
    state, _ = _train(8, "fsdp")
    # Conv_1 kernel (3, 3, 16, 16) = 2304 elements >= 64: split over `data` along an axis of 16.
    kernel = state.params["Conv_1"]["kernel"]
    assert kernel.sharding.spec in (P(None, None, "data", None), P(None, None, None, "data"))
    assert kernel.addressable_shards[0].data.shape[2:] in ((2, 16), (16, 2))
    assert state.ema_params["Conv_1"]["kernel"].sharding.spec == kernel.sharding.spec
    adam = state.opt_state[1][0]  # chain(clip, adamw) -> adamw's scale_by_adam state
    assert adam.mu["Conv_1"]["kernel"].sharding.spec == kernel.sharding.spec
    assert adam.nu["Conv_1"]["kernel"].sharding.spec == kernel.sharding.spec
    # Small parameters (biases of 16) stay replicated; so do the step counters.
    assert state.params["Conv_1"]["bias"].sharding.spec == P()
    assert adam.count.sharding.spec == P()
    # Conv_0's (3, 3, 3, 16) kernel is large enough and shards along its 16-wide output axis.
    assert state.params["Conv_0"]["kernel"].sharding.spec == P(None, None, None, "data")


def test_replicated_mode_keeps_full_copies():
    state, _ = _train(8, "replicated")
    for leaf in jax.tree.leaves(state.params):
        assert leaf.sharding.spec == P() and leaf.addressable_shards[0].data.shape == leaf.shape


def test_batch_norm_and_on_device_synthesis_match_across_device_counts():
    # Batch statistics are global-batch statistics, and synthesised inputs depend on record seeds only.
    single, single_losses = _train(1, "replicated", batch_norm=True, with_input=False)
    sharded, losses = _train(8, "fsdp", batch_norm=True, with_input=False)
    assert single.batch_stats, "the BatchNorm model should carry batch statistics"
    np.testing.assert_allclose(losses, single_losses, atol=1e-5, rtol=1e-5)
    _assert_close(sharded.batch_stats, single.batch_stats)
    _assert_close(sharded.params, single.params)
    assert not np.allclose(losses, _train(1, "replicated")[1]), "inputs were not synthesised"


def test_fsdp_spec_rules():
    assert shd.fsdp_spec((3, 3, 64, 128), 8, 1024) == P(None, None, None, "data")
    assert shd.fsdp_spec((3, 3, 64, 12), 8, 1024) == P(None, None, "data", None)  # largest divisible axis
    assert shd.fsdp_spec((3, 3, 5, 7), 8, 1) == P()  # no axis divisible by 8
    assert shd.fsdp_spec((64,), 8, 1024) == P()  # below the size threshold
    assert shd.fsdp_spec((3, 3, 64, 128), 1, 1) == P()  # one device: nothing to split


def test_batch_layout_and_size_errors():
    mesh = shd.make_mesh()
    batch = shd.shard_batch({"target": np.zeros((16, 4, 4, 3), np.float32)}, mesh)
    assert batch["target"].shape == (16, 4, 4, 3)
    assert batch["target"].sharding.spec == P("data")
    assert batch["target"].addressable_shards[0].data.shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match="batch_size=12 must be divisible by the number of devices"):
        shd.check_batch_size(12, mesh)
    with pytest.raises(ValueError, match="param_sharding must be one of"):
        shd.param_shardings({"w": np.zeros(3)}, mesh, "zero3")
