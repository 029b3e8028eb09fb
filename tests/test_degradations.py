import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.ndimage
from skimage import data, transform

from jaxir import degradations as D


@pytest.fixture(scope="module")
def photos():
    image = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)
    flipped = image[:, ::-1].copy()
    return jnp.asarray(np.stack([image, flipped, image[::-1].copy(), image * 0.5]))


def _offsets(size):
    r = np.arange(size) - size // 2
    y, x = np.meshgrid(r, r, indexing="ij")
    return y, x


# ---------------------------------------------------------------- kernels


def test_kernels_are_normalised_float32():
    kernels = {
        "gaussian": D.gaussian_kernel(15, 2.0),
        "anisotropic": D.anisotropic_gaussian_kernel(15, 3.0, 1.0, 30.0),
        "disk": D.disk_kernel(11, 3.3),
        "line": D.line_kernel(21, 13.0, 20.0),
    }
    for name, kernel in kernels.items():
        assert kernel.dtype == jnp.float32, name
        assert kernel.shape[0] == kernel.shape[1], name
        np.testing.assert_allclose(float(jnp.sum(kernel)), 1.0, atol=1e-5, err_msg=name)
        assert float(jnp.min(kernel)) >= 0.0, name


def test_gaussian_kernel_matches_formula():
    y, x = _offsets(9)
    expected = np.exp(-(x**2 + y**2) / (2 * 1.5**2))
    np.testing.assert_allclose(D.gaussian_kernel(9, 1.5), expected / expected.sum(), rtol=1e-5, atol=1e-7)


def test_anisotropic_gaussian_orientation():
    kernel = np.asarray(D.anisotropic_gaussian_kernel(31, 4.0, 1.0, 0.0))
    y, x = _offsets(31)
    var_x, var_y = (kernel * x**2).sum(), (kernel * y**2).sum()
    assert var_x > 8 * var_y
    np.testing.assert_allclose(var_x, 16.0, rtol=0.05)
    rotated = np.asarray(D.anisotropic_gaussian_kernel(31, 4.0, 1.0, 90.0))
    np.testing.assert_allclose(rotated, kernel.T, atol=1e-6)


@pytest.mark.parametrize("radius", [0.0, 1.0, 2.5, 4.2])
def test_disk_kernel_support(radius):
    kernel = np.asarray(D.disk_kernel(13, radius))
    y, x = _offsets(13)
    dist = np.sqrt(x**2 + y**2)
    assert np.all(kernel[dist >= radius + 0.5] == 0)
    inner = kernel[dist <= radius - 0.5]
    if inner.size:
        np.testing.assert_allclose(inner, kernel.max(), rtol=1e-6)
    if radius == 0.0:
        assert kernel[6, 6] == pytest.approx(1.0)


def test_kernel_sizes_must_be_odd():
    with pytest.raises(ValueError, match="odd"):
        D.gaussian_kernel(8, 1.0)
    with pytest.raises(ValueError, match="odd"):
        D.motion_kernel(jax.random.key(0), 20)


def test_line_kernel_support():
    vertical = np.asarray(D.line_kernel(15, 8.0, 0.0))
    rows, cols = np.nonzero(vertical > 1e-6)
    assert set(cols) == {7}
    assert rows.min() >= 7 - 5 and rows.max() <= 7 + 5 and rows.max() - rows.min() >= 7
    horizontal = np.asarray(D.line_kernel(15, 8.0, 90.0))
    np.testing.assert_allclose(horizontal, vertical.T, atol=1e-6)


def test_motion_kernels_random_centred_and_deterministic():
    keys = jax.random.split(jax.random.key(1), 6)
    make = jax.jit(jax.vmap(lambda k: D.motion_kernel(k, 21)))
    kernels = np.asarray(make(keys))
    y, x = _offsets(21)
    assert kernels.dtype == np.float32
    np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert kernels.min() >= 0.0
    for kernel in kernels:
        # Centroid on the centre: blurring does not translate the image.
        assert abs((kernel * x).sum()) < 0.05 and abs((kernel * y).sum()) < 0.05
        assert (kernel > 1e-4).sum() >= 5  # a path, not a point
    assert not np.allclose(kernels[0], kernels[1])
    np.testing.assert_array_equal(np.asarray(make(keys)), kernels)
    # Straight path with no shake: a line of the requested length.
    line = np.asarray(D.motion_kernel(keys[2], 21, length=10.0, anxiety=0.0))
    rows, cols = np.nonzero(line > 1e-6)
    extent = np.hypot(rows.max() - rows.min(), cols.max() - cols.min())
    assert 9.0 <= extent <= 12.5


# ---------------------------------------------------------------- convolution


