"""`jaxir eval --benchmark NAME`: a model scored under a paper's evaluation protocol.

`BENCHMARKS` holds each protocol as data: the test set(s) (TFDS builders of
`data_pipelines.builders` and their split), how the model input is formed
(the paired degraded image, the two dual-pixel views as 6 channels, or
Gaussian noise synthesised with fixed per-image seeds), the preprocessing the
official test loader applies (PromptIR's centre crop to a multiple of 16 and
uint8 noisy inputs), the metric convention (`jaxir.metrics.conventions`) and
the numbers published for the models jaxir ports, with their source.

    from jaxir import evaluation
    result = evaluation.evaluate_benchmark("gopro", predict_fn, data_dir="~/tensorflow_datasets")
    print(result.to_markdown(paper=True))

Images run one at a time, in the dataset's fixed order, at full size: the
input is reflect-padded at the bottom/right to the model's multiple and the
output cropped back before scoring.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jaxir.metrics.conventions import CONVENTIONS, MetricConvention

# CDD-11's combinations (data_pipelines.builders.composite.CDD11_COMBINATIONS; kept here so the table
# imports no TFDS code).
CDD11_COMBINATIONS = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
                      "low_haze_rain", "low_haze_snow")

DEFAULT_DATA_DIR = "~/tensorflow_datasets"
# Where datasets built from an official folder passed as --data-dir are kept.
CACHE_ENV = "JAXIR_DATA_CACHE"
DEFAULT_CACHE_DIR = "~/.cache/jaxir/tfds"

INPUT_KINDS = ("paired", "dual_pixel", "synthetic")
INPUT_QUANTIZATIONS = (None, "floor_uint8")
_METRIC_LABELS = {"psnr": "PSNR", "ssim": "SSIM", "mae": "MAE", "lpips": "LPIPS", "niqe": "NIQE", "fid": "FID",
                  "kid": "KID"}
_METRIC_DIGITS = {"psnr": 2, "ssim": 4, "mae": 4, "lpips": 4, "niqe": 4, "fid": 2, "kid": 4}
# Beyond a convention's paired metrics: NIQE (no reference, per image) and FID/KID (per set, restorations
# against targets through pytorch-fid's Inception), the perceptual columns of diffusion papers (DvSR's table).
EXTRA_METRICS = ("niqe", "fid", "kid")
ALL_METRICS = ("psnr", "ssim", "mae", "lpips") + EXTRA_METRICS

# One restoration per input, or several named ones (a stochastic model's sample and K-sample average).
PredictFn = Callable[[np.ndarray], Any]
# Called per image with (set name, image name, model input, restoration, target, scores).
ImageHook = Callable[[str, str, np.ndarray, np.ndarray, np.ndarray, Mapping[str, float]], None]

# (TFDS builder, split) -> images in the official test set, as the protocols state it. A set with
# another count (a partial or wrong download) is scored but marked not comparable with the papers.
TEST_SET_SIZES: dict[tuple[str, str], int] = {
    ("gopro", "test"): 1111, ("hide", "test"): 2025, ("realblur_j", "test"): 980, ("realblur_r", "test"): 980,
    ("dpdd", "test"): 76, ("realdof", "test"): 50, ("sots_indoor", "test"): 500, ("sots_outdoor", "test"): 500,
    ("rain100l", "test"): 100, ("rain100h", "test"): 100, ("bsd68", "test"): 68, ("cbsd68", "test"): 68,
    ("kodak24", "test"): 24, ("urban100", "test"): 100, ("sidd", "validation"): 1280, ("lol", "test"): 15,
}


# ----------------------------------------------------------------------------
# The benchmark table.


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """One scored row of a benchmark: a test split and how the model input is made.

    name: row label ('gopro', 'sigma25', 'derain').
    dataset: TFDS builder name in data_pipelines.builders (may be 'name/config').
    split: TFDS split.
    input: 'paired' (the record's degraded 'input'), 'dual_pixel' (left and
      right views concatenated to 6 channels) or 'synthetic' (clean 'target'
      degraded on device by `degradation` with fixed per-image seeds).
    degradation: jaxir.degradations spec for 'synthetic' inputs.
    input_quantization: 'floor_uint8' stores the synthetic input as uint8 by
      truncation, as `np.clip(x, 0, 255).astype(np.uint8)` in PromptIR's loader.
    crop_multiple: centre-crop input and target to a multiple of this first
      (PromptIR's crop_img(base=16)); 1 keeps the full image.
    grey: score one-channel images (the greyscale denoising benchmark).
    seed: base of the per-image noise seeds.
    """
    name: str
    dataset: str
    split: str = "test"
    input: str = "paired"
    degradation: tuple[Mapping[str, Any], ...] = ()
    input_quantization: str | None = None
    crop_multiple: int = 1
    grey: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.input not in INPUT_KINDS:
            raise ValueError(f"EvalSet {self.name!r}: input must be one of {INPUT_KINDS}, got {self.input!r}")
        if (self.input == "synthetic") != bool(self.degradation):
            raise ValueError(f"EvalSet {self.name!r}: a degradation spec goes with input='synthetic' only")
        if self.input_quantization not in INPUT_QUANTIZATIONS:
            raise ValueError(f"EvalSet {self.name!r}: input_quantization must be one of "
                             f"{INPUT_QUANTIZATIONS}, got {self.input_quantization!r}")
        if self.crop_multiple < 1:
            raise ValueError(f"EvalSet {self.name!r}: crop_multiple must be >= 1")

    @property
    def expected_count(self) -> int | None:
        """Images in the official test set (None where not recorded)."""
        return TEST_SET_SIZES.get((self.dataset, self.split))

    @property
    def channels(self) -> int:
        """Channels of the model input."""
        return 6 if self.input == "dual_pixel" else 1 if self.grey else 3

    @property
    def features(self) -> tuple[str, ...]:
        """Record features read from the dataset."""
        views = {"paired": ("input",), "dual_pixel": ("input_left", "input_right"), "synthetic": ()}
        return views[self.input] + ("target",)

    def describe_input(self) -> str:
        if self.input == "paired":
            text = "degraded image"
        elif self.input == "dual_pixel":
            text = "dual-pixel L+R (6 ch)"
        else:
            text = ", ".join(_describe_op(op) for op in self.degradation)
            text += f", seed {self.seed}"
            if self.input_quantization:
                text += ", uint8 (truncated)"
        if self.grey:
            text += ", grey"
        return text


def _describe_op(op: Mapping[str, Any]) -> str:
    params = {k: v for k, v in op.items() if k != "name"}
    if op["name"] == "gaussian_noise" and isinstance(params.get("sigma"), float):
        sigma = f"σ={params.pop('sigma') * 255:g}/255"
        rest = "".join(f", {k}={v}" for k, v in params.items())
        return f"Gaussian noise {sigma}{rest}"
    return op["name"] + "".join(f" {k}={v}" for k, v in params.items())


@dataclasses.dataclass(frozen=True)
class PaperResult:
    """Published scores of one model variant, and where they are printed.

    model: registry name; attributes: values of the built module's fields that
    identify the variant (e.g. {'width': 64}); scores: set name -> {metric: value}.
    """
    label: str
    model: str
    attributes: Mapping[str, Any]
    scores: Mapping[str, Mapping[str, float]]
    source: str

    def matches(self, model_name: str, module: Any) -> bool:
        if model_name != self.model:
            return False
        return all(_plain(getattr(module, key, None)) == _plain(value) for key, value in self.attributes.items())


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A paper's evaluation protocol: test sets, metric convention, published numbers.

    average: also report the mean over the sets (the all-in-one protocols).
    protocol: the official test code whose data handling this follows.
    """
    name: str
    title: str
    sets: tuple[EvalSet, ...]
    convention: str
    protocol: str
    average: bool = False
    paper: tuple[PaperResult, ...] = ()

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"benchmark {self.name!r}: unknown convention {self.convention!r}")
        names = [s.name for s in self.sets]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"benchmark {self.name!r}: set names must be unique and non-empty, got {names}")
        for result in self.paper:
            unknown = set(result.scores) - set(names)
            if unknown:
                raise ValueError(f"benchmark {self.name!r}: paper result {result.label!r} names "
                                 f"unknown sets {sorted(unknown)}")

    @property
    def metric_convention(self) -> MetricConvention:
        return CONVENTIONS[self.convention]

    def select(self, names: Sequence[str] | None) -> tuple[EvalSet, ...]:
        if not names:
            return self.sets
        by_name = {s.name: s for s in self.sets}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"benchmark {self.name!r} has no set(s) {unknown}; its sets: {sorted(by_name)}")
        return tuple(by_name[n] for n in names)


