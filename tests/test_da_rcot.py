"""DA-RCOT: F_net against PyTorch, the OT objective's terms against the official loop, RMSprop, training."""
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
from jaxir.convert.state_dict import convert_state_dict
from jaxir.methods.ot import fourier_cost, residual_contrast
from jaxir.train.loop import load_inference_variables, train
from jaxir.train.optim import make_optimizer

torch = pytest.importorskip("torch")


def test_fnet_matches_pytorch():
    from jaxir.torch_reference.da_rcot import build_fnet

    torch.manual_seed(0)
    reference = build_fnet(32).eval()
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        want = reference(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    model = registry.build_model("da_rcot_fnet", patch_size=32)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    variables = convert_state_dict(state, model, jax.ShapeDtypeStruct(x.shape, jnp.float32))
    np.testing.assert_allclose(model.apply(variables, x), want, rtol=1e-4, atol=1e-5)


def _official_terms(res, emb, de_id):
    """trainer.py's per-sample loops, in torch (NCHW)."""
    res_fre = torch.fft.fft2(res)
    fourier, pos, neg = 0, 0, 0
    for i in range(res.shape[0]):
        if de_id[i] < 3:
            fourier += torch.mean(abs(res_fre[i]) ** 2) ** 0.5
        else:
            fourier += torch.mean(abs(res_fre[i]))
        z1 = torch.nn.functional.normalize(emb[i].reshape(-1), dim=0)
        for j in range(i + 1, res.shape[0]):
            z2 = torch.nn.functional.normalize(emb[j].reshape(-1), dim=0)
            if de_id[i] == de_id[j]:
                pos += torch.mean(torch.exp(-z1 * z2 / 0.07))
            else:
                neg += torch.mean(torch.exp(z1 * z2 / 0.07))
    return float(fourier), float(pos + neg)


def test_transport_cost_and_contrast_follow_the_official_loops():
    rng = np.random.default_rng(1)
    res = rng.normal(size=(4, 3, 8, 8)).astype(np.float32)
    emb = rng.normal(size=(4, 6, 2, 2)).astype(np.float32)
    task = np.asarray([0, 3, 0, 4], np.int32)
    want_fourier, want_contrast = _official_terms(torch.from_numpy(res), torch.from_numpy(emb), task)
    nhwc = lambda a: jnp.asarray(a.transpose(0, 2, 3, 1))  # noqa: E731
    np.testing.assert_allclose(fourier_cost(nhwc(res), jnp.asarray(task)), want_fourier, rtol=1e-5)
    np.testing.assert_allclose(residual_contrast(nhwc(emb), jnp.asarray(task)), want_contrast, rtol=1e-5)


def test_rmsprop_matches_torch():
    w0 = np.random.default_rng(0).normal(size=(5,)).astype(np.float32)
    tx, _ = make_optimizer({"optimizer": "rmsprop", "lr": 1e-2, "schedule": "constant"}, 10)
    params, opt_state = jnp.asarray(w0), None
    opt_state = tx.init(params)
    weight = torch.tensor(w0, requires_grad=True)
    reference = torch.optim.RMSprop([weight], lr=1e-2)
    for i in range(3):
        grad = np.sin(np.arange(5) + i).astype(np.float32)
        updates, opt_state = tx.update(jnp.asarray(grad), opt_state, params)
        params = optax.apply_updates(params, updates)
        weight.grad = torch.from_numpy(grad)
        reference.step()
    np.testing.assert_allclose(params, weight.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_recipe():
    config = load_config("experiments/da_rcot_aio5.py")
    assert config.data.batch_size == 2 and config.method.name == "rcot" and config.optim.optimizer == "rmsprop"
    assert config.optim.lr == 5e-5 and config.method.kwargs.lr == 1e-4
    epoch = 316210 // 2
    assert config.train.num_steps == 55 * epoch and list(config.optim.milestones) == [15 * epoch, 30 * epoch,
                                                                                         45 * epoch]


# Too long for CI on 2 cores (minutes, GBs): run with `pytest -m heavy`.
@pytest.mark.heavy
def test_alternating_ot_training_through_the_loop(tmp_path):
    recipe = load_config("experiments/da_rcot_aio5.py")
    config = base_config()
    config.model.name = "da_rcot"
    config.model.kwargs = {"num_blocks": [1, 1, 1, 1], "num_refinement_blocks": 1, "heads": [1, 1, 1, 1]}
    config.data.train = {"source": BUNDLED_AIO3, "kwargs": {}}
    config.data.eval, config.data.crop_size, config.data.batch_size = None, 32, 8
    config.method = {"name": "rcot", "kwargs": {**recipe.method.kwargs.to_dict(), "patch_size": 32,
                                                "milestones": []}}
    config.optim.update({"optimizer": "rmsprop", "lr": 1e-5, "schedule": "constant"})
    config.train.update({"num_steps": 2, "log_every": 1, "ckpt_every": 2, "eval_every": 0})
    metrics = train(config, tmp_path)
    assert metrics["rejected_steps"] == 0 and math.isfinite(metrics["train_loss"])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert any("critic/gradient_penalty" in line for line in lines)
    assert any("loss/fourier" in line for line in lines)
    assert np.isfinite(jax.tree_util.tree_leaves(load_inference_variables(config, tmp_path)["params"])[0]).all()
