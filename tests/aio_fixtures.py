"""The bundled photos as an all-in-one mixture: every task synthesised on device from the clean photos.

Denoising tasks add noise at their sigma; derain and dehaze synthesise rain streaks
and haze, so the all-in-one training tests run the real mixture path (task labels,
per-task synthesis in the train step) without downloaded data.
"""
from __future__ import annotations

from data_pipelines.mixtures import NOISE_SIGMAS, Mixture, Task, noise_degradation
from data_pipelines.sources import BundledPhotos
from jaxir.train.data import register_source

BUNDLED_AIO3 = "bundled_aio3"
SYNTHETIC = {"derain": ({"name": "rain"},), "dehaze": ({"name": "haze"},), "lowlight": ({"name": "low_light"},)}
BUNDLED_WEATHER = "bundled_weather"


def bundled_mixture(tasks=("denoise_15", "denoise_25", "denoise_50", "derain", "dehaze")) -> Mixture:
    photos = BundledPhotos("train")
    return Mixture([Task(name, photos, weight=1.0,
                         degradation=noise_degradation(NOISE_SIGMAS[name]) if name in NOISE_SIGMAS else SYNTHETIC[name])
                    for name in tasks])


register_source(BUNDLED_AIO3, bundled_mixture)
register_source(BUNDLED_WEATHER, lambda: bundled_mixture(("derain", "dehaze", "lowlight")))