def _noise(sigma_255: int, clip: bool = False) -> tuple[dict[str, Any], ...]:
    op: dict[str, Any] = {"name": "gaussian_noise", "sigma": sigma_255 / 255.0}
    if clip:
        op["clip"] = True
    return (op,)


def _denoise_sets(dataset: str, grey: bool = False) -> tuple[EvalSet, ...]:
    return tuple(EvalSet(f"sigma{s}", dataset, "test", "synthetic", _noise(s), grey=grey) for s in (15, 25, 50))


def _promptir_noise(name: str, sigma: int) -> EvalSet:
    return EvalSet(name, "cbsd68", "test", "synthetic", _noise(sigma, clip=True),
                   input_quantization="floor_uint8", crop_multiple=16)


def _promptir_paired(name: str, dataset: str) -> EvalSet:
    return EvalSet(name, dataset, "test", crop_multiple=16)


_NAFNET = ("megvii-research/NAFNet readme.md, table 'Results and Pre-trained Models' (released weights; "
           "commit 2b4af71)")
_NAFNET_ABSTRACT = "megvii-research/NAFNet readme.md abstract (paper number, PSNR only; commit 2b4af71)"
_MIMO = "chosj95/MIMO-UNet README.md, section 'Performance' (commit 5c58013)"
_CONVIR = ("c-yn/ConvIR README.md, table 'Results' (italic = ConvIR-S, bold = ConvIR-B, underlined = "
           "ConvIR-L; commit 05dcbff)")
_NAFNET_GOPRO_ARCH = {"enc_blk_nums": (1, 1, 1, 28), "middle_blk_num": 1, "dec_blk_nums": (1, 1, 1, 1)}
_NAFNET_SIDD_ARCH = {"enc_blk_nums": (2, 2, 4, 8), "middle_blk_num": 12, "dec_blk_nums": (2, 2, 2, 2)}
_CONVIR_SIZES = {"S": 4, "B": 8, "L": 16}


def _convir(size: str, scores: Mapping[str, Mapping[str, float]]) -> PaperResult:
    return PaperResult(f"ConvIR-{size}", "convir", {"num_res": _CONVIR_SIZES[size]}, scores, _CONVIR)


def _nafnet_results(set_name: str, arch: dict, table: dict) -> tuple[PaperResult, ...]:
    results = []
    for (model, width, dw_expand), (psnr, ssim) in table.items():
        attributes = {"width": width, **arch}
        if model == "nafnet_baseline":
            attributes["dw_expand"] = dw_expand
        label = f"{'Baseline' if model == 'nafnet_baseline' else 'NAFNet'}-width{width}"
        results.append(PaperResult(label, model, attributes, {set_name: {"psnr": psnr, "ssim": ssim}}, _NAFNET))
    return tuple(results)


_RESTORMER = "swz30/Restormer"
_PROMPTIR = ("va1shn9v/PromptIR test.py and utils/dataset_utils.py: inputs and targets centre-cropped to a "
             "multiple of 16 (crop_img); noisy input = clip(clean + N(0, sigma^2), 0, 255).astype(uint8) "
             "on colour BSD68 (CBSD68, as the authors state in PromptIR issue #4); Rain100L; SOTS outdoor")

_CDD11 = ("gy65896/OneRestore img_file/cal_psnr_ssim.py (commit 23a2e6a): each combination's full-size test "
          "images (test/<combination>/) scored against test/clear/, mean per combination, and the 11 means "
          "averaged (the README's single CDD-11 PSNR/SSIM); eduardzamfir/MoCE-IR src/test.py "
          "(--trainset CDD11_<combination>) reads the same full-size, uncropped pairs but scores them as its "
          "5-task protocol does (float, Gaussian SSIM; convention allinone5)")

