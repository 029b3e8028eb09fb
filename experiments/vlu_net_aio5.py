"""VLU-Net, all-in-one restoration on the 5-task protocol (noise, rain, haze, blur, low light).

Reproduces the paper's 5-task table (CBSD68 sigma 25, Rain100L, SOTS outdoor, GoPro,
LOLv1); evaluate with `jaxir eval --benchmark allinone5`. Official recipe as
experiments/vlu_net_aio3.py; train.py's default --de_type is this setting's
(denoise_15/25/50, derain, dehaze, delowlight, deblur; de_dim 7). Data: the 'aio5'
mixture with VLU-Net's repeats: denoise x 3 per sigma, Rain100L x 120, dehaze, GoPro
and LOL x 1 each (utils/dataset_utils_clip.py), counted with 5144, 200, 72135, 2103
and 485 images.
"""
from experiments.promptir_aio3 import SAMPLES_PER_EPOCH
from experiments.vlu_net_aio3 import vlu_recipe

SAMPLES_PER_EPOCH_AIO5 = SAMPLES_PER_EPOCH + 2103 + 485


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"vlu_net_aio5 takes no argument, got {arg!r}")
    return vlu_recipe("aio5", SAMPLES_PER_EPOCH_AIO5)
