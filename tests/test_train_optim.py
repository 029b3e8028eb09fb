"""Schedules, AdamW, clipping, EMA, and bfloat16 compute with float32 parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from train_helpers import TinyNet

from jaxir.losses import build_loss
from jaxir.train import sharding as shd
from jaxir.train.optim import ema_decay, make_optimizer, make_schedule, update_ema
from jaxir.train.state import create_sharded_state
from jaxir.train.step import jit_train_step, make_train_step


def test_warmup_cosine_schedule():
    schedule = make_schedule({"lr": 1e-3, "schedule": "cosine", "warmup_steps": 10, "min_lr": 1e-6}, 110)
    assert float(schedule(0)) == 0.0
    np.testing.assert_allclose(float(schedule(5)), 5e-4, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(10)), 1e-3, rtol=1e-6)
    # Halfway through the cosine part the rate is the midpoint of lr and min_lr.
    np.testing.assert_allclose(float(schedule(60)), (1e-3 + 1e-6) / 2, rtol=1e-5)
    np.testing.assert_allclose(float(schedule(110)), 1e-6, rtol=1e-5)
    values = [float(schedule(s)) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_multistep_and_constant_schedules():
    multistep = make_schedule({"lr": 1e-2, "schedule": "multistep", "milestones": [30, 60], "gamma": 0.5}, 100)
    np.testing.assert_allclose([float(multistep(s)) for s in (0, 29, 30, 59, 60, 99)],
                               [1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3], rtol=1e-6)
    warm = make_schedule({"lr": 1e-2, "schedule": "multistep", "warmup_steps": 10, "milestones": [30]}, 100)
    np.testing.assert_allclose([float(warm(s)) for s in (0, 5, 10, 29, 30)], [0, 5e-3, 1e-2, 1e-2, 5e-3], rtol=1e-6)
    constant = make_schedule({"lr": 3e-4, "schedule": "constant"}, 100)
    assert float(constant(0)) == float(constant(99)) == pytest.approx(3e-4)


def test_schedule_errors_are_clear():
    with pytest.raises(ValueError, match="optim.schedule must be one of"):
        make_schedule({"lr": 1e-3, "schedule": "linear"}, 10)
    with pytest.raises(ValueError, match="warmup_steps=20"):
        make_schedule({"lr": 1e-3, "warmup_steps": 20}, 10)
    with pytest.raises(ValueError, match="milestones"):
        make_schedule({"lr": 1e-3, "schedule": "multistep", "milestones": [50, 20]}, 100)
    with pytest.raises(ValueError, match="ema_decay"):
        ema_decay({"ema_decay": 1.0})


def test_adamw_decoupled_weight_decay():
    tx, _ = make_optimizer({"lr": 0.1, "schedule": "constant", "weight_decay": 0.5}, 10)
    params = {"w": jnp.array([2.0, -4.0])}
    updates, _ = tx.update({"w": jnp.zeros(2)}, tx.init(params), params)
    # Zero gradient: only the decay acts, p <- p - lr * wd * p.
    np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], [2.0 * 0.95, -4.0 * 0.95], rtol=1e-6)


def test_global_norm_clipping_before_adam():
    tx, _ = make_optimizer({"lr": 0.1, "schedule": "constant", "b1": 0.9, "clip_norm": 1.0}, 10)
    params = {"a": jnp.zeros(3), "b": jnp.zeros(4)}
    grads = {"a": jnp.full(3, 30.0), "b": jnp.full(4, -40.0)}
    _, state = tx.update(grads, tx.init(params), params)
    adam = state[1][0]
    # Adam's first moment saw the clipped gradient: (1 - b1) * g / |g|, |g| = sqrt(3*900 + 4*1600).
    norm = np.sqrt(3 * 900 + 4 * 1600)
    np.testing.assert_allclose(adam.mu["a"], 0.1 * 30.0 / norm, rtol=1e-5)
    np.testing.assert_allclose(float(optax.tree.norm(adam.mu)), 0.1, rtol=1e-5)
    unclipped, _ = make_optimizer({"lr": 0.1, "schedule": "constant", "b1": 0.9}, 10)
    _, state = unclipped.update(grads, unclipped.init(params), params)
    np.testing.assert_allclose(state[0].mu["a"], 3.0, rtol=1e-6)


def test_ema_update():
    ema = {"w": jnp.array([1.0, 2.0])}
    new = update_ema(ema, {"w": jnp.array([3.0, 0.0])}, decay=0.75)
    np.testing.assert_allclose(new["w"], [0.75 * 1 + 0.25 * 3, 0.75 * 2], rtol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_loss():
    model = TinyNet(features=8, dtype=jnp.bfloat16)
    tx, schedule = make_optimizer({"lr": 1e-2, "schedule": "constant", "ema_decay": 0.9}, 5)
    mesh = shd.make_mesh()
    state, shardings = create_sharded_state(model, tx, (1, 16, 16, 3), 0, True, mesh)
    step = jit_train_step(make_train_step(model, build_loss([{"name": "l1"}]), tx, schedule, ema_decay=0.9),
                          shardings, mesh)
    rng = np.random.default_rng(0)
    target = rng.random((8, 16, 16, 3), np.float32)
    batch = shd.shard_batch({"target": target, "input": target + 0.1, "seed": np.zeros(8, np.uint32)}, mesh)
    before = jax.device_get(state.params)
    state, metrics = step(state, batch)
    state, metrics = step(state, batch)
    assert metrics["loss"].dtype == jnp.float32 and np.isfinite(float(metrics["loss"]))
    for tree in (state.params, state.ema_params, state.opt_state[0].mu):
        assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
    changed = [not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(jax.device_get(state.params)))]
    assert all(changed)
    # The model really computes in bfloat16; its outputs come back as float32.
    outputs = model.apply({"params": state.params}, jnp.zeros((1, 16, 16, 3)))
    assert outputs[-1].dtype == jnp.float32
    lowered = jax.jit(lambda p, x: model.apply({"params": p}, x)).lower(state.params, jnp.zeros((1, 16, 16, 3)))
    assert "bf16" in lowered.as_text()


def test_cosine_restarts_is_basicsr_cyclic_schedule():
    """Restormer: constant 3e-4 for 92k steps (eta_min equals the peak), then cosine 3e-4 -> 1e-6 over 208k."""
    from jaxir.train.optim import make_schedule

    cfg = {"lr": 3e-4, "schedule": "cosine_restarts", "periods": [92000, 208000], "restart_weights": [1, 1],
           "eta_mins": [3e-4, 1e-6]}
    schedule = make_schedule(cfg, 300000)
    for step in (0, 50000, 91999):
        assert float(schedule(step)) == pytest.approx(3e-4, rel=1e-6)
    assert float(schedule(92000)) == pytest.approx(3e-4, rel=1e-6)
    assert float(schedule(92000 + 104000)) == pytest.approx(1e-6 + 0.5 * (3e-4 - 1e-6), rel=1e-5)
    assert float(schedule(299999)) == pytest.approx(1e-6, rel=1e-2)
    with pytest.raises(ValueError, match="same non-zero length"):
        make_schedule({**cfg, "eta_mins": [1e-6]}, 300000)