_BENCHMARK_LIST = (
    Benchmark(
        "gopro", "GoPro motion deblurring (1111 test pairs)", (EvalSet("gopro", "gopro"),), "gopro",
        f"{_RESTORMER} Motion_Deblurring/test.py (full frames, reflect padding to the model multiple)",
        paper=_nafnet_results("gopro", _NAFNET_GOPRO_ARCH, {
            ("nafnet", 32, 2): (32.8705, 0.9606), ("nafnet", 64, 2): (33.7103, 0.9668),
            ("nafnet_baseline", 32, 1): (32.4799, 0.9575), ("nafnet_baseline", 64, 2): (33.3960, 0.9649),
        }) + (
            PaperResult("NAFNet-width64 (paper)", "nafnet", {"width": 64, **_NAFNET_GOPRO_ARCH},
                        {"gopro": {"psnr": 33.69}}, _NAFNET_ABSTRACT),
            PaperResult("MIMO-UNet", "mimo_unet", {}, {"gopro": {"psnr": 31.73, "ssim": 0.951}}, _MIMO),
            PaperResult("MIMO-UNet+", "mimo_unet_plus", {}, {"gopro": {"psnr": 32.45, "ssim": 0.957}}, _MIMO),
            _convir("L", {"gopro": {"psnr": 33.28, "ssim": 0.963}}),
        )),
    Benchmark("hide", "HIDE motion deblurring (2025 test pairs)", (EvalSet("hide", "hide"),), "hide",
              f"{_RESTORMER} Motion_Deblurring/test.py"),
    Benchmark("realblur_j", "RealBlur-J motion deblurring (980 test pairs)", (EvalSet("realblur_j", "realblur_j"),),
              "realblur_j", f"{_RESTORMER} Motion_Deblurring/test.py (no ECC registration before scoring)"),
    Benchmark("realblur_r", "RealBlur-R motion deblurring (980 test pairs)", (EvalSet("realblur_r", "realblur_r"),),
              "realblur_r", f"{_RESTORMER} Motion_Deblurring/test.py (no ECC registration before scoring)"),
    Benchmark(
        "dpdd", "DPDD single-image defocus deblurring (76 test scenes, centre view)",
        (EvalSet("dpdd", "dpdd"),), "dpdd",
        f"{_RESTORMER} Defocus_Deblurring/test_single_image_defocus_deblur.py (inputC; 16-bit files read "
        "as float at the bit depth the dpdd builder stores)",
        paper=(_convir("S", {"dpdd": {"psnr": 26.06, "ssim": 0.810}}),
               _convir("B", {"dpdd": {"psnr": 26.16, "ssim": 0.814}}),
               _convir("L", {"dpdd": {"psnr": 26.36, "ssim": 0.820}}))),
    Benchmark(
        "dpdd_dual", "DPDD dual-pixel defocus deblurring (76 test scenes, L+R views)",
        (EvalSet("dpdd", "dpdd", input="dual_pixel"),), "dpdd",
        f"{_RESTORMER} Defocus_Deblurring/test_dual_pixel_defocus_deblur.py (inputL, inputR concatenated; "
        "16-bit files read as float at the bit depth the dpdd builder stores)"),
    Benchmark("realdof", "RealDOF defocus deblurring (50 test pairs)", (EvalSet("realdof", "realdof"),),
              "realdof", "TPZZZ/P2IKT eval.py"),
    Benchmark("lfdof", "LFDOF defocus deblurring (test_data)", (EvalSet("lfdof", "lfdof"),), "lfdof",
              "TPZZZ/P2IKT eval.py"),
    Benchmark(
        "sots_indoor", "RESIDE SOTS indoor dehazing (500 pairs)", (EvalSet("sots_indoor", "sots_indoor"),),
        "sots_indoor", "c-yn/ConvIR Dehazing/ITS/eval.py (full images, padded to a multiple of 32)",
        paper=(_convir("S", {"sots_indoor": {"psnr": 41.53, "ssim": 0.996}}),
               _convir("B", {"sots_indoor": {"psnr": 42.72, "ssim": 0.997}}))),
    Benchmark(
        "sots_outdoor", "RESIDE SOTS outdoor dehazing (500 pairs)", (EvalSet("sots_outdoor", "sots_outdoor"),),
        "sots_outdoor", "c-yn/ConvIR Dehazing/OTS/eval.py (full images, padded to a multiple of 32)",
        paper=(_convir("S", {"sots_outdoor": {"psnr": 37.95, "ssim": 0.994}}),
               _convir("B", {"sots_outdoor": {"psnr": 39.42, "ssim": 0.996}}))),
    Benchmark("rain100l", "Rain100L deraining (100 test pairs)", (EvalSet("rain100l", "rain100l"),), "rain100l",
              f"{_RESTORMER} Deraining/test.py"),
    Benchmark("rain100h", "Rain100H deraining (100 test pairs)", (EvalSet("rain100h", "rain100h"),), "rain100h",
              f"{_RESTORMER} Deraining/test.py"),
    Benchmark("csd", "CSD desnowing (test split)", (EvalSet("csd", "csd"),), "csd",
              "c-yn/ConvIR Image_desnowing/eval.py",
              paper=(_convir("S", {"csd": {"psnr": 38.43, "ssim": 0.99}}),
                     _convir("B", {"csd": {"psnr": 39.10, "ssim": 0.99}}))),
    Benchmark(
        "bsd68", "BSD68 greyscale Gaussian denoising (σ 15/25/50, one-channel model)",
        _denoise_sets("bsd68", grey=True), "bsd68",
        f"{_RESTORMER} Denoising/test_gaussian_gray_denoising.py: float image + N(0, (σ/255)^2), no clipping; "
        "jaxir draws the noise from per-image seeds (numpy's seed-0 stream is not reproduced)"),
    Benchmark(
        "cbsd68", "CBSD68 colour Gaussian denoising (σ 15/25/50)", _denoise_sets("cbsd68"), "cbsd68",
        f"{_RESTORMER} Denoising/test_gaussian_color_denoising.py: float image + N(0, (σ/255)^2), no clipping; "
        "per-image seeds"),
    Benchmark(
        "kodak24", "Kodak24 colour Gaussian denoising (σ 15/25/50)", _denoise_sets("kodak24"), "kodak24",
        f"{_RESTORMER} Denoising/test_gaussian_color_denoising.py (as cbsd68)"),
    Benchmark(
        "urban100", "Urban100 colour Gaussian denoising (σ 15/25/50)", _denoise_sets("urban100"), "urban100",
        f"{_RESTORMER} Denoising/test_gaussian_color_denoising.py (as cbsd68)"),
    Benchmark(
        "sidd", "SIDD sRGB real denoising (1280 validation blocks of 256x256)",
        (EvalSet("sidd", "sidd", "validation"),), "sidd",
        f"{_RESTORMER} Denoising/test_real_denoising_sidd.py (ValidationNoisyBlocksSrgb.mat)",
        paper=_nafnet_results("sidd", _NAFNET_SIDD_ARCH, {
            ("nafnet", 32, 2): (39.9672, 0.9599), ("nafnet", 64, 2): (40.3045, 0.9614),
            ("nafnet_baseline", 32, 1): (39.8857, 0.9596), ("nafnet_baseline", 64, 2): (40.2970, 0.9617),
        }) + (PaperResult("NAFNet-width64 (paper)", "nafnet", {"width": 64, **_NAFNET_SIDD_ARCH},
                          {"sidd": {"psnr": 40.30}}, _NAFNET_ABSTRACT),)),
    Benchmark("lol", "LOL v1 low-light enhancement (15 eval pairs)", (EvalSet("lol", "lol"),), "lol",
              "caiyuanhao1998/Retinexformer Enhancement/test_from_dataset.py"),
    Benchmark(
        "allinone3", "All-in-one, 3 tasks: denoise σ15/25/50 (CBSD68), derain (Rain100L), dehaze (SOTS outdoor)",
        (_promptir_noise("denoise_15", 15), _promptir_noise("denoise_25", 25), _promptir_noise("denoise_50", 50),
         _promptir_paired("derain", "rain100l"), _promptir_paired("dehaze", "sots_outdoor")),
        "allinone3", _PROMPTIR, average=True),
    Benchmark(
        "allinone5", "All-in-one, 5 tasks: denoise σ25 (CBSD68), derain, dehaze, deblur (GoPro), low light (LOL)",
        (_promptir_noise("denoise_25", 25), _promptir_paired("derain", "rain100l"),
         _promptir_paired("dehaze", "sots_outdoor"), _promptir_paired("deblur", "gopro"),
         _promptir_paired("lowlight", "lol")),
        "allinone5",
        "eduardzamfir/MoCE-IR src/test.py and src/data/dataset_utils.py IRBenchmarks (PromptIR's loader: "
        "crop_img base 16, uint8 noisy input; GoPro test, LOLv1 test)", average=True),
    Benchmark(
        "cdd11", "CDD-11 composite degradations: low light, haze, rain, snow and 7 combinations (OneRestore)",
        tuple(EvalSet(c, "cdd11", f"test_{c}") for c in CDD11_COMBINATIONS), "cdd11", _CDD11, average=True),
)

BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _BENCHMARK_LIST}


def get_benchmark(spec: str) -> tuple[Benchmark, tuple[EvalSet, ...]]:
    """'NAME' or 'NAME:SET[,SET...]' -> (benchmark, the sets to run)."""
    name, _, sets = spec.partition(":")
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid benchmarks: {', '.join(BENCHMARKS)}")
    benchmark = BENCHMARKS[name]
    return benchmark, benchmark.select([s for s in sets.split(",") if s])


# ----------------------------------------------------------------------------
# Conventions table (docs/conventions.md).


def _quantize_text(convention: MetricConvention) -> str:
    if convention.quantize_uint8 is True:
        text = "uint8"
    elif convention.quantize_uint8:
        text = "uint8 for " + "/".join(_METRIC_LABELS[m] for m in convention.quantize_uint8)
    else:
        text = "float"
    return text + (", Y rounded" if convention.round_y else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def conventions_markdown(benchmarks: Mapping[str, Benchmark] | None = None) -> str:
    """Markdown table of every benchmark's data, inputs and scoring protocol."""
    benchmarks = BENCHMARKS if benchmarks is None else benchmarks
    lines = [
        "| benchmark | data (builder:split) | model input | metrics | colour | crop | rounding | SSIM | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for benchmark in benchmarks.values():
        c = benchmark.metric_convention
        data = "; ".join(f"{s.name}: {s.dataset}:{s.split}" if s.name != s.dataset else f"{s.dataset}:{s.split}"
                         for s in benchmark.sets)
        inputs = "; ".join(dict.fromkeys(s.describe_input() for s in benchmark.sets))
        crops = sorted({s.crop_multiple for s in benchmark.sets} - {1})
        crop = f"{c.crop_border} px border" if c.crop_border else "none"
        if crops:
            crop = f"centre crop to ×{crops[0]}; " + ("scored: " + crop if crop != "none" else "no border crop")
        ssim = c.ssim_kind + (f", pooled to short side {c.ssim_downsample}" if c.ssim_downsample else "")
        metrics = ", ".join(_METRIC_LABELS[m] for m in c.metrics)
        if "lpips" in c.metrics:
            metrics += f" ({c.lpips_net})"
        colour = {"rgb": "RGB (channels as given)", "y": "Y (BT.601)"}[c.color]
        average = " Average over the sets reported." if benchmark.average else ""
        source = f"Data: {benchmark.protocol}.{average} Metrics: {c.source}"
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"`{benchmark.name}`", data, inputs, metrics, colour, crop, _quantize_text(c), ssim, source)) + " |")
    return "\n".join(lines) + "\n"


def write_conventions_doc(path: str | os.PathLike = "docs/conventions.md") -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("## Benchmark protocols\n\n"
              "Generated by `jaxir.evaluation.conventions_markdown()` from `jaxir.evaluation.BENCHMARKS` and "
              "`jaxir.metrics.conventions.CONVENTIONS`; run a row with "
              "`jaxir eval --benchmark NAME[:SET,...] --config CFG --checkpoint W.msgpack [--data-dir D] "
              "[--paper]`. Predictions are clamped to [0, 1] before scoring; inputs are reflect-padded to the "
              "model's multiple and outputs cropped back.\n\n")
    path.write_text(header + conventions_markdown())
    return path


# ----------------------------------------------------------------------------
# Data.


