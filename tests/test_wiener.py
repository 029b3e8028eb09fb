import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data, transform

from jaxir import degradations as D
from jaxir.ops.fft import psf_to_otf, wiener_deconvolve


@pytest.fixture(scope="module")
def photo():
    image = transform.resize(data.astronaut(), (96, 96), anti_aliasing=True).astype(np.float32)
    return jnp.asarray(image[None])


def _psnr(a, b):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _delta(size):
    return jnp.zeros((size, size)).at[size // 2, size // 2].set(1.0)


def test_psf_to_otf_delta_and_circular_convolution(photo):
    np.testing.assert_allclose(psf_to_otf(_delta(5), (8, 12)), np.ones((8, 12)), atol=1e-6)
    kernel = D.line_kernel(7, 5.0, 30.0)  # asymmetric
    otf = psf_to_otf(kernel, photo.shape[1:3])
    assert otf.shape == (96, 96) and otf.dtype == jnp.complex64
    # Multiplying spectra is the same circular convolution as the blur op.
    via_fft = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(photo, axes=(1, 2)) * otf[None, :, :, None], axes=(1, 2)))
    np.testing.assert_allclose(via_fft, D.convolve(photo, kernel, "periodic"), atol=1e-5)
    batched = psf_to_otf(jnp.stack([kernel, _delta(7)]), (16, 16))
    assert batched.shape == (2, 16, 16)
    with pytest.raises(ValueError, match="larger"):
        psf_to_otf(kernel, (4, 4))


@pytest.mark.parametrize("boundary", ["reflect", "edge", "periodic"])
def test_delta_kernel_returns_input(photo, boundary):
    restored = wiener_deconvolve(photo, _delta(5), reg=1e-8, boundary=boundary)
    assert restored.shape == photo.shape and restored.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(restored - photo))) <= 1e-4


@pytest.mark.parametrize("name, kernel, blur_boundary, boundary", [
    ("gaussian", D.gaussian_kernel(15, 2.0), "reflect", "reflect"),
    ("disk", D.disk_kernel(11, 4.0), "reflect", "reflect"),
    ("gaussian", D.gaussian_kernel(15, 2.0), "edge", "edge"),
    ("line", D.line_kernel(15, 11.0, 60.0), "reflect", "edge"),
    ("disk", D.disk_kernel(11, 4.0), "periodic", "periodic"),
], ids=["gaussian-reflect", "disk-reflect", "gaussian-edge", "line-edge", "disk-periodic"])
def test_deconvolution_gains_psnr(photo, name, kernel, blur_boundary, boundary):
    blurred = D.convolve(photo, kernel, blur_boundary)
    blurred = blurred + 0.002 * jax.random.normal(jax.random.key(0), blurred.shape)
    restored = wiener_deconvolve(blurred, kernel, reg=1e-3, boundary=boundary)
    gain = _psnr(restored, photo) - _psnr(blurred, photo)
    assert gain >= 3.0, f"{name}: only {gain:.2f} dB gained"


def test_periodic_noiseless_recovery_is_near_exact(photo):
    kernel = D.gaussian_kernel(7, 0.7)  # well conditioned: no near-zero frequencies
    blurred = D.convolve(photo, kernel, "periodic")
    restored = wiener_deconvolve(blurred, kernel, reg=1e-9, boundary="periodic")
    assert float(jnp.max(jnp.abs(restored - photo))) < 1e-3


def test_batched_equals_per_image_and_jits(photo):
    images = jnp.concatenate([photo, photo[:, ::-1], photo[:, :, ::-1]], axis=0)
    kernels = jnp.stack([D.gaussian_kernel(9, 1.5), D.disk_kernel(9, 3.0), D.line_kernel(9, 7.0, 20.0)])
    regs = jnp.asarray([1e-3, 1e-2, 3e-3])
    blurred = D.convolve(images, kernels)
    batched = jax.jit(wiener_deconvolve, static_argnames="boundary")(blurred, kernels, regs, boundary="edge")
    for i in range(3):
        single = wiener_deconvolve(blurred[i:i + 1], kernels[i], reg=float(regs[i]), boundary="edge")
        np.testing.assert_allclose(batched[i], single[0], atol=1e-5)
    shared = wiener_deconvolve(blurred, kernels[0], reg=1e-3)
    np.testing.assert_allclose(shared[1], wiener_deconvolve(blurred[1:2], kernels[0], reg=1e-3)[0], atol=1e-5)


def test_wiener_rejects_bad_arguments(photo):
    with pytest.raises(ValueError, match="boundary"):
        wiener_deconvolve(photo, _delta(3), boundary="mirror")
    with pytest.raises(ValueError, match="kernel"):
        wiener_deconvolve(photo, jnp.stack([_delta(3)] * 2))
    with pytest.raises(ValueError, match="reg"):
        wiener_deconvolve(photo, _delta(3), reg=jnp.ones((2,)))
    with pytest.raises(ValueError, match="N, H, W, C"):
        wiener_deconvolve(photo[0], _delta(3))
