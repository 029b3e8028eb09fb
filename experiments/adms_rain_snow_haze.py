"""ADMS on the Rain-Snow-Haze all-in-one setting, NAFNet or MSBDN backbone.

Park, Lee, Chun, "All-in-One Image Restoration for Unknown Degradations Using
Adaptive Discriminative Filters for Specific Degradations", CVPR 2023 (Table of
Rain-Snow-Haze results). Stages, backbones and recipes as
experiments/adms_rain_blur_noise.py (arg '<nafnet|msbdn>:<um|finetune-<d>|dc|ads>').

Rain T⊙(x+S)+(1−T)⊙A and haze (atmospheric scattering with a random depth) are
synthesised from clean images; snow has no synthesis in jaxir and is read from
Snow100K (the `snow100k` TFDS builder, paired). The paper trains on its own
rain/snow/haze datasets, which are not reproduced.
"""
from experiments.adms_rain_blur_noise import adms_config, adms_variants
from experiments.base import tfds_source

TASKS = {
    "rain": [{"name": "rain"}],
    "snow": [],
    "haze": [{"name": "haze"}],
}
VARIANTS = adms_variants(TASKS)


def get_config(arg: str | None = None):
    return adms_config(arg, TASKS, paired={"snow": tfds_source("snow100k", "train")})