class _EvalView:
    """The features a set reads from a source, centre-cropped and made grey as its protocol says."""

    def __init__(self, source: Any, eval_set: EvalSet):
        self._source, self._set = source, eval_set

    def __len__(self) -> int:
        return len(self._source)

    def _prepare(self, image: np.ndarray, name: str) -> np.ndarray:
        image = np.asarray(image)
        multiple = self._set.crop_multiple
        if multiple > 1:
            h, w = image.shape[:2]
            keep_h, keep_w = h - h % multiple, w - w % multiple
            if keep_h == 0 or keep_w == 0:
                raise ValueError(f"{self._set.name}: image {name!r} ({h}x{w}) is smaller than the crop multiple "
                                 f"{multiple}")
            top, left = (h % multiple) // 2, (w % multiple) // 2
            image = image[top:top + keep_h, left:left + keep_w]
        if self._set.grey:
            image = image[..., :1]
        return image

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self._source[index]
        name = raw.get("name", str(index))
        name = name.decode("utf-8") if isinstance(name, bytes) else str(name)
        missing = [key for key in self._set.features if key not in raw]
        if missing:
            raise ValueError(f"{self._set.name}: record {name!r} has no {missing} (it has {sorted(raw)})")
        record = {key: self._prepare(raw[key], name) for key in self._set.features}
        record["name"] = name
        return record

    def __repr__(self) -> str:
        return f"_EvalView({self._source!r}, set={self._set.name!r})"


