"""TUR: the task-uncertainty loss against hand-computed values, and the uncertainty-head wrapper."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from jaxir import methods, registry
from jaxir.losses import LossContext, build_loss
from jaxir.methods.tur import UNCERTAINTY, task_uncertainty_loss

SMALL_RESTORMER = dict(dim=4, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, heads=(1, 1, 1, 1))


def _image(*values):
    return np.asarray(values, np.float32).reshape(-1, 1, 1, 1)


def test_loss_on_a_two_task_batch_by_hand():
    """Tasks 0, 3, 0 (one pixel each).
    task 0: u = (2 + 1) / 2 = 1.5; L1 = (|0.5-0.3| + |0.1-0.2|) / 2 / 1.5 = 0.1; + 2 ln 1.5
    task 3: u = 0.5;               L1 = |0.4-0.8| / 0.5 = 0.8;                 + 2 ln 0.5
    total = mean of the two tasks present."""
    pred, target, u = _image(0.5, 0.4, 0.1), _image(0.3, 0.8, 0.2), _image(2.0, 0.5, 1.0)
    task = np.array([0, 3, 0], np.int32)
    want = ((0.1 + 2 * np.log(1.5)) + (0.8 + 2 * np.log(0.5))) / 2
    assert float(task_uncertainty_loss(pred, target, u, task)) == pytest.approx(want, rel=1e-6)
    assert want == pytest.approx(0.1623178, rel=1e-6)


def _reference(pred, target, u, task):
    """The official loop: stack each task's samples, per-pixel mean map, L1 of the scaled stacks."""
    losses = []
    for t in sorted(set(task.tolist())):
        idx = np.flatnonzero(task == t)
        u_map = u[idx].mean(axis=0)
        l1 = np.mean(np.abs(pred[idx] / u_map - target[idx] / u_map))
        losses.append(l1 + 2 * np.log(u_map.mean()))
    return np.mean(losses)


def test_loss_matches_the_per_task_loop_on_maps():
    rng = np.random.default_rng(0)
    pred, target = rng.uniform(size=(6, 4, 5, 3)), rng.uniform(size=(6, 4, 5, 3))
    u = rng.uniform(0.2, 2.0, size=(6, 4, 5, 3))
    task = np.array([4, 1, 4, 4, 1, 4], np.int32)
    got = task_uncertainty_loss(pred.astype(np.float32), target.astype(np.float32), u.astype(np.float32), task)
    assert float(got) == pytest.approx(_reference(pred, target, u, task), rel=1e-5)
    # Absent tasks contribute nothing, not NaN, to values and gradients.
    grad = jax.grad(lambda p: task_uncertainty_loss(p, target, u, task))(jnp.asarray(pred, jnp.float32))
    assert np.isfinite(np.asarray(grad)).all()


def _wrapped(feature_module="output"):
    backbone = registry.build_model("restormer", **SMALL_RESTORMER)
    method = methods.build_method({"name": "tur", "kwargs": {"feature_module": feature_module}})
    return backbone, method.wrap_model(backbone, None)


def test_head_is_on_the_last_decoder_features_and_inference_is_the_backbone():
    backbone, model = _wrapped()
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    variables = jax.jit(model.init)(jax.random.key(1), x)
    flat = {"/".join(k): v.shape for k, v in traverse_util.flatten_dict(variables["params"]).items()}
    # var_conv: 3x3 convs 2*dim -> 2*dim -> 2*dim -> 3 (the input of Restormer's `output`).
    assert flat["uncertainty_head/var_conv_0/kernel"] == (3, 3, 8, 8)
    assert flat["uncertainty_head/var_conv_2/kernel"] == (3, 3, 8, 8)
    assert flat["uncertainty_head/var_conv_4/kernel"] == (3, 3, 8, 3)
    assert model.inp_channels == 3
    np.testing.assert_array_equal(jax.jit(model.apply)(variables, x),
                                  jax.jit(backbone.apply)({"params": variables["params"]["backbone"]}, x))
    out, mutated = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["aux"]))(variables, x)
    uncertainty = mutated["aux"][UNCERTAINTY][0]
    assert uncertainty.shape == out.shape and float(uncertainty.min()) > 0  # Softplus


def test_tur_term_reads_the_sown_map_and_the_task_labels():
    _, model = _wrapped()
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    variables = jax.jit(model.init)(jax.random.key(1), x)
    out, mutated = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["aux"]))(variables, x)
    task = jnp.array([0, 3])
    loss_fn = build_loss([{"name": "tur"}])
    total, terms = loss_fn(out, x * 0.5, LossContext(aux=mutated["aux"], task=task))
    want = task_uncertainty_loss(out, x * 0.5, mutated["aux"][UNCERTAINTY][0], task)
    assert float(total) == pytest.approx(float(want), rel=1e-6) and "tur" in terms
    with pytest.raises(ValueError, match="task-labelled"):
        loss_fn(out, x, LossContext(aux=mutated["aux"]))


def test_unknown_feature_module_is_reported():
    _, model = _wrapped("no_such_layer")
    with pytest.raises(ValueError, match="no_such_layer"):
        jax.eval_shape(lambda: model.init(jax.random.key(1), jnp.zeros((1, 16, 16, 3))))
