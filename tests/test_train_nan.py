"""Non-finite loss or gradients: the update is rejected; 'skip' goes on, 'halt' stops with a clear error."""
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from train_helpers import TinyNet, tiny_config

from jaxir.losses import build_loss
from jaxir.train import sharding as shd
from jaxir.train.loop import NonFiniteUpdateError, train
from jaxir.train.metric_writers import read_metrics
from jaxir.train.optim import make_optimizer
from jaxir.train.state import create_sharded_state
from jaxir.train.step import jit_train_step, make_train_step


def _setup(loss_fn):
    model = TinyNet(features=8)
    tx, schedule = make_optimizer({"lr": 1e-2, "schedule": "constant", "clip_norm": 1.0, "ema_decay": 0.9}, 10)
    mesh = shd.make_mesh()
    state, shardings = create_sharded_state(model, tx, (1, 16, 16, 3), 0, True, mesh)
    step = jit_train_step(make_train_step(model, loss_fn, tx, schedule, ema_decay=0.9), shardings, mesh)
    rng = np.random.default_rng(0)
    target = rng.random((8, 16, 16, 3), np.float32)
    clean = {"target": target, "input": target + 0.05, "seed": np.zeros(8, np.uint32)}
    return state, step, mesh, clean


def _host(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _unchanged(a, b):
    return all(np.array_equal(x, y) for x, y in zip(_host(a), _host(b)))


def test_nan_loss_rejects_the_update():
    state, step, mesh, clean = _setup(build_loss([{"name": "l1"}]))
    state, _ = step(state, shd.shard_batch(clean, mesh))
    before = jax.device_get(state)
    poisoned = dict(clean, target=clean["target"].copy())
    poisoned["target"][3, 5, 5, 0] = np.nan
    state, metrics = step(state, shd.shard_batch(poisoned, mesh))
    assert not bool(metrics["loss_finite"]) and int(metrics["rejected_steps"]) == 1
    for part in ("params", "opt_state", "ema_params"):
        assert _unchanged(getattr(state, part), getattr(before, part)), part
    assert int(state.step) == 2 and int(state.rejected_steps) == 1
    # Training goes on from the untouched state.
    state, metrics = step(state, shd.shard_batch(clean, mesh))
    assert bool(metrics["loss_finite"]) and bool(metrics["grads_finite"])
    assert not _unchanged(state.params, before.params)
    assert int(state.rejected_steps) == 1


def test_non_finite_gradients_with_finite_loss_are_rejected():
    def loss_fn(outputs, target):
        # sqrt at 0: the value is 0 but its derivative is infinite, so the gradients are NaN.
        value = jnp.mean(jnp.sqrt(0.0 * jnp.square(outputs[-1] - target)))
        return value, {"sqrt": value}

    state, step, mesh, clean = _setup(loss_fn)
    before = jax.device_get(state)
    state, metrics = step(state, shd.shard_batch(clean, mesh))
    assert bool(metrics["loss_finite"]) and not bool(metrics["grads_finite"])
    assert _unchanged(state.params, before.params) and _unchanged(state.opt_state, before.opt_state)
    assert int(state.rejected_steps) == 1


def _nan_config(policy):
    config = tiny_config(6, with_eval=False, nan_policy=policy, ckpt_every=1, log_every=1)
    # One NaN image among 16; batches of 8, so one batch of each epoch (2 steps) carries it.
    config.data.train.kwargs.nan_records = (3,)
    return config


def test_skip_policy_logs_and_continues(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="jaxir.train.loop"):
        final = train(_nan_config("skip"), tmp_path)
    messages = [r.getMessage() for r in caplog.records if "update rejected" in r.getMessage()]
    assert final["rejected_steps"] == len(messages) == 3
    assert all("non-finite loss" in m for m in messages)
    assert {int(m.split(":")[0].split()[1]) for m in messages} <= set(range(1, 7))
    logged = read_metrics(tmp_path)
    assert logged[-1]["rejected_steps"] == 3
    assert all(np.isfinite(m["loss"]) for m in logged if "loss" in m)  # means over accepted steps only
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())[-1] == 6


def test_halt_policy_raises_and_saves_nothing_after_the_bad_step(tmp_path):
    with pytest.raises(NonFiniteUpdateError, match=r"step (\d+): update rejected, non-finite loss") as info:
        train(_nan_config("halt"), tmp_path)
    bad_step = int(str(info.value).split(":")[0].split()[1])
    assert "nan_policy='halt'" in str(info.value)
    saved = [int(p.name) for p in pathlib.Path(tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
    assert all(s < bad_step for s in saved), (saved, bad_step)
