"""Full-reference image metrics: PSNR, SSIM (three windowing conventions), MAE.

All functions take batched NHWC arrays and return one value per image, shape
(N,). They are pure jnp (jit-able; keyword options are static). Images are
expected in [0, data_range]; inside jaxir that is [0, 1] with data_range=1.

Benchmark scripts differ in details that move scores by 0.01-0.1 dB, so every
detail is an explicit option:
  * `quantize_uint8`: score round(clip(x, 0, 1) * 255) / 255, as scripts that
    save PNGs or call tensor2img / img_as_ubyte before scoring.
  * `color='y'`: score the BT.601 luma of MATLAB's `rgb2ycbcr`
    (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1], Y in [16, 235]),
    as BasicSR's `rgb2ycbcr(img, y_only=True)`; `round_y` additionally rounds
    Y to an integer as MATLAB does when `rgb2ycbcr` is given uint8 images.
  * `crop_border`: pixels dropped on each side before scoring.
  * SSIM `kind`:
      - 'gaussian': 11x11 Gaussian window, sigma 1.5, valid region, mean over
        pixels and channels (Wang et al.'s SSIM_index.m; BasicSR
        calculate_ssim; skimage with gaussian_weights=True,
        use_sample_covariance=False; pytorch_msssim.ssim).
      - 'uniform': 7x7 box window with sample covariance, valid region
        (skimage.metrics.structural_similarity defaults).
      - 'matlab': MATLAB's `ssim()`: the 11-tap Gaussian applied with
        replicate padding ('same' map); an RGB array is treated as a volume,
        so the Gaussian also runs across the channel axis (NAFNet's
        calculate_ssim with ssim3d=True reproduces this).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

COLOR_SPACES = ("rgb", "y")
SSIM_KINDS = ("gaussian", "uniform", "matlab")

# MATLAB rgb2ycbcr (ITU-R BT.601, studio swing) for RGB in [0, 1] -> [0, 255].
_YCBCR_MATRIX = np.array(
    [[65.481, -37.797, 112.0],
     [128.553, -74.203, -93.786],
     [24.966, 112.0, -18.214]], dtype=np.float32)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float32)


# ----------------------------------------------------------------------------
# Colour conversion and preprocessing
# ----------------------------------------------------------------------------
def rgb_to_ycbcr(rgb: jax.Array, data_range: float = 1.0) -> jax.Array:
    """RGB -> YCbCr exactly as MATLAB's rgb2ycbcr (float path, no rounding).

    Input and output share the scale [0, data_range]: for data_range=1, white
    maps to Y=235/255 and grey to Cb=Cr=128/255.
    """
    _check_channels(rgb, 3, "rgb_to_ycbcr")
    unit = rgb.astype(jnp.float32) / data_range
    # HIGHEST keeps accelerators from doing this matmul in bfloat16 passes.
    ycc = jnp.einsum("...i,ij->...j", unit, jnp.asarray(_YCBCR_MATRIX),
                     precision=jax.lax.Precision.HIGHEST)
    return (ycc + jnp.asarray(_YCBCR_OFFSET)) / 255.0 * data_range


def rgb_to_y(rgb: jax.Array, data_range: float = 1.0) -> jax.Array:
    """Luma channel of `rgb_to_ycbcr`, keeping a trailing channel axis of 1."""
    _check_channels(rgb, 3, "rgb_to_y")
    unit = rgb.astype(jnp.float32) / data_range
    r, g, b = (unit[..., i:i + 1] for i in range(3))
    coeff = _YCBCR_MATRIX[:, 0]
    y = _YCBCR_OFFSET[0] + coeff[0] * r + coeff[1] * g + coeff[2] * b
    return y / 255.0 * data_range


def quantize_uint8(x: jax.Array, data_range: float = 1.0) -> jax.Array:
    """round(clip(x, 0, 1) * 255) / 255 in the [0, data_range] scale.

    jnp.round is round-half-to-even, like numpy's round used by tensor2img and
    skimage's img_as_ubyte.
    """
    unit = jnp.clip(x.astype(jnp.float32) / data_range, 0.0, 1.0)
    return jnp.round(unit * 255.0) / 255.0 * data_range


def _round_half_up_255(x: jax.Array, data_range: float) -> jax.Array:
    # MATLAB's uint8 conversion rounds halves away from zero (values here > 0).
    return jnp.floor(x / data_range * 255.0 + 0.5) / 255.0 * data_range


def prepare(
    x: jax.Array,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    color: str = "rgb",
    quantize: bool = False,
    round_y: bool = False,
) -> jax.Array:
    """Apply the benchmark preprocessing in the order scripts do it:
    quantize -> crop border -> colour conversion (-> round Y)."""
    _check_nhwc(x, "image")
    if color not in COLOR_SPACES:
        raise ValueError(f"color must be one of {COLOR_SPACES}, got {color!r}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    x = x.astype(jnp.float32)
    if quantize:
        x = quantize_uint8(x, data_range)
    if crop_border:
        h, w = x.shape[1:3]
        if 2 * crop_border >= min(h, w):
            raise ValueError(
                f"crop_border={crop_border} leaves nothing of a {h}x{w} image")
        x = x[:, crop_border:-crop_border, crop_border:-crop_border, :]
    if color == "y" and x.shape[-1] == 3:
        x = rgb_to_y(x, data_range)
        if round_y:
            x = _round_half_up_255(x, data_range)
    elif color == "y" and x.shape[-1] != 1:
        raise ValueError(
            f"color='y' needs RGB (3 channels) or grey (1 channel) images, "
            f"got {x.shape[-1]} channels")
    return x


# ----------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=(
    "data_range", "crop_border", "color", "quantize_uint8", "round_y"))
def psnr(
    pred: jax.Array,
    target: jax.Array,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    color: str = "rgb",
    quantize_uint8: bool = False,
    round_y: bool = False,
) -> jax.Array:
    """Per-image PSNR in dB, shape (N,); +inf where the images are identical."""
    pred, target = _prepare_pair(pred, target, data_range, crop_border, color,
                                 quantize_uint8, round_y)
    mse = jnp.mean(jnp.square(pred - target), axis=(1, 2, 3))
    return 10.0 * jnp.log10(data_range**2 / mse)


@functools.partial(jax.jit, static_argnames=(
    "data_range", "crop_border", "color", "quantize_uint8", "round_y"))
def mae(
    pred: jax.Array,
    target: jax.Array,
    *,
    data_range: float = 1.0,
    crop_border: int = 0,
    color: str = "rgb",
    quantize_uint8: bool = False,
    round_y: bool = False,
) -> jax.Array:
    """Per-image mean absolute error over pixels and channels, shape (N,)."""
    pred, target = _prepare_pair(pred, target, data_range, crop_border, color,
                                 quantize_uint8, round_y)
    return jnp.mean(jnp.abs(pred - target), axis=(1, 2, 3))


@functools.partial(jax.jit, static_argnames=(
    "kind", "data_range", "crop_border", "color", "quantize_uint8", "round_y",
    "downsample_to"))
def ssim(
    pred: jax.Array,
    target: jax.Array,
    *,
    kind: str = "gaussian",
    data_range: float = 1.0,
    crop_border: int = 0,
    color: str = "rgb",
    quantize_uint8: bool = False,
    round_y: bool = False,
    downsample_to: int | None = None,
) -> jax.Array:
    """Per-image SSIM, shape (N,). See the module docstring for `kind`.

    downsample_to: DehazeFormer's protocol (also ConvIR's dehazing/desnowing
      evaluation): before SSIM, both images are area-pooled with PyTorch's
      adaptive_avg_pool2d to (H // r, W // r), r = max(1, round(min(H, W) / n)).
    """
    if kind not in SSIM_KINDS:
        raise ValueError(f"ssim kind must be one of {SSIM_KINDS}, got {kind!r}")
    pred, target = _prepare_pair(pred, target, data_range, crop_border, color,
                                 quantize_uint8, round_y)
    if downsample_to is not None:
        pred, target = (_downsample_short_side(x, downsample_to)
                        for x in (pred, target))
    h, w = pred.shape[1:3]
    window = 7 if kind == "uniform" else 11
    if kind != "matlab" and min(h, w) < window:
        raise ValueError(
            f"SSIM kind {kind!r} needs images of at least {window}x{window} "
            f"(after cropping/pooling), got {h}x{w}")
    k2 = 0.03
    if kind == "uniform":
        # Sample covariance multiplies every (co)variance by n/(n-1); dividing
        # C2 by that factor instead gives the identical SSIM map, so dm-pix's
        # population-statistics SSIM can be reused unchanged.
        n = window * window
        k2 = k2 / math.sqrt(n / (n - 1))
    return dm_pix.ssim(pred, target, max_val=data_range, k2=k2,
                       filter_fn=_SSIM_FILTERS[kind])


# ----------------------------------------------------------------------------
# Internals
# ----------------------------------------------------------------------------
def _prepare_pair(pred, target, data_range, crop_border, color, quantize,
                  round_y):
    _check_nhwc(pred, "pred")
    _check_nhwc(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {pred.shape} vs {target.shape}")
    kw = dict(data_range=data_range, crop_border=crop_border, color=color,
              quantize=quantize, round_y=round_y)
    return prepare(pred, **kw), prepare(target, **kw)


def _check_nhwc(x, what):
    if getattr(x, "ndim", None) != 4:
        raise ValueError(
            f"{what} must be a batched NHWC array (4 dims), got shape "
            f"{getattr(x, 'shape', type(x))}")


def _check_channels(x, channels, what):
    if x.shape[-1] != channels:
        raise ValueError(
            f"{what} expects {channels} channels on the last axis, "
            f"got shape {x.shape}")


def _gaussian_taps(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size, dtype=np.float64) - (size - 1) / 2
    taps = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (taps / taps.sum()).astype(np.float32)


def _correlate_valid(x: jax.Array, taps: np.ndarray, axis: int) -> jax.Array:
    """1-D valid correlation along `axis` as a weighted sum of shifted slices
    (exact, and cheap for windows of 7-11 taps)."""
    length = x.shape[axis] - len(taps) + 1
    out = None
    for k, tap in enumerate(taps):
        term = float(tap) * jax.lax.slice_in_dim(x, k, k + length, axis=axis)
        out = term if out is None else out + term
    return out


def _box_valid(z: jax.Array) -> jax.Array:
    taps = np.full(7, 1.0 / 7, dtype=np.float32)
    return _correlate_valid(_correlate_valid(z, taps, 1), taps, 2)


def _gaussian_valid(z: jax.Array) -> jax.Array:
    taps = _gaussian_taps()
    return _correlate_valid(_correlate_valid(z, taps, 1), taps, 2)


def _replicate_mixing_matrix(taps: np.ndarray, size: int) -> np.ndarray:
    """Matrix of a 'same' correlation with replicate padding along an axis
    of `size` samples (cheaper than padding a 3-channel axis to 13)."""
    half = len(taps) // 2
    matrix = np.zeros((size, size), dtype=np.float64)
    for out in range(size):
        for k, tap in enumerate(taps):
            matrix[out, min(max(out + k - half, 0), size - 1)] += tap
    return matrix.astype(np.float32)


def _gaussian_replicate_volume(z: jax.Array) -> jax.Array:
    taps = _gaussian_taps()
    pad = len(taps) // 2
    z = jnp.pad(z, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    z = _correlate_valid(_correlate_valid(z, taps, 1), taps, 2)
    mixing = jnp.asarray(_replicate_mixing_matrix(taps, z.shape[-1]))
    return jnp.einsum("nhwc,dc->nhwd", z, mixing,
                      precision=jax.lax.Precision.HIGHEST)


_SSIM_FILTERS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gaussian": _gaussian_valid,
    "uniform": _box_valid,
    "matlab": _gaussian_replicate_volume,
}


def _adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
    """Averaging matrix of torch.nn.functional.adaptive_avg_pool1d."""
    matrix = np.zeros((out_size, in_size), dtype=np.float32)
    for i in range(out_size):
        start = (i * in_size) // out_size
        end = -((-(i + 1) * in_size) // out_size)  # ceil
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _downsample_short_side(x: jax.Array, short_side: int) -> jax.Array:
    h, w = x.shape[1:3]
    ratio = max(1, round(min(h, w) / short_side))
    if ratio == 1:
        return x
    rows = jnp.asarray(_adaptive_pool_matrix(h, int(h / ratio)))
    cols = jnp.asarray(_adaptive_pool_matrix(w, int(w / ratio)))
    hp = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,nhwc->nowc", rows, x, precision=hp)
    return jnp.einsum("pw,nowc->nopc", cols, x, precision=hp)

