"""MoCE-IR / MoCE-IR-S, all-in-one restoration on the 5-task protocol (`:base` or `:s`).

Zamfir et al., "Complexity Experts are Task-Discriminative Learners for Any Image
Restoration", CVPR 2025; reproduces the 5-degradation table (CBSD68 sigma 25,
Rain100L, SOTS outdoor, GoPro, LOLv1). Evaluate with `jaxir eval --benchmark allinone5`.

Official code eduardzamfir/MoCE-IR (commit a1a6e74): the README's 5-task command
adds `deblur synllie` to --de_type (all three noise levels are trained); model,
loss, optimiser and schedule as experiments/moce_ir_aio3.py. Data: the 'aio5'
mixture with MoCE-IR's repeats: denoise 5144 x 3 per sigma, Rain100L 200 x 120,
RESIDE OTS 72135 x 1, GoPro x 5, LOLv1 train 485 x 20. The official deblur set is
Restormer's 512x512 GoPro training crops; jaxir crops the 2103 training frames, so
its epoch (counted here with 2103 x 5 deblur samples) is a different length.
"""
from experiments.moce_ir_aio3 import VARIANTS, moce_recipe  # noqa: F401 (VARIANTS: :base, :s)
from experiments.promptir_aio3 import SAMPLES_PER_EPOCH

SAMPLES_PER_EPOCH_AIO5 = SAMPLES_PER_EPOCH + 2103 * 5 + 485 * 20


def get_config(arg=None):
    return moce_recipe(arg or "base", "aio5", SAMPLES_PER_EPOCH_AIO5)