def _cache_root(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    return pathlib.Path(cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR).expanduser()


def resolve_data_dir(dataset: str, data_dir: str | os.PathLike | None,
                     cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The TFDS data dir holding `dataset`, building it first when `data_dir` is an official folder.

    `data_dir` is a TFDS data dir in which the dataset is built, or a folder
    holding the official files (any layout its builder recognises); those are
    built once into `cache_dir/<hash of the folder path>` (default $JAXIR_DATA_CACHE
    or ~/.cache/jaxir/tfds) and reused. None means ~/tensorflow_datasets.
    """
    from data_pipelines import builders

    explicit = data_dir is not None
    root = pathlib.Path(data_dir if explicit else DEFAULT_DATA_DIR).expanduser()
    if not root.is_dir():
        if explicit:
            raise FileNotFoundError(f"--data-dir {root} does not exist")
        raise FileNotFoundError(f"dataset {dataset!r}: no --data-dir given and the default TFDS data dir "
                                f"{root} does not exist; pass --data-dir (a TFDS data dir or the official "
                                f"dataset folder)")
    if builders.builder(dataset, root).is_prepared():
        return root
    if not explicit:
        raise FileNotFoundError(f"dataset {dataset!r} is not built in the default TFDS data dir {root}; pass "
                                f"--data-dir (a TFDS data dir holding it, or the official dataset folder)")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    cache = _cache_root(cache_dir) / key
    if not builders.builder(dataset, cache).is_prepared():
        print(f"{dataset}: not a built TFDS dataset in {root}; building it from the official files there "
              f"into {cache}", file=sys.stderr)
        try:
            builders.build(dataset, root, cache)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"dataset {dataset!r} is neither built in TFDS data dir {root} nor found there as official "
                f"files: {err}") from None
    return cache


def open_eval_set(eval_set: EvalSet, data_dir: str | os.PathLike | None,
                  cache_dir: str | os.PathLike | None = None) -> _EvalView:
    """The random-access records of one set (see `resolve_data_dir` for `data_dir`)."""
    from data_pipelines.sources import TfdsSource

    tfds_dir = resolve_data_dir(eval_set.dataset, data_dir, cache_dir)
    features = {key: key for key in eval_set.features + ("name",)}
    return _EvalView(TfdsSource(eval_set.dataset, eval_set.split, tfds_dir, features=features), eval_set)


# ----------------------------------------------------------------------------
# Running.


@dataclasses.dataclass
class SetResult:
    name: str
    dataset: str
    split: str
    count: int
    means: dict[str, float]
    per_image: list[dict[str, Any]]
    expected: int | None = None

    @property
    def comparable(self) -> bool:
        """Whether the set held the protocol's number of images (so the paper's numbers apply)."""
        return self.expected is None or self.count == self.expected

    def count_warning(self) -> str:
        if self.comparable:
            return ""
        return (f"{self.name}: {self.count} test images in {self.dataset}:{self.split}, but the protocol has "
                f"{self.expected} (a partial or wrong download?): not comparable with the paper")


@dataclasses.dataclass
class BenchmarkResult:
    benchmark: Benchmark
    sets: list[SetResult]
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    paper: tuple[PaperResult, ...] = ()
    metric_names: tuple[str, ...] = ()  # the requested metrics (default: the convention's)

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.metric_names or self.benchmark.metric_convention.metrics

    @property
    def comparable(self) -> bool:
        return all(s.comparable for s in self.sets)

    @property
    def average(self) -> dict[str, float] | None:
        """Mean over the sets (of their per-image means), for protocols that report it."""
        if not self.benchmark.average or not self.sets:
            return None
        return {m: float(np.mean([s.means[m] for s in self.sets])) for m in self.metrics}

    def to_json(self) -> dict[str, Any]:
        b = self.benchmark
        return _json_safe({
            "benchmark": b.name,
            "title": b.title,
            "convention": b.convention,
            "protocol": b.protocol,
            "model": self.model,
            "sets": [{"name": s.name, "dataset": s.dataset, "split": s.split, "images": s.count,
                      "expected_images": s.expected, "comparable": s.comparable,
                      "metrics": s.means, "per_image": s.per_image} for s in self.sets],
            "comparable": self.comparable,
            "average": self.average,
            "paper": [{"label": p.label, "model": p.model, "scores": p.scores, "source": p.source}
                      for p in self.paper],
        })

    def to_markdown(self, paper: bool = False) -> str:
        b = self.benchmark
        lines = [f"## {b.name}: {b.title}", ""]
        if self.model:
            kwargs = json.dumps(self.model.get("kwargs", {}), sort_keys=True)
            lines.append(f"Model: `{self.model.get('name')}` {kwargs}"
                         + (f", weights `{self.model['weights']}`" if self.model.get("weights") else ""))
        lines += [f"Convention: `{b.convention}`; protocol: {b.protocol}.", ""]
        warnings = [s.count_warning() for s in self.sets if not s.comparable]
        if warnings:
            lines += [f"**Warning** — {w}." for w in warnings] + [""]
        shown = self.paper if paper else ()
        header = ["set", "data", "images"] + [_METRIC_LABELS[m] for m in self.metrics]
        for result in shown:
            header += [f"{result.label} {_METRIC_LABELS[m]}" for m in self.metrics]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for s in self.sets:
            row = [s.name if s.comparable else f"{s.name} (not comparable)", f"{s.dataset}:{s.split}",
                   _count_cell(s)] + [_fmt(m, s.means[m]) for m in self.metrics]
            row += [_fmt(m, r.scores.get(s.name, {}).get(m)) for r in shown for m in self.metrics]
            lines.append("| " + " | ".join(row) + " |")
        average = self.average
        if average is not None:
            row = ["average" if self.comparable else "average (not comparable)", "",
                   str(sum(s.count for s in self.sets))] + [_fmt(m, average[m]) for m in self.metrics]
            row += [_fmt(m, _paper_average(r, self.sets, m)) for r in shown for m in self.metrics]
            lines.append("| " + " | ".join(row) + " |")
        if paper:
            lines.append("")
            if shown:
                lines += [f"- {r.label}: {r.source}" for r in shown]
            else:
                recorded = ", ".join(r.label for r in b.paper) or "none"
                lines.append(f"No published numbers are recorded for this model on `{b.name}` "
                             f"(recorded: {recorded}).")
        return "\n".join(lines) + "\n"


def _count_cell(s: SetResult) -> str:
    return str(s.count) if s.comparable else f"{s.count} of {s.expected}"


def _paper_average(result: PaperResult, sets: Sequence[SetResult], metric: str) -> float | None:
    values = [result.scores.get(s.name, {}).get(metric) for s in sets]
    return None if any(v is None for v in values) else float(np.mean(values))


def _fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "–"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{_METRIC_DIGITS[metric]}f}"


def _json_safe(value: Any) -> Any:
    """Non-finite floats as the strings 'inf', '-inf', 'nan' (JSON has no such numbers)."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _quantize_input(x, mode: str | None):
    import jax.numpy as jnp

    if mode == "floor_uint8":
        return jnp.floor(jnp.clip(x, 0.0, 1.0) * 255.0) / 255.0
    return x


def _batches(source: Any, eval_set: EvalSet, pad_multiple: int):
    from data_pipelines.pipelines import EvalBatches

    # One image per batch in source order; grouping by size (make_eval_dataset)
    # would decode every image once more just to read its size.
    return EvalBatches(source, [[i] for i in range(len(source))], pad_multiple=pad_multiple,
                       seed=eval_set.seed, dual_pixel=eval_set.input == "dual_pixel",
                       num_threads=2, prefetch_buffer_size=2)


@dataclasses.dataclass
class PerceptualMetrics:
    """What the metrics beyond a convention's paired ones need: NIQE's parameters
    (`jaxir.metrics.niqe.load_params`) and the FID Inception (`load_fid_inception`)."""
    niqe_params: Mapping[str, np.ndarray] | None = None
    inception: tuple[Any, Any] | None = None
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    _extract: Any = dataclasses.field(default=None, repr=False)

    def features(self, images: np.ndarray) -> np.ndarray:
        if self._extract is None:
            from jaxir.metrics.fid import feature_extractor
            self._extract = feature_extractor(*self.inception)
        return self._extract(images)


def check_metrics(metrics: Sequence[str], perceptual: PerceptualMetrics | None) -> tuple[str, ...]:
    metrics = tuple(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(ALL_METRICS)}")
    if "niqe" in metrics and (perceptual is None or perceptual.niqe_params is None):
        raise ValueError("NIQE needs its parameters (jaxir.metrics.niqe.load_params)")
    if {"fid", "kid"} & set(metrics) and (perceptual is None or perceptual.inception is None):
        raise ValueError("FID/KID need pytorch-fid's Inception weights: --inception PATH "
                         "(pt_inception-2015-12-05-6726825d.pth or its converted .msgpack)")
    return metrics


def _paired_convention(convention: MetricConvention, metrics: Sequence[str]) -> MetricConvention | None:
    """The convention restricted to the requested paired metrics (None when none is requested)."""
    paired = tuple(m for m in metrics if m not in EXTRA_METRICS)
    if not paired:
        return None
    quantize = convention.quantize_uint8
    if not isinstance(quantize, bool):
        quantize = tuple(m for m in quantize if m in paired) or False
    return dataclasses.replace(convention, metrics=paired, quantize_uint8=quantize)


def evaluate_set(eval_set: EvalSet, source: Any, predict_fn: PredictFn, convention: MetricConvention, *,
                 pad_multiple: int = 1, lpips_fn=None, progress: bool = False,
                 on_image: ImageHook | None = None, metrics: Sequence[str] | None = None,
                 perceptual: PerceptualMetrics | None = None) -> list[SetResult]:
    """Per-image scores of `predict_fn` on one set's records (an `open_eval_set` source).

    predict_fn returns the restored batch, or a mapping {label: batch} of several restorations
    (each scored as its own row, named 'SET (label)'). metrics: default the convention's; NIQE
    (per image, on the restoration clamped and, where the convention scores uint8, rounded) and
    FID/KID (restorations against targets, over the set) need `perceptual`.
    on_image: called for every image with its input, restoration and target (HWC, at the
    scored size), e.g. to draw thumbnails. A set whose size differs from the protocol's is
    scored, warned about on stderr and marked not comparable.
    """
    import jax.numpy as jnp

    from data_pipelines.pipelines import crop_to, pad_to_multiple
    from jaxir.metrics.conventions import evaluate_per_image

    metrics = check_metrics(metrics or convention.metrics, perceptual)
    paired = _paired_convention(convention, metrics)
    if len(source) == 0:
        raise ValueError(f"{eval_set.name}: the {eval_set.dataset}:{eval_set.split} split is empty")
    synthesize = None
    if eval_set.input == "synthetic":
        from jaxir.degradations import build_synthesizer
        synthesize = build_synthesizer([dict(op) for op in eval_set.degradation])
    per_image: dict[str | None, list[dict[str, Any]]] = {}
    features: dict[str | None, list[np.ndarray]] = {}
    set_level = [m for m in ("fid", "kid") if m in metrics]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(source), desc=eval_set.name, file=sys.stderr, leave=False)
    for batch in _batches(source, eval_set, pad_multiple):
        target = batch["target"]
        if synthesize is not None:
            degraded = _quantize_input(synthesize(jnp.asarray(target), jnp.asarray(batch["seed"])),
                                       eval_set.input_quantization)
            degraded = pad_to_multiple(degraded, pad_multiple)
        else:
            degraded = batch["input"]
        outputs = predict_fn(np.asarray(degraded, np.float32))
        outputs = dict(outputs) if isinstance(outputs, Mapping) else {None: outputs}
        shown_input = crop_to(np.asarray(degraded), batch["hw"]) if on_image is not None else None
        if set_level:
            features.setdefault("target", []).append(perceptual.features(np.asarray(target, np.float32)))
        for label, restored in outputs.items():
            restored = np.asarray(restored)
            if (restored.ndim != 4 or restored.shape[0] != target.shape[0]
                    or restored.shape[-1] != target.shape[-1]):
                raise ValueError(f"{eval_set.name}: the model returned shape {restored.shape} for inputs of "
                                 f"shape {np.shape(degraded)}; expected {target.shape[-1]}-channel images")
            restored = crop_to(restored, batch["hw"])
            scores = evaluate_per_image(restored, target, paired, lpips_fn) if paired is not None else {}
            scored = _scored_pixels(restored, convention)
            if "niqe" in metrics:
                from jaxir.metrics.niqe import niqe
                scores["niqe"] = [niqe(image, convention.crop_border, params=perceptual.niqe_params)
                                  for image in scored]
            if set_level:
                features.setdefault(label, []).append(perceptual.features(scored))
            rows = per_image.setdefault(label, [])
            for i, name in enumerate(batch["name"]):
                rows.append({"name": str(name), **{m: float(np.asarray(v)[i]) for m, v in scores.items()}})
                if on_image is not None:
                    on_image(_row_name(eval_set.name, label), str(name), shown_input[i], restored[i],
                             np.asarray(target[i]), rows[-1])
        if bar is not None:
            bar.update(len(target))
    if bar is not None:
        bar.close()
    results = []
    for label, rows in per_image.items():
        means = {m: float(np.mean(np.asarray([r[m] for r in rows], np.float64)))
                 for m in metrics if m not in set_level}
        if set_level:
            means.update(_set_level_scores(np.concatenate(features[label]), np.concatenate(features["target"]),
                                           set_level, perceptual))
        results.append(SetResult(_row_name(eval_set.name, label), eval_set.dataset, eval_set.split, len(rows),
                                 {m: means[m] for m in metrics}, rows, eval_set.expected_count))
    if not results[0].comparable:
        print(f"warning: {results[0].count_warning()}", file=sys.stderr)
    return results


