"""AirNet: the MoCo training state inside the jitted step, the two training stages, and the loop."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aio_fixtures import BUNDLED_AIO3
from experiments.base import base_config
from jaxir import registry
from jaxir.config import load_config
from jaxir.losses import build_loss
from jaxir.methods import build_method
from jaxir.methods.moco import info_nce, key_view
from jaxir.train import sharding as shd
from jaxir.train.loop import load_inference_variables, train
from jaxir.train.state import create_sharded_state
from jaxir.train.step import jit_train_step, make_train_step

TINY = {"batch_size": 8, "n_groups": 1, "n_blocks": 1, "n_feats": 8}  # queue 8 * 256, batch 8


def _state_and_step(stage, lr=1e-3):
    model = registry.build_model("airnet", **TINY)
    method = build_method({"name": "moco", "kwargs": {"stage": stage}})
    tx, schedule = optax.adam(lr), optax.constant_schedule(lr)
    mesh = shd.make_mesh()
    state, shardings = create_sharded_state(model, tx, (1, 16, 16, 3), 0, False, mesh, method=method)
    step = jit_train_step(make_train_step(model, build_loss([{"name": "l1"}]), tx, schedule, method=method),
                          shardings, mesh)
    return state, step, mesh


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(size=(8, 16, 16, 3)).astype(np.float32)
    return {"target": target, "input": np.clip(target + 0.1 * rng.normal(size=target.shape), 0, 1).astype(np.float32)}


def test_info_nce_is_cross_entropy_with_the_positive_first():
    logits = jnp.asarray([[2.0, 0.0, 1.0], [0.0, 3.0, -1.0]])
    want = np.mean([-math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(1))),
                    -math.log(1 / (1 + math.exp(3) + math.exp(-1)))])
    np.testing.assert_allclose(info_nce(logits), want, rtol=1e-6)


def test_key_view_rearranges_each_image_without_changing_its_pixels():
    x = jnp.arange(2 * 4 * 6 * 1, dtype=jnp.float32).reshape(2, 4, 6, 1)
    view = key_view(x, jax.random.key(3))
    for i in range(2):
        assert sorted(np.asarray(view[i]).ravel()) == sorted(np.asarray(x[i]).ravel())
    assert not np.array_equal(view, x)


def test_moco_step_updates_queue_pointer_and_momentum_encoder():
    state, step, mesh = _state_and_step("joint")
    moco = lambda p: p["E"]["E"]  # noqa: E731
    q0 = jax.device_get(moco(state.params)["encoder_q"])  # the step donates the state
    # prepare(): the key encoder starts as a copy of the query encoder.
    for a, b in zip(jax.tree.leaves(q0), jax.tree.leaves(moco(state.params)["encoder_k"])):
        np.testing.assert_array_equal(a, b)
    queue0 = np.asarray(state.model_state["moco"]["E"]["E"]["queue"])
    assert queue0.shape == (256, 8 * 256)
    new, metrics = step(state, shd.shard_batch(_batch(), mesh))
    assert bool(metrics["loss_finite"]) and float(metrics["loss/contrast"]) > 0
    queue = np.asarray(new.model_state["moco"]["E"]["E"]["queue"])
    assert int(new.model_state["moco"]["E"]["E"]["queue_ptr"][0]) == 8
    # The first 8 columns are this batch's L2-normalised keys; the rest untouched.
    np.testing.assert_allclose(np.linalg.norm(queue[:, :8], axis=0), 1.0, rtol=1e-5)
    assert not np.allclose(queue[:, :8], queue0[:, :8])
    np.testing.assert_array_equal(queue[:, 8:], queue0[:, 8:])
    # Key encoder = 0.999 * old key (= q0) + 0.001 * new query; the optimizer never touched it.
    q1 = moco(new.params)["encoder_q"]
    for k, a, b in zip(jax.tree.leaves(moco(new.params)["encoder_k"]), jax.tree.leaves(q0), jax.tree.leaves(q1)):
        np.testing.assert_allclose(k, 0.999 * np.asarray(a) + 0.001 * np.asarray(b), rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(q0), jax.tree.leaves(q1)))


def test_encoder_stage_trains_only_the_encoder_with_info_nce():
    state, step, mesh = _state_and_step("encoder")
    state_host = jax.device_get(state)  # the step donates the state
    new, metrics = step(state, shd.shard_batch(_batch(), mesh))
    np.testing.assert_allclose(metrics["loss"], metrics["loss/contrast"])
    for a, b in zip(jax.tree.leaves(state_host.params["R"]), jax.tree.leaves(new.params["R"])):
        np.testing.assert_array_equal(a, b)
    moved = [not np.allclose(a, b) for a, b in zip(jax.tree.leaves(state_host.params["E"]["E"]["encoder_q"]),
                                                  jax.tree.leaves(new.params["E"]["E"]["encoder_q"]))]
    assert any(moved)


def test_recipe_stages():
    encoder = load_config("experiments/airnet_aio3.py:encoder")
    joint = load_config("experiments/airnet_aio3.py:joint")
    assert encoder.train.num_steps == 100 * 400 and joint.train.num_steps == 900 * 400
    assert encoder.optim.milestones == [61 * 400] and joint.optim.milestones[0] == 126 * 400
    assert encoder.data.batch_size == 5 and encoder.model.kwargs.batch_size == 5
    assert joint.method.kwargs.stage == "joint" and joint.method.kwargs.contrast_weight == 0.1
    with pytest.raises(ValueError, match="encoder"):
        load_config("experiments/airnet_aio3.py:both")


@pytest.mark.slow
def test_trains_both_stages_on_the_bundled_mixture(tmp_path):
    """Encoder pre-training then joint training, through the loop and the all-in-one mixture path."""
    recipe = load_config("experiments/airnet_aio3.py:joint")

    def config(stage, steps):
        c = base_config()
        c.model.name, c.model.kwargs = "airnet", dict(TINY)
        c.data.train = {"source": BUNDLED_AIO3, "kwargs": {}}
        c.data.eval, c.data.crop_size, c.data.batch_size = None, 16, 8
        c.loss = recipe.loss
        c.method = {"name": "moco", "kwargs": {**recipe.method.kwargs.to_dict(), "stage": stage}}
        c.optim.update({"lr": 1e-3, "schedule": "constant"})
        c.train.update({"num_steps": steps, "log_every": 1, "ckpt_every": steps, "eval_every": 0})
        return c

    first = config("encoder", 2)
    assert train(first, tmp_path / "encoder")["rejected_steps"] == 0
    second = config("joint", 2)
    second.train.init_from = str(tmp_path / "encoder")
    metrics = train(second, tmp_path / "joint")
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    variables = load_inference_variables(second, tmp_path / "joint")
    # The queue pointer carried over from the encoder stage: 2 + 2 batches of 8 keys.
    assert int(variables["moco"]["E"]["E"]["queue_ptr"][0]) == 32