@pytest.mark.parametrize("boundary, scipy_mode", [("reflect", "mirror"), ("edge", "nearest"),
                                                  ("zero", "constant"), ("periodic", "wrap")])
def test_convolve_matches_scipy(photos, boundary, scipy_mode):
    kernel = np.asarray(D.line_kernel(7, 5.0, 30.0))  # asymmetric: catches flips
    out = np.asarray(D.convolve(photos, kernel, boundary))
    expected = np.stack([
        np.stack([scipy.ndimage.convolve(img[..., c], kernel, mode=scipy_mode) for c in range(3)], -1)
        for img in np.asarray(photos)
    ])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_convolve_per_image_kernels(photos):
    kernels = jnp.stack([D.gaussian_kernel(7, s) for s in (0.5, 1.0, 1.5, 2.0)])
    batched = D.convolve(photos, kernels)
    for i in range(4):
        np.testing.assert_allclose(batched[i], D.convolve(photos[i:i + 1], kernels[i])[0], atol=1e-6)
    delta = jnp.zeros((5, 5)).at[2, 2].set(1.0)
    np.testing.assert_allclose(D.convolve(photos, delta), photos, atol=1e-6)
    with pytest.raises(ValueError, match="boundary"):
        D.convolve(photos, delta, "mirror")
    with pytest.raises(ValueError, match="kernel"):
        D.convolve(photos, kernels[:3])


# ---------------------------------------------------------------- noise


def test_gaussian_noise_statistics():
    flat = jnp.full((2, 96, 96, 3), 0.5)
    noisy = D.gaussian_noise(jax.random.key(0), flat, sigma=25 / 255)
    assert noisy.shape == flat.shape and noisy.dtype == jnp.float32
    np.testing.assert_allclose(float(jnp.std(noisy)), 25 / 255, rtol=0.03)
    np.testing.assert_allclose(float(jnp.mean(noisy)), 0.5, atol=2e-3)
    clipped = D.gaussian_noise(jax.random.key(0), jnp.full((1, 32, 32, 3), 0.98), sigma=0.1, clip=True)
    assert float(clipped.max()) <= 1.0


def test_gaussian_noise_sigma_range_per_image():
    flat = jnp.full((6, 64, 64, 1), 0.5)
    noisy = D.gaussian_noise(jax.random.key(3), flat, sigma=(5 / 255, 50 / 255))
    stds = np.asarray(jnp.std(noisy, axis=(1, 2, 3)))
    assert np.all(stds > 4 / 255) and np.all(stds < 53 / 255)
    assert stds.max() - stds.min() > 5 / 255


def test_poisson_noise_variance_proportional_to_mean():
    peak = 20.0
    levels = jnp.asarray([0.1, 0.4, 0.8]).reshape(3, 1, 1, 1)
    flat = jnp.broadcast_to(levels, (3, 96, 96, 3))
    noisy = np.asarray(jax.jit(functools.partial(D.poisson_noise, peak=peak))(jax.random.key(1), flat))
    means, variances = noisy.mean(axis=(1, 2, 3)), noisy.var(axis=(1, 2, 3))
    np.testing.assert_allclose(means, [0.1, 0.4, 0.8], rtol=0.03)
    np.testing.assert_allclose(variances, np.asarray([0.1, 0.4, 0.8]) / peak, rtol=0.06)
    # Values are photon counts / peak.
    np.testing.assert_allclose(noisy * peak, np.round(noisy * peak), atol=1e-3)


def test_noise_determinism_and_key_forms():
    images = jnp.full((3, 16, 16, 3), 0.5)
    key = jax.random.key(7)
    a = D.gaussian_noise(key, images)
    np.testing.assert_array_equal(a, D.gaussian_noise(key, images))
    assert not np.allclose(a, D.gaussian_noise(jax.random.key(8), images))
    per_image = jax.random.split(key, 3)
    np.testing.assert_array_equal(a, D.gaussian_noise(per_image, images))  # a single key is split the same way
    raw = jax.random.key_data(key)
    np.testing.assert_array_equal(a, D.gaussian_noise(raw, images))
    with pytest.raises(ValueError, match="keys"):
        D.gaussian_noise(per_image[:2], images)
    with pytest.raises(ValueError, match="sigma"):
        D.gaussian_noise(key, images, sigma=-0.1)
    with pytest.raises(ValueError, match="low > high"):
        D.gaussian_noise(key, images, sigma=(0.2, 0.1))


# ---------------------------------------------------------------- blur ops