def _row_name(set_name: str, label: str | None) -> str:
    return set_name if label is None else f"{set_name} ({label})"


def _scored_pixels(restored: np.ndarray, convention: MetricConvention) -> np.ndarray:
    """What the no-reference and distribution metrics see: clamped, rounded to uint8 levels where the
    convention scores saved uint8 images."""
    pixels = np.clip(np.asarray(restored, np.float32), 0.0, 1.0)
    return np.round(pixels * 255.0) / 255.0 if convention.quantize_uint8 is True else pixels


def _set_level_scores(restored: np.ndarray, target: np.ndarray, metrics: Sequence[str],
                      perceptual: PerceptualMetrics) -> dict[str, float]:
    from jaxir.metrics import fid as fidlib

    if len(restored) < 2:
        raise ValueError("FID/KID need at least two images in a set")
    scores = {}
    if "fid" in metrics:
        scores["fid"] = fidlib.fid(restored, target)
    if "kid" in metrics:
        scores["kid"] = fidlib.kid(restored, target, subsets=perceptual.kid_subsets,
                                   subset_size=perceptual.kid_subset_size)[0]
    return scores


def evaluate_benchmark(benchmark: str | Benchmark, predict_fn: PredictFn, *,
                       data_dir: str | os.PathLike | None = None, sets: Sequence[str] | None = None,
                       sources: Mapping[str, Any] | None = None, input_channels: int | None = None,
                       pad_multiple: int = 1, cache_dir: str | os.PathLike | None = None,
                       model: Mapping[str, Any] | None = None, paper: Sequence[PaperResult] = (),
                       progress: bool = False, on_image: ImageHook | None = None,
                       metrics: Sequence[str] | None = None,
                       perceptual: PerceptualMetrics | None = None) -> BenchmarkResult:
    """Runs `predict_fn` (NHWC float32 batch -> restored NHWC) over a benchmark's sets.

    benchmark: a Benchmark or 'NAME[:SET,...]'. sets: restrict to these sets.
    data_dir: see `resolve_data_dir`. sources: set name -> random-access
    source to use instead of the TFDS data (records with the set's features).
    input_channels: the model's input channels, checked against the benchmark's.
    pad_multiple: inputs are reflect-padded to it; outputs are cropped back.
    model: description stored with the results; paper: published numbers shown beside.
    metrics: what to report (default the convention's; see `evaluate_set` for NIQE/FID/KID).
    """
    if isinstance(benchmark, str):
        benchmark, selected = get_benchmark(benchmark)
        if sets:
            selected = benchmark.select(sets)
    else:
        selected = benchmark.select(sets)
    for eval_set in selected:
        if input_channels is not None and input_channels != eval_set.channels:
            kind = {6: "6-channel dual-pixel (left+right)", 1: "one-channel greyscale", 3: "3-channel RGB"}
            raise ValueError(f"benchmark {benchmark.name!r} set {eval_set.name!r} feeds "
                             f"{kind[eval_set.channels]} inputs but the model takes {input_channels} channels")
    convention = benchmark.metric_convention
    metrics = check_metrics(metrics or convention.metrics, perceptual)
    lpips_fn = None
    if "lpips" in metrics:
        from jaxir.metrics.lpips import LPIPS
        lpips_fn = LPIPS(convention.lpips_net)
    results = []
    for eval_set in selected:
        if sources is not None and eval_set.name in sources:
            source = _EvalView(sources[eval_set.name], eval_set)
        else:
            source = open_eval_set(eval_set, data_dir, cache_dir)
        results += evaluate_set(eval_set, source, predict_fn, convention, pad_multiple=pad_multiple,
                                lpips_fn=lpips_fn, progress=progress, on_image=on_image, metrics=metrics,
                                perceptual=perceptual)
    return BenchmarkResult(benchmark, results, dict(model or {}), tuple(paper), metrics)


