import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.color
import skimage.data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from jaxir import metrics
from jaxir.metrics import image as image_metrics

TOL = 1e-4


def _crop(img, h=96, w=128):
    return img[:h, :w].astype(np.float64) / 255.0


@pytest.fixture(scope="module")
def photo_pairs():
    """Three scikit-image photos, each degraded with a different noise level:
    (pred, target) float64 NHWC in [0, 1]."""
    rng = np.random.default_rng(0)
    clean = np.stack([_crop(skimage.data.astronaut()),
                      _crop(skimage.data.chelsea()),
                      _crop(skimage.data.coffee())])
    sigmas = np.array([0.02, 0.05, 0.1])[:, None, None, None]
    noisy = np.clip(clean + rng.normal(size=clean.shape) * sigmas, 0, 1)
    return noisy, clean


def _f32(x):
    return jnp.asarray(x, jnp.float32)


# --------------------------------------------------------------------------
# Against scikit-image
# --------------------------------------------------------------------------
def test_psnr_matches_skimage(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.psnr(_f32(pred), _f32(target)))
    ref = [sk_psnr(t, p, data_range=1.0) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    # Scores decrease as the noise grows.
    assert ours[0] > ours[1] > ours[2]


def test_psnr_data_range_255_matches_skimage(photo_pairs):
    pred, target = photo_pairs[0] * 255, photo_pairs[1] * 255
    ours = np.asarray(metrics.psnr(_f32(pred), _f32(target), data_range=255))
    ref = [sk_psnr(t, p, data_range=255) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)


def test_ssim_gaussian_matches_skimage_matlab_settings(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.ssim(_f32(pred), _f32(target), kind="gaussian"))
    ref = [sk_ssim(t, p, data_range=1.0, channel_axis=-1,
                   gaussian_weights=True, sigma=1.5,
                   use_sample_covariance=False)
           for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)


def test_ssim_uniform_matches_skimage_defaults(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.ssim(_f32(pred), _f32(target), kind="uniform"))
    ref = [sk_ssim(t, p, data_range=1.0, channel_axis=-1)
           for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    assert ours[0] > ours[1] > ours[2]


def test_ssim_data_range_255(photo_pairs):
    pred, target = photo_pairs[0] * 255, photo_pairs[1] * 255
    ours = np.asarray(metrics.ssim(_f32(pred), _f32(target), data_range=255))
    ref = [sk_ssim(t, p, data_range=255, channel_axis=-1,
                   gaussian_weights=True, sigma=1.5,
                   use_sample_covariance=False)
           for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)


def _ssim_volume_reference(a, b, data_range=1.0):
    """MATLAB ssim() on an H x W x C array: 3-D Gaussian (sigma 1.5, 11 taps),
    replicate ('nearest') borders, mean of the full map."""
    blur = functools.partial(scipy.ndimage.gaussian_filter, sigma=1.5,
                             mode="nearest", truncate=5 / 1.5)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return ssim_map.mean()


def test_ssim_matlab_kind_matches_volumetric_reference(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.ssim(_f32(pred), _f32(target), kind="matlab"))
    ref = [_ssim_volume_reference(p, t) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    # Grey images: the channel axis of size 1 makes it the 2-D MATLAB SSIM.
    grey_p, grey_t = pred[..., :1], target[..., :1]
    ours_grey = np.asarray(metrics.ssim(_f32(grey_p), _f32(grey_t),
                                        kind="matlab"))
    ref_grey = [_ssim_volume_reference(p[..., 0], t[..., 0])
                for p, t in zip(grey_p, grey_t)]
    np.testing.assert_allclose(ours_grey, ref_grey, atol=TOL)


def test_ssim_kinds_differ_and_identical_images_score_one(photo_pairs):
    pred, target = _f32(photo_pairs[0][:1]), _f32(photo_pairs[1][:1])
    values = {k: float(metrics.ssim(pred, target, kind=k)[0])
              for k in metrics.SSIM_KINDS}
    assert len({round(v, 4) for v in values.values()}) == 3
    for kind in metrics.SSIM_KINDS:
        same = metrics.ssim(target, target, kind=kind)
        np.testing.assert_allclose(np.asarray(same), 1.0, atol=1e-5)


def test_mae(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.mae(_f32(pred), _f32(target)))
    np.testing.assert_allclose(ours, np.abs(pred - target).mean(axis=(1, 2, 3)),
                               atol=1e-6)


# --------------------------------------------------------------------------
# Y channel
# --------------------------------------------------------------------------
def test_y_channel_known_values():
    pixels = _f32([[[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.2, 0.4, 0.6]]]])
    y = np.asarray(metrics.rgb_to_y(pixels))[0, 0, :, 0] * 255
    hand = 16 + 65.481 * 0.2 + 128.553 * 0.4 + 24.966 * 0.6  # = 95.497
    np.testing.assert_allclose(y, [235.0, 16.0, hand], atol=1e-4)
    assert metrics.rgb_to_y(pixels).shape == (1, 1, 3, 1)


def test_ycbcr_matches_skimage_and_grey_has_neutral_chroma(photo_pairs):
    target = photo_pairs[1][0]
    ours = np.asarray(metrics.rgb_to_ycbcr(_f32(target))) * 255
    np.testing.assert_allclose(ours, skimage.color.rgb2ycbcr(target),
                               atol=1e-3)
    grey = metrics.rgb_to_ycbcr(jnp.full((1, 1, 1, 3), 0.5))
    np.testing.assert_allclose(np.asarray(grey)[..., 1:] * 255, 128.0,
                               atol=1e-4)


def test_psnr_on_y_matches_skimage_on_converted_images(photo_pairs):
    pred, target = photo_pairs
    ours = np.asarray(metrics.psnr(_f32(pred), _f32(target), color="y"))
    y = lambda img: skimage.color.rgb2ycbcr(img)[..., 0] / 255.0
    ref = [sk_psnr(y(t), y(p), data_range=1.0) for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    ours_ssim = np.asarray(metrics.ssim(_f32(pred), _f32(target), color="y"))
    ref_ssim = [sk_ssim(y(t), y(p), data_range=1.0, gaussian_weights=True,
                        sigma=1.5, use_sample_covariance=False)
                for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours_ssim, ref_ssim, atol=TOL)


def test_round_y_follows_matlab_uint8_luma(photo_pairs):
    pred, target = photo_pairs

    def matlab_y(img):  # rgb2ycbcr on a uint8 image returns uint8
        u8 = np.round(img * 255)
        y = 16 + (u8 @ np.array([65.481, 128.553, 24.966])) / 255
        return np.floor(y + 0.5)

    ours = np.asarray(metrics.psnr(_f32(pred), _f32(target), color="y",
                                   quantize_uint8=True, round_y=True))
    ref = [sk_psnr(matlab_y(t), matlab_y(p), data_range=255)
           for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    unrounded = np.asarray(metrics.psnr(_f32(pred), _f32(target), color="y",
                                        quantize_uint8=True))
    assert np.all(np.abs(unrounded - ours) > 1e-4)


def test_y_on_grey_images_is_identity(photo_pairs):
    pred, target = _f32(photo_pairs[0][..., :1]), _f32(photo_pairs[1][..., :1])
    np.testing.assert_allclose(
        np.asarray(metrics.psnr(pred, target, color="y")),
        np.asarray(metrics.psnr(pred, target)), atol=1e-6)


# --------------------------------------------------------------------------
# crop_border and uint8 rounding
# --------------------------------------------------------------------------
def test_crop_border_excludes_border_errors(photo_pairs):
    target = photo_pairs[1]
    pred = target.copy()
    pred[:, :4] = 1 - pred[:, :4]  # errors only in the top 4 rows
    p, t = _f32(pred), _f32(target)
    assert np.all(np.isfinite(np.asarray(metrics.psnr(p, t))))
    assert np.all(np.isinf(np.asarray(metrics.psnr(p, t, crop_border=4))))
    assert np.all(np.asarray(metrics.ssim(p, t)) < 0.99)
    np.testing.assert_allclose(np.asarray(metrics.ssim(p, t, crop_border=4)),
                               1.0, atol=1e-5)


def test_crop_border_matches_cropped_skimage(photo_pairs):
    pred, target = photo_pairs
    k = 6
    ours = np.asarray(metrics.psnr(_f32(pred), _f32(target), crop_border=k))
    ref = [sk_psnr(t[k:-k, k:-k], p[k:-k, k:-k], data_range=1.0)
           for p, t in zip(pred, target)]
    np.testing.assert_allclose(ours, ref, atol=TOL)


def test_quantize_uint8_rounds_before_scoring(photo_pairs):
    target = np.round(photo_pairs[1] * 255) / 255
    # Off by less than half a level, and out of range: uint8 saving hides it.
    pred = target + 0.3 / 255
    pred[:, 0, 0] = 1.2
    target[:, 0, 0] = 1.0
    p, t = _f32(pred), _f32(target)
    assert np.all(np.isfinite(np.asarray(metrics.psnr(p, t))))
    assert np.all(np.isinf(np.asarray(metrics.psnr(p, t, quantize_uint8=True))))

    noisy, clean = photo_pairs
    q = lambda x: np.round(np.clip(x, 0, 1) * 255)
    ours = np.asarray(metrics.psnr(_f32(noisy), _f32(clean),
                                   quantize_uint8=True))
    ref = [sk_psnr(q(c), q(n), data_range=255) for n, c in zip(noisy, clean)]
    np.testing.assert_allclose(ours, ref, atol=TOL)
    ours_ssim = np.asarray(metrics.ssim(_f32(noisy), _f32(clean),
                                        quantize_uint8=True))
    ref_ssim = [sk_ssim(q(c), q(n), data_range=255, channel_axis=-1,
                        gaussian_weights=True, sigma=1.5,
                        use_sample_covariance=False)
                for n, c in zip(noisy, clean)]
    np.testing.assert_allclose(ours_ssim, ref_ssim, atol=TOL)


# --------------------------------------------------------------------------
# DehazeFormer downsampling before SSIM
# --------------------------------------------------------------------------
def test_adaptive_pool_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((1, 23, 37, 2)).astype(np.float32)
    ours = jnp.einsum("oh,nhwc->nowc",
                      image_metrics._adaptive_pool_matrix(23, 10), x)
    ours = jnp.einsum("pw,nowc->nopc",
                      image_metrics._adaptive_pool_matrix(37, 15), ours)
    ref = torch.nn.functional.adaptive_avg_pool2d(
        torch.from_numpy(x).permute(0, 3, 1, 2), (10, 15)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(ours), ref.numpy(), atol=1e-6)


def test_ssim_downsample_pools_to_short_side():
    # SOTS-indoor-sized image: ratio round(460 / 256) = 2 -> 230 x 310.
    x = jnp.asarray(np.random.default_rng(2).random((1, 460, 620, 3)),
                    jnp.float32)
    pooled = image_metrics._downsample_short_side(x, 256)
    assert pooled.shape == (1, 230, 310, 3)
    np.testing.assert_allclose(
        np.asarray(pooled)[0, 0, 0],
        np.asarray(x)[0, :2, :2].mean(axis=(0, 1)), atol=1e-6)
    # Small images are left alone.
    assert image_metrics._downsample_short_side(x[:, :300, :300], 256).shape \
        == (1, 300, 300, 3)


def test_ssim_downsample_scores_pooled_images(photo_pairs):
    pred, target = _f32(photo_pairs[0]), _f32(photo_pairs[1])
    # 96 x 128 with n=48 -> ratio 2 -> 48 x 64 pooled images.
    ours = metrics.ssim(pred, target, downsample_to=48)
    pool = lambda x: x.reshape(3, 48, 2, 64, 2, 3).mean(axis=(2, 4))
    direct = metrics.ssim(pool(pred), pool(target))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(direct), atol=1e-6)


# --------------------------------------------------------------------------
# jit and errors
# --------------------------------------------------------------------------
def test_metrics_are_jittable(photo_pairs):
    pred, target = _f32(photo_pairs[0]), _f32(photo_pairs[1])
    for fn in (functools.partial(metrics.psnr, color="y", quantize_uint8=True),
               functools.partial(metrics.ssim, kind="uniform", crop_border=2),
               metrics.mae):
        np.testing.assert_allclose(np.asarray(jax.jit(fn)(pred, target)),
                                   np.asarray(fn(pred, target)), atol=1e-5)


def test_user_mistakes_raise_clear_errors():
    x = jnp.zeros((1, 16, 16, 3))
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr(x, jnp.zeros((1, 16, 8, 3)))
    with pytest.raises(ValueError, match="NHWC"):
        metrics.psnr(x[0], x[0])
    with pytest.raises(ValueError, match="kind"):
        metrics.ssim(x, x, kind="box")
    with pytest.raises(ValueError, match="color"):
        metrics.psnr(x, x, color="lab")
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(x[:, :8], x[:, :8])
    with pytest.raises(ValueError, match="crop_border"):
        metrics.psnr(x, x, crop_border=8)
    with pytest.raises(ValueError, match="3 channels"):
        metrics.psnr(jnp.zeros((1, 16, 16, 2)), jnp.zeros((1, 16, 16, 2)),
                     color="y")


# --------------------------------------------------------------------------
# Conventions
# --------------------------------------------------------------------------
REQUIRED_BENCHMARKS = (
    "gopro", "hide", "realblur_j", "realblur_r", "dpdd", "realdof", "lfdof",
    "sots_indoor", "sots_outdoor", "rain100l", "rain100h", "bsd68", "cbsd68",
    "kodak24", "urban100", "sidd", "lol", "snow100k", "csd", "allinone3",
    "allinone5")


def test_conventions_table_is_complete_and_sourced():
    for name in REQUIRED_BENCHMARKS:
        conv = metrics.CONVENTIONS[name]
        assert set(conv.metrics) <= set(metrics.METRIC_NAMES)
        assert "psnr" in conv.metrics and "ssim" in conv.metrics
        assert len(conv.source) > 20, name
    for name in ("dpdd", "realdof", "lfdof"):
        assert metrics.CONVENTIONS[name].metrics == ("psnr", "ssim", "mae",
                                                     "lpips")
    for name in ("rain100l", "rain100h"):
        assert metrics.CONVENTIONS[name].color == "y"
    for name in ("gopro", "hide", "realblur_j", "realblur_r"):
        conv = metrics.CONVENTIONS[name]
        assert conv.color == "rgb" and conv.quantize_uint8 is True
    assert all(name in metrics.describe() for name in REQUIRED_BENCHMARKS)


def test_evaluate_applies_convention_options(photo_pairs):
    pred, target = _f32(photo_pairs[0]), _f32(photo_pairs[1])
    scores = metrics.evaluate(pred, target, "rain100l")
    assert set(scores) == {"psnr", "ssim"}
    expected = metrics.psnr(pred, target, color="y", quantize_uint8=True,
                            round_y=True)
    assert scores["psnr"] == pytest.approx(float(jnp.mean(expected)), abs=1e-5)
    assert isinstance(scores["psnr"], float)

    lol = metrics.evaluate_per_image(pred, target, "lol")
    np.testing.assert_allclose(np.asarray(lol["psnr"]),
                               np.asarray(metrics.psnr(pred, target)),
                               atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(lol["ssim"]),
        np.asarray(metrics.ssim(pred, target, quantize_uint8=True)), atol=1e-6)


def test_evaluate_clamps_predictions(photo_pairs):
    target = _f32(photo_pairs[1])
    over = target.at[:, :8].set(1.5)
    clamped = jnp.clip(over, 0, 1)
    a = metrics.evaluate(over, target, "allinone3")
    b = metrics.evaluate(clamped, target, "allinone3")
    assert a == pytest.approx(b, abs=1e-6)


def test_evaluate_with_lpips_and_mae(photo_pairs):
    pred, target = _f32(photo_pairs[0]), _f32(photo_pairs[1])
    scores = metrics.evaluate_per_image(pred, target, "dpdd")
    assert set(scores) == {"psnr", "ssim", "mae", "lpips"}
    assert all(v.shape == (3,) for v in scores.values())
    lp = np.asarray(scores["lpips"])
    assert lp[0] < lp[1] < lp[2]
    same = metrics.evaluate(target, target, "dpdd")
    assert same["lpips"] <= 1e-6 and same["mae"] == 0.0


def test_allinone5_scores_as_moce_ir_test_py(photo_pairs):
    """MoCE-IR src/test.py: skimage PSNR(data_range=1) and SSIM(channel_axis=2,
    gaussian_weights=True, data_range=1.0) at its default sample covariance,
    and LPIPS with the VGG backbone, on float RGB."""
    from jaxir.metrics.lpips import LPIPS

    pred, target = photo_pairs
    scores = metrics.evaluate_per_image(_f32(pred), _f32(target), "allinone5")
    assert set(scores) == {"psnr", "ssim", "lpips"}
    np.testing.assert_allclose(
        np.asarray(scores["psnr"]),
        [sk_psnr(t, p, data_range=1) for p, t in zip(pred, target)], atol=TOL)
    reference = [sk_ssim(t, p, channel_axis=2, gaussian_weights=True,
                         data_range=1.0) for p, t in zip(pred, target)]
    np.testing.assert_allclose(np.asarray(scores["ssim"]), reference, atol=TOL)
    # The N-1 normalisation is what sets it apart from Wang's Gaussian SSIM.
    population = np.asarray(metrics.ssim(_f32(pred), _f32(target)))
    assert np.abs(population - reference).max() > 5 * TOL
    np.testing.assert_allclose(
        np.asarray(scores["lpips"]),
        np.asarray(LPIPS("vgg")(_f32(pred), _f32(target))), rtol=1e-5)
    no_lpips = dataclasses.replace(metrics.CONVENTIONS["allinone5"],
                                   metrics=("psnr", "ssim"))
    jitted = jax.jit(metrics.evaluate_per_image, static_argnums=2)(
        _f32(pred), _f32(target), no_lpips)
    np.testing.assert_allclose(np.asarray(jitted["ssim"]), reference, atol=TOL)
    same = metrics.evaluate(_f32(target), _f32(target), no_lpips)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-5)


def test_evaluate_per_image_jits_with_static_convention(photo_pairs):
    pred, target = _f32(photo_pairs[0]), _f32(photo_pairs[1])
    conv = metrics.CONVENTIONS["gopro"]
    jitted = jax.jit(metrics.evaluate_per_image, static_argnums=2)
    out = jitted(pred, target, conv)
    eager = metrics.evaluate_per_image(pred, target, conv)
    for key in eager:
        np.testing.assert_allclose(np.asarray(out[key]),
                                   np.asarray(eager[key]), atol=1e-6)


def test_convention_validation():
    with pytest.raises(ValueError, match="unknown benchmark"):
        metrics.evaluate(jnp.zeros((1, 16, 16, 3)), jnp.zeros((1, 16, 16, 3)),
                         "gopr0")
    with pytest.raises(ValueError, match="metrics"):
        metrics.MetricConvention(("psnr", "fid"))
    with pytest.raises(ValueError, match="round_y"):
        metrics.MetricConvention(("psnr",), round_y=True)
    with pytest.raises(ValueError, match="ssim_kind"):
        metrics.MetricConvention(("ssim",), ssim_kind="box")
    for kind, downsample in (("uniform", None), ("matlab", None),
                             ("gaussian", 256)):
        with pytest.raises(ValueError, match="ssim_sample_covariance"):
            metrics.MetricConvention(("ssim",), ssim_kind=kind,
                                     ssim_downsample=downsample,
                                     ssim_sample_covariance=True)
    with pytest.raises(ValueError, match="quantize_uint8"):
        metrics.MetricConvention(("psnr",), quantize_uint8=("ssim",))
    conv = metrics.CONVENTIONS["gopro"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        conv.color = "y"
