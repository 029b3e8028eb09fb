"""train.remat: identical gradients under every mode and policy, less activation memory, loop integration."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxir import registry
from jaxir.parity import flatten_outputs
from jaxir.train import remat

SMALL = {
    "nafnet": {"width": 4, "enc_blk_nums": [1], "middle_blk_num": 1, "dec_blk_nums": [1]},
    "restormer": {"dim": 8, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1, "heads": (1, 2, 2, 4)},
}
CASES = {"nafnet": [("block", "nothing", None), ("stage", "conv_outputs", [r"encoders_0_\d+", "middle_blks_0"])],
         "restormer": [("block", "conv_outputs", None), ("block", "dots", None)]}


def _loss_and_grad(model, variables, x):
    def loss(params):
        out = model.apply({**variables, "params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
        return jnp.mean(jnp.abs(flatten_outputs(out)[-1] - x[..., :3]))

    return jax.jit(jax.value_and_grad(loss))(variables["params"])


@pytest.fixture(scope="module", params=["nafnet", pytest.param("restormer", marks=pytest.mark.slow)])
def model_setup(request):
    name = request.param
    model = registry.build_model(name, **SMALL[name])
    x = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    variables = model.init(jax.random.key(2), x)
    return name, model, variables, x, _loss_and_grad(model, variables, x)


@pytest.mark.parametrize("case", [0, 1])
def test_remat_gives_the_same_loss_and_gradients(model_setup, case):
    name, model, variables, x, (loss, grads) = model_setup
    mode, policy, modules = CASES[name][case]
    wrapped = remat.remat_model(model, name, mode, policy, modules)
    assert isinstance(wrapped, remat.RematModel)
    loss_r, grads_r = _loss_and_grad(wrapped, variables, x)
    np.testing.assert_allclose(loss_r, loss, rtol=1e-6)
    for (path, g), (_, g_r) in zip(jax.tree_util.tree_leaves_with_path(grads),
                                   jax.tree_util.tree_leaves_with_path(grads_r)):
        np.testing.assert_allclose(g_r, g, rtol=1e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path))


def test_remat_recomputes_in_the_backward():
    """The compiled step does more work (the checkpointed blocks run twice) for the same gradients."""
    model = registry.build_model("nafnet", **SMALL["nafnet"])
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)["params"]

    def flops(m):
        def loss(p, x):
            return jnp.mean(flatten_outputs(m.apply({"params": p}, x, train=True))[-1])

        return jax.jit(jax.grad(loss)).lower(params, x).compile().cost_analysis()["flops"]

    plain, block = flops(model), flops(remat.remat_model(model, "nafnet", "block"))
    assert block > 1.05 * plain, (plain, block)


def test_bad_settings_are_clear_errors():
    model = registry.build_model("nafnet", **SMALL["nafnet"])
    assert remat.remat_model(model, "nafnet", "none") is model
    with pytest.raises(ValueError, match="train.remat must be"):
        remat.remat_model(model, "nafnet", "layers")
    with pytest.raises(ValueError, match="train.remat_policy"):
        remat.remat_model(model, "nafnet", "block", "everything")
    with pytest.raises(ValueError, match="remat_modules"):
        remat.remat_model(model, "nafnet", "stage")  # NAFNet has no stage module: name one
    custom = remat.remat_model(model, "unknown_model", "stage", modules=[r"downs_\d+"])
    assert custom._keep[0].pattern == r"downs_\d+"


def test_config_reaches_the_train_loop(tmp_path):
    from train_helpers import tiny_config

    from jaxir.train.loop import train
    from jaxir.train.metric_writers import read_metrics

    losses = {}
    for mode in ("none", "block"):
        config = tiny_config(4, with_eval=False)
        config.train.remat = mode
        config.train.remat_policy = "conv_outputs"
        config.train.remat_modules = ["Conv_1"]
        config.train.log_every = 1
        train(config, tmp_path / mode)
        losses[mode] = [m["loss"] for m in read_metrics(tmp_path / mode) if m["split"] == "train"]
    np.testing.assert_allclose(losses["block"], losses["none"], rtol=1e-5)
    config = ml_collections.ConfigDict({"model": {"name": "nafnet"}, "train": {"remat": "block"}})
    assert isinstance(remat.from_config(registry.build_model("nafnet", **SMALL["nafnet"]), config),
                      remat.RematModel)
