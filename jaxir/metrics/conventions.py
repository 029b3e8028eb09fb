"""How each benchmark is scored, as data, and `evaluate` to apply it.

A `MetricConvention` records what the official evaluation script of a
benchmark does (colour space, border crop, uint8 rounding, SSIM window,
downsampling before SSIM); `source` names that script. Every script also
clamps predictions to [0, 1] before scoring, so `evaluate` always does.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.metrics import image

METRIC_NAMES = ("psnr", "ssim", "mae", "lpips")


@dataclasses.dataclass(frozen=True)
class MetricConvention:
    """Scoring protocol of one benchmark.

    metrics: which metrics are reported, a subset of METRIC_NAMES.
    color: 'rgb' scores the channels as given (grey images stay grey);
      'y' scores MATLAB rgb2ycbcr's luma.
    crop_border: pixels dropped on each side before scoring.
    quantize_uint8: True rounds both images to uint8 levels before every
      metric; a tuple of metric names restricts that to those metrics.
    ssim_kind: 'gaussian' | 'uniform' | 'matlab' (see jaxir.metrics.image).
    ssim_sample_covariance: with ssim_kind='gaussian', normalise the local
      (co)variances by N - 1 instead of N (N = 121 window taps), as skimage's
      structural_similarity(gaussian_weights=True) does unless given
      use_sample_covariance=False. ('uniform' always does; 'matlab' never.)
    round_y: round the Y channel to an integer level, as MATLAB's rgb2ycbcr
      does on uint8 images (only with color='y').
    ssim_downsample: area-pool so the short side is about this many pixels
      before SSIM (DehazeFormer's protocol), or None.
    lpips_net: backbone of the LPIPS metric, 'alex' or 'vgg'.
    source: the official evaluation code (or paper) this convention follows.
    """
    metrics: tuple[str, ...]
    color: str = "rgb"
    crop_border: int = 0
    quantize_uint8: bool | tuple[str, ...] = False
    ssim_kind: str = "gaussian"
    ssim_sample_covariance: bool = False
    round_y: bool = False
    ssim_downsample: int | None = None
    lpips_net: str = "alex"
    source: str = ""

    def __post_init__(self):
        unknown = set(self.metrics) - set(METRIC_NAMES)
        if not self.metrics or unknown:
            raise ValueError(f"metrics must be a non-empty subset of "
                             f"{METRIC_NAMES}, got {self.metrics}")
        if self.color not in image.COLOR_SPACES:
            raise ValueError(f"color must be one of {image.COLOR_SPACES}, "
                             f"got {self.color!r}")
        if self.ssim_kind not in image.SSIM_KINDS:
            raise ValueError(f"ssim_kind must be one of {image.SSIM_KINDS}, "
                             f"got {self.ssim_kind!r}")
        if self.crop_border < 0:
            raise ValueError(f"crop_border must be >= 0, got {self.crop_border}")
        if self.round_y and self.color != "y":
            raise ValueError("round_y only applies with color='y'")
        if not isinstance(self.quantize_uint8, bool):
            bad = set(self.quantize_uint8) - set(self.metrics)
            if bad:
                raise ValueError(f"quantize_uint8 names metrics not in "
                                 f"{self.metrics}: {sorted(bad)}")
        if self.ssim_sample_covariance and (self.ssim_kind != "gaussian"
                                            or self.ssim_downsample):
            raise ValueError("ssim_sample_covariance applies to ssim_kind="
                             "'gaussian' without ssim_downsample ('uniform' "
                             "already uses the sample covariance)")
        if self.lpips_net not in ("alex", "vgg"):
            raise ValueError(f"lpips_net must be 'alex' or 'vgg', "
                             f"got {self.lpips_net!r}")

    def quantizes(self, metric: str) -> bool:
        if isinstance(self.quantize_uint8, bool):
            return self.quantize_uint8
        return metric in self.quantize_uint8


_RESTORMER = "github.com/swz30/Restormer"
_NAFNET_SSIM3D = (
    "MATLAB's ssim() filters an RGB array as a volume (replicate padding, "
    "Gaussian across channels too), as megvii-research/NAFNet "
    "basicsr/metrics/psnr_ssim.py calculate_ssim(ssim3d=True) reproduces")
_DEHAZEFORMER_SSIM = (
    "PSNR = 10 log10(1 / mse) on clamped float RGB; SSIM = pytorch_msssim.ssim "
    "(11x11 Gaussian, sigma 1.5, valid) after F.adaptive_avg_pool2d to short "
    "side ~256 (DehazeFormer's protocol). ConvIR derives the pooled size from "
    "the image padded to a multiple of 32; jaxir uses the unpadded size as "
    "DehazeFormer does")
_DEFOCUS = (
    "float images clamped to [0, 1]: PSNR 10 log10(1 / mse); SSIM "
    "skimage structural_similarity(data_range=1) defaults (7x7 uniform, "
    "sample covariance); MAE mean |x - y|; LPIPS lpips.LPIPS(net='alex') with "
    "normalize=True")
_ALLINONE = (
    "va1shn9v/PromptIR utils/val_utils.py compute_psnr_ssim: clamp to [0, 1], "
    "skimage peak_signal_noise_ratio(data_range=1) and structural_similarity("
    "data_range=1, multichannel) defaults on float RGB")

CONVENTIONS: dict[str, MetricConvention] = {
    # Motion deblurring.
    "gopro": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="matlab",
        source=f"{_RESTORMER} Motion_Deblurring/evaluate_gopro_hide.m: MATLAB "
               f"psnr/ssim on the saved uint8 RGB PNGs. {_NAFNET_SSIM3D}, used "
               "by NAFNet options/test/GoPro/NAFNet-width64.yml"),
    "hide": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="matlab",
        source=f"{_RESTORMER} Motion_Deblurring/evaluate_gopro_hide.m: MATLAB "
               f"psnr/ssim on the saved uint8 RGB PNGs. {_NAFNET_SSIM3D}"),
    "realblur_j": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Motion_Deblurring/evaluate_realblur.py (from "
               "the RealBlur authors): uint8 PNGs as float, skimage SSIM with "
               "gaussian_weights=True, use_sample_covariance=False. The "
               "script first registers the prediction to the target (ECC "
               "homography, image_align) and scores inside the valid mask; "
               "jaxir scores unregistered images"),
    "realblur_r": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Motion_Deblurring/evaluate_realblur.py, as "
               "realblur_j (registration not reproduced)"),
    # Defocus deblurring.
    "dpdd": MetricConvention(
        ("psnr", "ssim", "mae", "lpips"), ssim_kind="uniform",
        source=f"{_RESTORMER} Defocus_Deblurring/"
               f"test_single_image_defocus_deblur.py and utils.py: {_DEFOCUS}"),
    "realdof": MetricConvention(
        ("psnr", "ssim", "mae", "lpips"), ssim_kind="uniform",
        source="TPZZZ/P2IKT eval.py (skimage PSNR data_range=1, "
               "structural_similarity defaults) with the DPDD metric set of "
               f"{_RESTORMER} Defocus_Deblurring/utils.py: {_DEFOCUS}"),
    "lfdof": MetricConvention(
        ("psnr", "ssim", "mae", "lpips"), ssim_kind="uniform",
        source="TPZZZ/P2IKT eval.py with the DPDD metric set of "
               f"{_RESTORMER} Defocus_Deblurring/utils.py: {_DEFOCUS}"),
    # Dehazing (RESIDE SOTS).
    "sots_indoor": MetricConvention(
        ("psnr", "ssim"), ssim_kind="gaussian", ssim_downsample=256,
        source=f"c-yn/ConvIR Dehazing/ITS/eval.py: {_DEHAZEFORMER_SSIM}"),
    "sots_outdoor": MetricConvention(
        ("psnr", "ssim"), ssim_kind="gaussian", ssim_downsample=256,
        source=f"c-yn/ConvIR Dehazing/OTS/eval.py: {_DEHAZEFORMER_SSIM}"),
    # Deraining.
    "rain100l": MetricConvention(
        ("psnr", "ssim"), color="y", quantize_uint8=True, round_y=True,
        ssim_kind="gaussian",
        source=f"{_RESTORMER} Deraining/evaluate_PSNR_SSIM.m (also c-yn/ConvIR "
               "Image_deraining/deraining_test.m): uint8 PNGs, MATLAB "
               "rgb2ycbcr -> uint8 Y, PSNR with peak 255, Wang's SSIM_index "
               "(11x11 Gaussian, valid)"),
    "rain100h": MetricConvention(
        ("psnr", "ssim"), color="y", quantize_uint8=True, round_y=True,
        ssim_kind="gaussian",
        source=f"{_RESTORMER} Deraining/evaluate_PSNR_SSIM.m, as rain100l"),
    # Gaussian denoising (bsd68 is greyscale; 'rgb' scores channels as given).
    "bsd68": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Denoising/evaluate_gaussian_gray_denoising.py "
               "(PSNR of the saved uint8 PNGs) and utils.py calculate_ssim "
               "(11x11 Gaussian, valid, mean over channels)"),
    "cbsd68": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Denoising/evaluate_gaussian_color_denoising.py "
               "(PSNR of the saved uint8 RGB PNGs) and utils.py calculate_ssim"),
    "kodak24": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Denoising/evaluate_gaussian_color_denoising.py "
               "('Kodak') and utils.py calculate_ssim"),
    "urban100": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="gaussian",
        source=f"{_RESTORMER} Denoising/evaluate_gaussian_color_denoising.py "
               "and utils.py calculate_ssim"),
    # Real denoising.
    "sidd": MetricConvention(
        ("psnr", "ssim"), ssim_kind="matlab",
        source=f"{_RESTORMER} Denoising/evaluate_sidd.m: MATLAB psnr/ssim on "
               "the float (single) restored blocks. " + _NAFNET_SSIM3D),
    # Low-light enhancement.
    "lol": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=("ssim",), ssim_kind="gaussian",
        source="caiyuanhao1998/Retinexformer Enhancement/test_from_dataset.py: "
               "PSNR 10 log10(1 / mse) on the clamped float output, SSIM "
               "utils.calculate_ssim (11x11 Gaussian, valid, per-channel mean) "
               "on img_as_ubyte images"),
    # Desnowing.
    "snow100k": MetricConvention(
        ("psnr", "ssim"), ssim_kind="gaussian", ssim_downsample=256,
        source=f"c-yn/ConvIR Image_desnowing/eval.py: {_DEHAZEFORMER_SSIM}"),
    "csd": MetricConvention(
        ("psnr", "ssim"), ssim_kind="gaussian", ssim_downsample=256,
        source=f"c-yn/ConvIR Image_desnowing/eval.py: {_DEHAZEFORMER_SSIM}"),
    # All-in-one restoration.
    "allinone3": MetricConvention(
        ("psnr", "ssim"), ssim_kind="uniform",
        source=f"{_ALLINONE} (3 tasks: denoise, derain, dehaze)"),
    "cdd11": MetricConvention(
        ("psnr", "ssim"), quantize_uint8=True, ssim_kind="uniform",
        source="gy65896/OneRestore img_file/cal_psnr_ssim.py (commit 23a2e6a), the "
               "CDD-11 authors' scoring of every method's saved uint8 PNG results: "
               "cv2.imread(...) / 255 against clear/, skimage peak_signal_noise_ratio"
               "(data_range=1.0) and structural_similarity(win_size=7, channel_axis=-1, "
               "data_range=1.0) (7x7 box window, sample covariance, valid region); "
               "per combination the mean over its images"),
    "allinone5": MetricConvention(
        ("psnr", "ssim", "lpips"), ssim_kind="gaussian",
        ssim_sample_covariance=True, lpips_net="vgg",
        source="eduardzamfir/MoCE-IR src/test.py (commit a1a6e74), the 5-task "
               "protocol's reference: per image (batch 1), prediction clamped "
               "to [0, 1] and scored as float RGB (not rounded); PSNR skimage "
               "peak_signal_noise_ratio(data_range=1); SSIM skimage "
               "structural_similarity(channel_axis=2, gaussian_weights=True, "
               "data_range=1.0) with its defaults sigma 1.5 (truncate 3.5: "
               "11x11 window, border of 5 dropped), K1 0.01, K2 0.03 and "
               "use_sample_covariance=True; LPIPS torchmetrics "
               "LearnedPerceptualImagePatchSimilarity(net_type='vgg', "
               "normalize=True) (LPIPS v0.1 VGG on [0, 1] images)"),
}


def get_convention(convention: str | MetricConvention) -> MetricConvention:
    if isinstance(convention, MetricConvention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown benchmark convention {convention!r}; known: "
                         f"{', '.join(sorted(CONVENTIONS))}")
    return CONVENTIONS[convention]


def evaluate_per_image(
    pred: jax.Array,
    target: jax.Array,
    convention: str | MetricConvention,
    lpips_fn=None,
) -> dict[str, jax.Array]:
    """Per-image scores {metric: (N,)} of NHWC batches under a convention.

    Predictions are clamped to [0, 1] first. lpips_fn: a
    jaxir.metrics.lpips.LPIPS to reuse; built from `lpips_net` when needed.
    jit-able with the convention static.
    """
    conv = get_convention(convention)
    pred = jnp.clip(jnp.asarray(pred, jnp.float32), 0.0, 1.0)
    target = jnp.asarray(target, jnp.float32)
    common = dict(crop_border=conv.crop_border, color=conv.color,
                  round_y=conv.round_y)
    scores = {}
    for metric in conv.metrics:
        quantize = conv.quantizes(metric)
        if metric == "psnr":
            scores[metric] = image.psnr(pred, target, quantize_uint8=quantize,
                                        **common)
        elif metric == "ssim" and conv.ssim_sample_covariance:
            scores[metric] = _gaussian_ssim_sample_covariance(
                pred, target, quantize=quantize, **common)
        elif metric == "ssim":
            scores[metric] = image.ssim(
                pred, target, kind=conv.ssim_kind, quantize_uint8=quantize,
                downsample_to=conv.ssim_downsample, **common)
        elif metric == "mae":
            scores[metric] = image.mae(pred, target, quantize_uint8=quantize,
                                       **common)
        elif metric == "lpips":
            if lpips_fn is None:
                from jaxir.metrics.lpips import LPIPS
                lpips_fn = LPIPS(conv.lpips_net)
            # LPIPS sees RGB images: only quantisation and cropping apply.
            x, y = (image.prepare(v, crop_border=conv.crop_border,
                                  quantize=quantize) for v in (pred, target))
            scores[metric] = lpips_fn(x, y)
    return scores


def _gaussian_ssim_sample_covariance(pred, target, *, quantize, **prepare_kw):
    """skimage structural_similarity(gaussian_weights=True) at its default
    use_sample_covariance=True, per image: 11x11 Gaussian (sigma 1.5), valid
    region, (co)variances times n/(n-1) with n = 121."""
    x, y = (image.prepare(v, quantize=quantize, **prepare_kw)
            for v in (pred, target))
    taps = 11
    if min(x.shape[1:3]) < taps:
        raise ValueError(f"SSIM needs images of at least {taps}x{taps} (after "
                         f"cropping), got {x.shape[1]}x{x.shape[2]}")
    # Scaling every (co)variance by f gives the same SSIM map as dividing C2
    # by f, so dm-pix's population-statistics Gaussian SSIM is reused.
    n = taps * taps
    return dm_pix.ssim(x, y, max_val=1.0, filter_size=taps, filter_sigma=1.5,
                       k2=0.03 / math.sqrt(n / (n - 1)))


def evaluate(
    pred: jax.Array,
    target: jax.Array,
    convention: str | MetricConvention,
    lpips_fn=None,
) -> dict[str, float]:
    """Batch-mean scores {metric: float} under a benchmark convention."""
    per_image = evaluate_per_image(pred, target, convention, lpips_fn)
    return {name: float(np.mean(np.asarray(values, np.float64)))
            for name, values in per_image.items()}


def describe(conventions: Mapping[str, MetricConvention] = CONVENTIONS) -> str:
    """One line per benchmark, for logs and the CLI."""
    lines = []
    for name, c in conventions.items():
        lines.append(
            f"{name}: {','.join(c.metrics)} color={c.color} "
            f"crop={c.crop_border} uint8={c.quantize_uint8} ssim={c.ssim_kind}"
            + (" (sample covariance)" if c.ssim_sample_covariance else "")
            + (f" ssim_downsample={c.ssim_downsample}" if c.ssim_downsample
               else "") + (" round_y" if c.round_y else ""))
    return "\n".join(lines)
