"""DvSR: the joint objective through the shared loop (trains, resumes exactly), Algorithm-1 sampling,
sample averaging and `jaxir restore --samples K`."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.base import base_config
from jaxir import registry
from jaxir.cli import main
from jaxir.diffusion import dvsr
from jaxir.io import save_weights
from jaxir.train.loop import load_inference_variables, train

SMALL = {"predictor_channels": 32, "predictor_mult": [1, 2], "denoiser_channels": 32, "denoiser_mult": [1, 1],
         "num_res_blocks": 1}


def _model_and_variables(seed=0):
    model = registry.build_model("dvsr", **SMALL)
    y = jnp.zeros((1, 16, 16, 3))
    variables = model.init(jax.random.key(seed), y)
    # Random (non-zero) outputs everywhere so sampling exercises the denoiser.
    variables = jax.tree_util.tree_map(lambda v: v + 0.01, variables)
    return model, variables


def test_training_outputs_follow_the_objective():
    """label = ε, and the denoiser sees z = √γ (x - g(y)) + √(1-γ) ε: with f replaced by the identity on z's
    channels the prediction can be checked against the formula."""
    model, variables = _model_and_variables()
    y = jax.random.uniform(jax.random.key(1), (4, 16, 16, 3))
    x = jax.random.uniform(jax.random.key(2), (4, 16, 16, 3))
    pred, label = model.apply(variables, y, x, method="training_outputs", rngs={"noise": jax.random.key(3)})
    assert pred.shape == label.shape == y.shape
    # Same noise key, same draw; another key, another draw.
    _, again = model.apply(variables, y, x, method="training_outputs", rngs={"noise": jax.random.key(3)})
    _, other = model.apply(variables, y, x, method="training_outputs", rngs={"noise": jax.random.key(4)})
    np.testing.assert_array_equal(np.asarray(label), np.asarray(again))
    assert float(jnp.abs(label - other).max()) > 0.1
    assert abs(float(label.std()) - 1.0) < 0.1


def test_algorithm1_with_an_exact_denoiser_returns_x_init_plus_the_residual(monkeypatch):
    """If f returns the true ε of a known residual r, Algorithm 1 ends at x_init + r."""
    model, variables = _model_and_variables()
    y = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    residual = 0.1 * jnp.ones_like(y)
    betas = dvsr.sampling_betas(50)
    gammas = jnp.asarray(np.cumprod(1 - betas), jnp.float32)

    def exact_denoise(self, y, z, sqrt_gamma, train=False):
        r = jnp.repeat(residual, z.shape[0] // residual.shape[0], axis=0)
        return (z - sqrt_gamma * r) / jnp.sqrt(1 - sqrt_gamma ** 2)

    monkeypatch.setattr(dvsr.DvSR, "denoise", exact_denoise)
    average, sample = dvsr.sample(model, variables, y, jax.random.key(5), num_samples=3, betas=betas)
    x_init = model.apply(variables, y, method=dvsr.DvSR.initial)
    np.testing.assert_allclose(np.asarray(sample), np.asarray(x_init + residual), atol=2e-3)
    np.testing.assert_allclose(np.asarray(average), np.asarray(x_init + residual), atol=2e-3)
    del gammas


def test_samples_differ_and_average_is_their_mean():
    model, variables = _model_and_variables()
    y = jax.random.uniform(jax.random.key(0), (1, 16, 16, 3))
    betas = dvsr.sampling_betas(10)
    avg4, first = dvsr.sample(model, variables, y, jax.random.key(1), num_samples=4, betas=betas)
    avg4_again, _ = dvsr.sample(model, variables, y, jax.random.key(1), num_samples=4, betas=betas)
    np.testing.assert_array_equal(np.asarray(avg4), np.asarray(avg4_again))
    assert float(jnp.abs(avg4 - first).max()) > 1e-4  # the average is not one sample
    assert avg4.shape == first.shape == y.shape


def _config():
    config = base_config()
    config.model.name = "dvsr"
    config.model.kwargs = SMALL
    config.data.train = {"source": "bundled", "kwargs": {"split": "train"}}
    config.data.eval = None
    config.data.crop_size = 16
    config.data.batch_size = 8
    config.data.degradation = [{"name": "gaussian_blur", "kernel_size": 5, "sigma": 1.0}]
    config.optim.update({"lr": 1e-3, "schedule": "constant", "ema_decay": 0.9})
    config.train.update({"num_steps": 4, "log_every": 1, "ckpt_every": 2, "eval_every": 0})
    return config


@pytest.mark.slow  # three short trainings of two U-Nets (minutes on the 2-core CPU)
def test_trains_and_resumes_exactly_through_the_loop(tmp_path):
    straight = _config()
    train(straight, tmp_path / "straight")
    halted = _config()
    halted.train.num_steps = 2
    train(halted, tmp_path / "resumed")
    train(_config(), tmp_path / "resumed")  # continues from step 2
    a = load_inference_variables(straight, tmp_path / "straight")
    b = load_inference_variables(straight, tmp_path / "resumed")
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_restore_cli_writes_one_sample_and_the_average(tmp_path):
    from PIL import Image

    model, variables = _model_and_variables()
    save_weights(tmp_path / "dvsr.msgpack", "dvsr", SMALL, variables)
    image = (np.random.default_rng(0).random((20, 18, 3)) * 255).astype(np.uint8)  # padded to 8s inside
    Image.fromarray(image).save(tmp_path / "in.png")
    assert main(["restore", str(tmp_path / "in.png"), str(tmp_path / "out.png"), "--weights",
                 str(tmp_path / "dvsr.msgpack"), "--samples", "2"]) == 0
    one = np.asarray(Image.open(tmp_path / "out.png"))
    avg = np.asarray(Image.open(tmp_path / "out_avg2.png"))
    assert one.shape == avg.shape == image.shape
    assert np.abs(one.astype(int) - avg.astype(int)).max() > 0
    assert main(["restore", str(tmp_path / "in.png"), str(tmp_path / "o.png"), "--weights",
                 str(tmp_path / "dvsr.msgpack"), "--samples", "2", "--tile", "64"]) != 0