def write_results(result: BenchmarkResult, out_dir: str | os.PathLike,
                  paper: bool = False) -> tuple[pathlib.Path, pathlib.Path]:
    """Writes `<benchmark>.md` and `<benchmark>.json` to out_dir; returns their paths."""
    out = pathlib.Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    markdown, data = out / f"{result.benchmark.name}.md", out / f"{result.benchmark.name}.json"
    markdown.write_text(result.to_markdown(paper))
    data.write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
    return markdown, data


# ----------------------------------------------------------------------------
# The CLI entry.


def _load_model(args, overrides):
    """(model name, kwargs, module, variables, description) from --checkpoint or --config/--workdir."""
    from jaxir import registry
    from jaxir.config import apply_overrides, load_config

    config = apply_overrides(load_config(args.config), list(overrides)) if args.config else None
    if args.checkpoint:
        from jaxir.io import load_weights

        name, kwargs, variables = load_weights(args.checkpoint)
        configured = config.model.get("name") if config is not None and "model" in config else None
        if configured and configured != name:
            raise ValueError(f"weights file {args.checkpoint} holds a {name!r} model but the config builds "
                             f"{configured!r}")
        weights = str(args.checkpoint)
    elif args.workdir:
        from jaxir.train.loop import load_inference_variables

        if config is None:
            raise ValueError("--workdir needs the run's --config")
        name = config.model.name
        kwargs = config.model.get("kwargs", {})
        kwargs = dict(kwargs.to_dict() if hasattr(kwargs, "to_dict") else kwargs)
        variables = load_inference_variables(config, args.workdir)
        weights = f"{args.workdir} (latest checkpoint)"
    else:
        raise ValueError("eval --benchmark needs --checkpoint W.msgpack (from `jaxir convert`) or --workdir RUN")
    module = registry.build_model(name, **kwargs)
    return name, kwargs, module, variables, {"name": name, "kwargs": kwargs, "weights": weights}


def parse_metrics(spec: str | None) -> tuple[str, ...] | None:
    """'psnr,ssim,lpips,niqe,fid,kid' -> the names (None: the convention's)."""
    if not spec:
        return None
    metrics = tuple(m.strip().lower() for m in spec.split(",") if m.strip())
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown or not metrics:
        raise ValueError(f"--metrics: unknown {unknown}; choose from {','.join(ALL_METRICS)}")
    return metrics


def perceptual_metrics(metrics: Sequence[str] | None, inception: str | None = None,
                       niqe_params: str | None = None) -> PerceptualMetrics | None:
    """Loads what NIQE / FID / KID need, failing early with the missing file's name."""
    if not metrics or not set(metrics) & set(EXTRA_METRICS):
        return None
    perceptual = PerceptualMetrics()
    if "niqe" in metrics:
        from jaxir.metrics.niqe import load_params
        perceptual.niqe_params = load_params(niqe_params)
    if {"fid", "kid"} & set(metrics):
        if not inception:
            raise ValueError("--metrics fid/kid need --inception PATH (pytorch-fid's "
                             "pt_inception-2015-12-05-6726825d.pth or its `jaxir convert`ed .msgpack)")
        if not pathlib.Path(inception).is_file():
            raise FileNotFoundError(f"--inception {inception} does not exist")
        from jaxir.metrics.inception import load_fid_inception
        perceptual.inception = load_fid_inception(inception)
    return perceptual


def stochastic_predict_fn(entry, model, variables, samples: int, seed: int = 0) -> PredictFn:
    """Batch -> {'sample': one stochastic restoration, 'SA-K': the mean of K} for a model with a sampler
    (DvSR's "Ours" and "Ours-SA"); each call draws from fold_in(key(seed), call index)."""
    from jaxir.inference import make_sample_fn

    if samples < 1:
        raise ValueError(f"--samples must be >= 1, got {samples}")
    sample_fn = make_sample_fn(entry, model, variables, samples, seed, fold_calls=True)

    def predict(batch: np.ndarray) -> dict[str, np.ndarray]:
        average, sample = sample_fn(batch)
        return {"sample": sample, f"SA-{samples}": average}

    return predict


def list_benchmarks() -> str:
    width = max(len(n) for n in BENCHMARKS)
    return "\n".join(f"{name:{width}s}  {b.title}  [sets: {', '.join(s.name for s in b.sets)}]"
                     for name, b in BENCHMARKS.items())


def run_benchmark(args, overrides, on_image: ImageHook | None = None) -> BenchmarkResult | None:
    """`jaxir eval --benchmark NAME[:SET,...]`: evaluates, writes <out>/<NAME>.{md,json}, prints the table."""
    if args.benchmark == "list":
        print(list_benchmarks())
        return None
    benchmark, selected = get_benchmark(args.benchmark)
    from jaxir import registry
    from jaxir.inference import make_predict_fn
    from jaxir.parity import input_channels

    metrics = parse_metrics(getattr(args, "metrics", None))
    perceptual = perceptual_metrics(metrics, getattr(args, "inception", None), getattr(args, "niqe_params", None))
    name, _, module, variables, description = _load_model(args, overrides)
    entry = registry.get_entry(name)
    channels = input_channels(module)
    samples = getattr(args, "samples", 0) or 0
    if samples:
        predict = stochastic_predict_fn(entry, module, variables, samples, getattr(args, "seed", 0))
        description["samples"] = {"count": samples, "seed": getattr(args, "seed", 0)}
    else:
        if entry.stochastic_restore is not None:
            print(f"note: {name} is stochastic; scoring its deterministic output. --samples K scores one "
                  f"sample and the K-sample average", file=sys.stderr)
        predict = make_predict_fn(module, variables, entry.pad_multiple, entry.min_size)
    matched = tuple(r for r in benchmark.paper if r.matches(name, module))
    result = evaluate_benchmark(
        benchmark, predict, data_dir=getattr(args, "data_dir", None), sets=[s.name for s in selected],
        input_channels=channels, pad_multiple=entry.pad_multiple, model=description, paper=matched,
        progress=sys.stderr.isatty(), on_image=on_image, metrics=metrics, perceptual=perceptual)
    out = getattr(args, "out", None) or getattr(args, "workdir", None) or "."
    markdown, data = write_results(result, out, paper=bool(getattr(args, "paper", False)))
    print(result.to_markdown(paper=bool(getattr(args, "paper", False))))
    print(f"wrote {markdown} and {data}")
    return result