def test_blur_ops_shapes_range_and_randomness(photos):
    key = jax.random.key(2)
    for blur in (functools.partial(D.gaussian_blur, sigma=(0.5, 3.0), kernel_size=11),
                 functools.partial(D.gaussian_blur, sigma_x=(0.5, 3.0), sigma_y=(0.5, 3.0), kernel_size=11),
                 functools.partial(D.motion_blur, kernel_size=11),
                 functools.partial(D.defocus_blur, radius=(1.0, 3.0))):
        blur = jax.jit(blur)
        out = blur(key, photos[:1].repeat(4, axis=0))
        assert out.shape == (4, 32, 32, 3) and out.dtype == jnp.float32
        assert float(out.min()) >= -1e-6 and float(out.max()) <= 1 + 1e-6
        # Same image, per-image random kernels: the four results differ.
        assert not np.allclose(out[0], out[1], atol=1e-4)
        np.testing.assert_array_equal(out, blur(key, photos[:1].repeat(4, axis=0)))


def test_gaussian_blur_sigma_arguments(photos):
    with pytest.raises(ValueError, match="not both"):
        D.gaussian_blur(jax.random.key(0), photos, sigma=1.0, sigma_x=1.0, sigma_y=2.0)
    with pytest.raises(ValueError, match="sigma_y"):
        D.gaussian_blur(jax.random.key(0), photos, sigma_x=1.0)
    with pytest.raises(ValueError, match="sigma"):
        D.gaussian_blur(jax.random.key(0), photos, sigma=0.0)


def test_defocus_blur_fixed_radius_matches_disk(photos):
    out = D.defocus_blur(jax.random.key(0), photos, radius=2.0)
    np.testing.assert_allclose(out, D.convolve(photos, D.disk_kernel(7, 2.0)), atol=1e-6)


# ---------------------------------------------------------------- weather, low light, jpeg


def test_haze_model():
    clean = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    depth = jnp.full((2, 16, 16), 0.5)
    out = D.haze(jax.random.key(1), clean, beta=1.0, atmospheric_light=0.9, depth=depth)
    t = np.exp(-0.5)
    np.testing.assert_allclose(out, np.asarray(clean) * t + 0.9 * (1 - t), atol=1e-6)
    np.testing.assert_allclose(D.haze(jax.random.key(1), clean, beta=0.0), clean, atol=1e-6)
    synthetic = D.haze(jax.random.key(1), clean)
    assert float(synthetic.min()) >= 0.0 and float(synthetic.max()) <= 1.0
    assert float(jnp.std(synthetic)) < float(jnp.std(clean))  # haze lowers contrast
    with pytest.raises(ValueError, match="depth"):
        D.haze(jax.random.key(1), clean, depth=jnp.ones((2, 8, 8)))


def test_random_depth_smooth_in_unit_range():
    depth = np.asarray(D.random_depth(jax.random.key(4), 48, 64))
    assert depth.shape == (48, 64)
    assert depth.min() == pytest.approx(0.0, abs=1e-6) and depth.max() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(np.diff(depth, axis=0)).max() < 0.15 and np.abs(np.diff(depth, axis=1)).max() < 0.15


def test_rain():
    dark = jnp.full((2, 48, 48, 3), 0.2)
    rainy = np.asarray(jax.jit(functools.partial(D.rain, density=0.01, angle=0.0, beta=0.0))(
        jax.random.key(5), dark))
    assert rainy.shape == dark.shape and rainy.min() >= 0.0 and rainy.max() <= 1.0
    np.testing.assert_array_equal(rainy[..., 0], rainy[..., 2])  # colourless streaks
    # With no veil (beta=0) O = x + S: pixels off the streaks keep their value.
    streaks = rainy[..., 0] - 0.2
    assert 0.02 < np.mean(streaks > 0.1) < 0.8
    assert np.mean(np.abs(streaks) < 1e-6) > 0.2
    # Vertical streaks: pixels correlate far more along columns than along rows.
    col_corr = np.corrcoef(streaks[:, :-1].ravel(), streaks[:, 1:].ravel())[0, 1]
    row_corr = np.corrcoef(streaks[:, :, :-1].ravel(), streaks[:, :, 1:].ravel())[0, 1]
    assert col_corr > 0.7 and col_corr > row_corr + 0.2


def test_low_light():
    images = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
    exact = D.low_light(jax.random.key(1), images, gamma=2.0, scale=0.5, read_noise=0.0)
    np.testing.assert_allclose(exact, 0.5 * np.asarray(images) ** 2, atol=1e-6)
    with pytest.raises(ValueError, match="scale"):
        D.low_light(jax.random.key(1), images, scale=1.5)


