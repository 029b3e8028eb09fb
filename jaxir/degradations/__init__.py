"""Synthetic degradations in pure JAX: noise, blur, rain, haze, low light (plus host-side JPEG).

All device ops take `(key, images, **params)` with NHWC float32 images in [0, 1] and
either one PRNG key or one key per image; `synthesize(spec, clean, seeds)` applies a
config-data spec with per-record keys.
"""

from jaxir.degradations.blur import BOUNDARIES, convolve, defocus_blur, gaussian_blur, motion_blur
from jaxir.degradations.compose import OPS, build_synthesizer, op_params, parse_spec, record_keys, synthesize
from jaxir.degradations.jpeg import jpeg_compress_np
from jaxir.degradations.kernels import (
    anisotropic_gaussian_kernel,
    disk_kernel,
    gaussian_kernel,
    line_kernel,
    motion_kernel,
)
from jaxir.degradations.lowlight import low_light
from jaxir.degradations.noise import gaussian_noise, poisson_noise
from jaxir.degradations.weather import haze, rain, rain_streaks, random_depth

__all__ = [
    "BOUNDARIES",
    "OPS",
    "anisotropic_gaussian_kernel",
    "build_synthesizer",
    "convolve",
    "defocus_blur",
    "disk_kernel",
    "gaussian_blur",
    "gaussian_kernel",
    "gaussian_noise",
    "haze",
    "jpeg_compress_np",
    "line_kernel",
    "low_light",
    "motion_blur",
    "motion_kernel",
    "op_params",
    "parse_spec",
    "poisson_noise",
    "rain",
    "rain_streaks",
    "random_depth",
    "record_keys",
    "synthesize",
]
