"""Composed training methods (jaxir.methods.compose): the hooks' chaining on stub methods, `freeze`, and AirNet's
MoCo composed with TUR in one jitted train step; AirNet-TUR's recipe through the loop (slow)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from aio_fixtures import BUNDLED_AIO3
from flax import traverse_util

from experiments.base import base_config
from jaxir import registry
from jaxir.config import load_config
from jaxir.io import save_weights
from jaxir.losses import build_loss
from jaxir.methods import TrainMethod, build_method
from jaxir.methods.compose import ComposedMethod, Freeze
from jaxir.train import sharding as shd
from jaxir.train.loop import load_inference_variables, train
from jaxir.train.state import create_sharded_state
from jaxir.train.step import jit_train_step, make_train_step


class Stub(TrainMethod):
    """Records its hooks; its objective is `scale * inner + offset` and it tags what it wraps."""

    def __init__(self, name, scale=1.0, offset=0.0, kwarg=None, frozen=None, calls=None):
        self.name, self.scale, self.offset, self.kwarg, self.frozen = name, scale, offset, kwarg, frozen
        self.calls = calls if calls is not None else []

    def wrap_model(self, model, entry):
        return f"{self.name}({model})"

    def prepare(self, params):
        self.calls.append(("prepare", self.name))
        return {**params, "seen": params.get("seen", ()) + (self.name,)}

    def trainable(self, params):
        return None if self.frozen is None else {k: k != self.frozen for k in params}

    def init_state(self, key, params, input_shape):
        return {"count": jnp.zeros(())}

    def model_kwargs(self, inputs, key):
        return {self.kwarg: key} if self.kwarg else {}

    def batch_kwargs(self, batch):
        return {f"{self.kwarg}_task": batch["task"]} if self.kwarg else {}

    def pre_update(self, model, method_state, variables, inputs, target, batch, key, step):
        return {"count": method_state["count"] + 1}, {f"{self.name}/pre": step}

    def loss(self, outputs, target, batch, base_loss, method_state, key):
        inner, terms = base_loss(outputs, target)
        return self.scale * inner + self.offset, {**terms, self.name: inner}

    def post_update(self, params):
        self.calls.append(("post", self.name))
        return params


def test_hooks_chain_in_list_order():
    calls = []
    a, b = Stub("a", scale=2.0, offset=1.0, kwarg="x", frozen="p", calls=calls), Stub("b", offset=10.0, kwarg="y",
                                                                                       frozen="q", calls=calls)
    method = ComposedMethod([a, b])
    assert method.name == "compose(a+b)"
    assert method.wrap_model("net", None) == "b(a(net))"  # the last wrapper is outermost
    assert method.prepare({"p": 1, "q": 2, "r": 3})["seen"] == ("a", "b")
    assert method.trainable({"p": 1, "q": 2, "r": 3}) == {"p": False, "q": False, "r": True}
    state = method.init_state(jax.random.key(0), {}, (1, 8, 8, 3))
    assert set(state) == {"a", "b"}
    kwargs = method.model_kwargs(jnp.zeros((1, 8, 8, 3)), jax.random.key(1))
    assert set(kwargs) == {"x", "y"} and not np.array_equal(jax.random.key_data(kwargs["x"]),
                                                             jax.random.key_data(kwargs["y"]))
    assert method.batch_kwargs({"task": 4}) == {"x_task": 4, "y_task": 4}
    new_state, metrics = method.pre_update(None, state, {}, None, None, {}, jax.random.key(2), 7)
    assert float(new_state["a"]["count"]) == 1 and float(new_state["b"]["count"]) == 1
    assert metrics == {"a/pre": 7, "b/pre": 7}
    # Nested objectives: a wraps b wraps the configured terms (here: 3.0).
    total, terms = method.loss(None, None, {}, lambda o, t: (jnp.asarray(3.0), {"l1": 3.0}), new_state,
                               jax.random.key(3))
    assert float(total) == 2.0 * (3.0 + 10.0) + 1.0
    assert float(terms["b"]) == 3.0 and float(terms["a"]) == 13.0 and terms["l1"] == 3.0
    method.post_update({})
    assert calls[-2:] == [("post", "a"), ("post", "b")]


def test_repeated_methods_keep_separate_state_and_clashing_arguments_fail():
    method = ComposedMethod([Stub("s"), Stub("s")])
    assert set(method.init_state(jax.random.key(0), {}, (1,))) == {"s#0", "s#1"}
    with pytest.raises(ValueError, match="forward argument"):
        ComposedMethod([Stub("a", kwarg="x"), Stub("b", kwarg="x")]).model_kwargs(None, jax.random.key(0))
    with pytest.raises(ValueError, match="forward argument"):
        ComposedMethod([Stub("a", kwarg="x"), Stub("b", kwarg="x")]).batch_kwargs({"task": 0})
    with pytest.raises(ValueError, match="at least one"):
        ComposedMethod([])


def test_compose_and_freeze_are_registered_methods():
    method = build_method({"name": "compose", "kwargs": {"methods": [
        {"name": "freeze", "kwargs": {"paths": ["backbone/E"]}}, {"name": "tur", "kwargs": {}}]}})
    assert method.name == "compose(freeze+tur)"
    params = {"backbone": {"E": {"w": 0}, "R": {"w": 0}}, "uncertainty_head": {"w": 0}}
    assert method.trainable(params) == {"backbone": {"E": {"w": False}, "R": {"w": True}},
                                        "uncertainty_head": {"w": True}}
    with pytest.raises(ValueError, match="no parameters under 'E'"):
        Freeze(["E"]).trainable(params)


# AirNet at a tiny restorer width (tests/test_airnet.py's): queue of 8 * 256 keys for batches of 8.
TINY_AIRNET = {"batch_size": 8, "n_groups": 1, "n_blocks": 1, "n_feats": 8}


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(size=(8, 16, 16, 3)).astype(np.float32)
    return {"target": target, "input": np.clip(target + 0.1 * rng.normal(size=target.shape), 0, 1).astype(np.float32),
            "task": np.asarray([0, 0, 1, 1, 2, 3, 3, 4], np.int32)}


def _flat(tree):
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(jax.device_get(tree), sep="/").items()}


# Compiling AirNet's train step (DCN restorer, query and key encoders) takes about half a CPU-minute.
@pytest.mark.slow
def test_moco_composed_with_tur_advances_the_queue_and_trains_the_uncertainty_head():
    """AirNet's joint stage (MoCo: queue, momentum key encoder, + 0.1 InfoNCE) with TUR's head and loss."""
    method = build_method({"name": "compose", "kwargs": {"methods": [
        {"name": "moco", "kwargs": {"stage": "joint", "encoder_path": ["backbone", "E", "E"]}},
        {"name": "tur", "kwargs": {"feature_module": "R/tail_0", "output_index": 0}}]}})
    model = method.wrap_model(registry.build_model("airnet", **TINY_AIRNET), None)
    loss_fn = build_loss([{"name": "tur", "num_tasks": 5, "outputs": [0]}])
    tx = optax.adam(1e-3)
    mesh = shd.make_mesh()
    state, shardings = create_sharded_state(model, tx, (1, 16, 16, 3), 0, False, mesh, method=method)
    step = jit_train_step(make_train_step(model, loss_fn, tx, optax.constant_schedule(1e-3), method=method),
                          shardings, mesh)
    before = _flat(state.params)
    queue0 = np.asarray(state.model_state["moco"]["backbone"]["E"]["E"]["queue"])
    new, metrics = step(state, shd.shard_batch(_batch(), mesh))
    assert bool(metrics["loss_finite"]) and float(metrics["loss/contrast"]) > 0
    # The objective is TUR's term plus MoCo's 0.1 InfoNCE.
    np.testing.assert_allclose(metrics["loss"], metrics["loss/tur"] + 0.1 * metrics["loss/contrast"], rtol=1e-5)
    moco = new.model_state["moco"]["backbone"]["E"]["E"]
    assert int(moco["queue_ptr"][0]) == 8 and not np.allclose(np.asarray(moco["queue"])[:, :8], queue0[:, :8])
    after = _flat(new.params)
    moved = {k for k in before if not np.allclose(before[k], after[k])}
    assert any(k.startswith("uncertainty_head/") for k in moved)
    assert any(k.startswith("backbone/R/") for k in moved)
    # The key encoder follows the query encoder by momentum only.
    for k in before:
        if "/encoder_k/" in k:
            q = k.replace("/encoder_k/", "/encoder_q/")
            np.testing.assert_allclose(after[k], 0.999 * before[k] + 0.001 * after[q], rtol=1e-5, atol=1e-7)


def test_airnet_tur_recipe():
    c = load_config("experiments/airnet_tur_aio3.py")
    assert c.model.name == "airnet" and c.method.name == "compose"
    method = build_method(c.method)
    assert method.name == "compose(freeze+tur)" and method.methods[1].output_index == 0
    assert c.loss.terms[0]["name"] == "tur" and c.loss.terms[0]["eps"] == 1e-6
    assert c.train.init_from_into == "backbone" and c.train.num_steps == 900 * 400
    with pytest.raises(ValueError, match="no argument"):
        load_config("experiments/airnet_tur_aio3.py:x")


# The AirNet train step compiles the DCN restorer and both encoders: about a CPU-minute.
@pytest.mark.slow
def test_airnet_tur_trains_from_an_airnet_on_the_bundled_mixture(tmp_path):
    """AirNet-TUR's recipe through the loop: a saved AirNet goes inside the TUR wrapper, its encoder stays as
    loaded, the restorer and the uncertainty head train on the task-labelled mixture."""
    airnet = registry.build_model("airnet", **TINY_AIRNET)
    variables = jax.jit(lambda: airnet.init(jax.random.key(5), jnp.zeros((1, 16, 16, 3))))()
    weights = tmp_path / "airnet.msgpack"
    save_weights(weights, "airnet", TINY_AIRNET, variables)

    recipe = load_config("experiments/airnet_tur_aio3.py")
    c = base_config()
    c.model.name, c.model.kwargs = "airnet", dict(TINY_AIRNET)
    c.method, c.loss = recipe.method, recipe.loss
    c.data.train = {"source": BUNDLED_AIO3, "kwargs": {}}
    c.data.eval, c.data.crop_size, c.data.batch_size = None, 16, 8
    c.optim.update({"lr": 1e-3, "schedule": "constant"})
    c.train.update({"num_steps": 2, "log_every": 1, "ckpt_every": 2, "eval_every": 0,
                    "init_from": str(weights), "init_from_into": recipe.train.init_from_into})
    metrics = train(c, tmp_path / "run")
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])

    trained = _flat(load_inference_variables(c, tmp_path / "run")["params"])
    loaded = {f"backbone/{k}": v for k, v in _flat(variables["params"]).items()}
    for k, v in loaded.items():
        if k.startswith("backbone/E/"):
            np.testing.assert_array_equal(trained[k], v)  # frozen, as loaded
    assert any(not np.allclose(trained[k], v) for k, v in loaded.items() if k.startswith("backbone/R/"))
    head = [k for k in trained if k.startswith("uncertainty_head/")]
    assert head and set(trained) == set(loaded) | set(head)
    # The head left its initial values (the loop's init: params key = split(key(seed), 3)[0]).
    wrapped = build_method(c.method).wrap_model(airnet, None)
    params_key, dropout_key, _ = jax.random.split(jax.random.key(int(c.train.seed)), 3)
    init = _flat(jax.jit(lambda: wrapped.init({"params": params_key, "dropout": dropout_key},
                                              jnp.zeros((1, 16, 16, 3))))()["params"])
    # Two Adam steps at lr 1e-3 move each weight by at most about 2e-3 (so `init` is the run's start).
    assert all(np.max(np.abs(init[k] - trained[k])) < 2.5e-3 for k in head)
    assert any(not np.allclose(init[k], trained[k], rtol=0, atol=1e-6) for k in head)