def test_jpeg_compress_np(photos):
    images = np.asarray(photos)
    high = D.jpeg_compress_np(images, 95)
    low = D.jpeg_compress_np(images, 10)
    assert high.shape == images.shape and high.dtype == np.float32
    assert np.abs(high - images).mean() < np.abs(low - images).mean()
    assert np.abs(high - images).mean() < 0.03
    per_image = D.jpeg_compress_np(images[:2], [95, 10])
    np.testing.assert_array_equal(per_image[1], low[1])
    grey = D.jpeg_compress_np(images[0, ..., :1], 50)
    assert grey.shape == (32, 32, 1)
    with pytest.raises(ValueError, match="quality"):
        D.jpeg_compress_np(images, 0)


# ---------------------------------------------------------------- synthesize

FULL_SPEC = [
    {"name": "defocus_blur", "radius": (0.5, 2.0)},
    {"name": "motion_blur", "kernel_size": 9},
    {"name": "gaussian_blur", "kernel_size": 7, "sigma_x": (0.3, 1.5), "sigma_y": (0.3, 1.5)},
    {"name": "haze"},
    {"name": "rain", "length": (4.0, 10.0)},
    {"name": "low_light", "peak": (20.0, 60.0)},
    {"name": "poisson_noise", "peak": 100.0},
    {"name": "gaussian_noise", "sigma": [5 / 255, 25 / 255], "clip": True},
]


def test_synthesize_independent_of_batch_composition(photos):
    seeds = np.asarray([11, 2**32 - 1, 7, 123456], dtype=np.uint32)
    run = D.build_synthesizer(FULL_SPEC)
    batch = np.asarray(run(photos, seeds))
    assert batch.shape == photos.shape and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0
    # Records 1 and 3 in another batch, at other positions, beside other records.
    other_images = jnp.stack([photos[3], photos[0] * 0.3, photos[1], photos[2][::-1]])
    other_seeds = np.asarray([123456, 5, 2**32 - 1, 99], dtype=np.uint32)
    other = np.asarray(run(other_images, other_seeds))
    np.testing.assert_allclose(other[0], batch[3], atol=1e-6)
    np.testing.assert_allclose(other[2], batch[1], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(run(photos, seeds)), batch)
    shifted = np.asarray(run(photos, seeds + 1))
    assert np.abs(shifted - batch).mean() > 0.01


def test_synthesize_same_in_batches_of_one_and_four(photos):
    spec = [{"name": "defocus_blur", "radius": (0.5, 2.0)}, {"name": "gaussian_noise", "sigma": (0.01, 0.1)}]
    seeds = np.asarray([3, 1, 4, 1 << 31], dtype=np.uint32)
    run = D.build_synthesizer(spec)
    batch = np.asarray(run(photos, seeds))
    for i in (0, 3):
        single = np.asarray(run(photos[i:i + 1], seeds[i:i + 1]))
        np.testing.assert_allclose(single[0], batch[i], atol=1e-6)
    # Same op, same seed: the same noise whichever images it is applied to.
    noise_only = D.build_synthesizer(spec[1:])
    np.testing.assert_allclose(noise_only(photos, seeds) - photos,
                               noise_only(jnp.zeros_like(photos), seeds), atol=1e-6)
    # Without jit too.
    np.testing.assert_allclose(D.synthesize(spec[1:], photos, seeds), noise_only(photos, seeds), atol=1e-6)


def test_synthesize_accepts_configdict(photos):
    spec = [ml_collections.ConfigDict({"name": "gaussian_noise", "sigma": 0.1})]
    seeds = np.arange(4, dtype=np.uint32)
    out = D.synthesize(spec, photos, seeds)
    np.testing.assert_allclose(out, D.synthesize([{"name": "gaussian_noise", "sigma": 0.1}], photos, seeds))
    np.testing.assert_allclose(D.synthesize([], photos, seeds), photos)


def test_synthesize_errors(photos):
    seeds = np.arange(4, dtype=np.uint32)
    with pytest.raises(ValueError, match="gaussian_noise, poisson_noise"):
        D.synthesize([{"name": "snow"}], photos, seeds)
    with pytest.raises(ValueError, match="jpeg_compress_np"):
        D.synthesize([{"name": "jpeg", "quality": 30}], photos, seeds)
    with pytest.raises(ValueError, match="valid: sigma, clip"):
        D.synthesize([{"name": "gaussian_noise", "sigmaa": 0.1}], photos, seeds)
    with pytest.raises(ValueError, match="sigma"):
        D.synthesize([{"name": "gaussian_noise", "sigma": -1.0}], photos, seeds)
    with pytest.raises(ValueError, match="True or False"):
        D.synthesize([{"name": "gaussian_noise", "clip": "yes"}], photos, seeds)
    with pytest.raises(ValueError, match="seeds"):
        D.synthesize([{"name": "haze"}], photos, seeds[:3])
    with pytest.raises(ValueError, match="list of dicts"):
        D.synthesize({"name": "haze"}, photos, seeds)
