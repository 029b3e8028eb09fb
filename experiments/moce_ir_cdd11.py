"""MoCE-IR / MoCE-IR-S on CDD-11's composite degradations (`:base` or `:s`, optionally `:s,N`).

Zamfir et al., "Complexity Experts are Task-Discriminative Learners for Any Image
Restoration", CVPR 2025 (the CDD-11 table). Evaluate with `jaxir eval --benchmark cdd11`.

Official code eduardzamfir/MoCE-IR (commit a1a6e74), README 'CDD11: Composited
Degradations': `python src/train.py --model [MoCE_IR_S/MoCE_IR] --batch_size 8
--trainset CDD11_all --num_gpus 4 --loss_type FFT --balance_loss_weight 0.01
--fft_loss_weight 0.1`; src/data/dataset_utils.py CDD11(split='train', subset='all'):
  - every image of the 11 degraded train folders, each folder's list doubled ("scale
    dataset length"), paired with clear/ by file name; __getitem__ draws a random
    combination, then a random image of it, a 128x128 crop and a random flip/rot90
    (jaxir: the `cdd11` train split shuffled; the folders hold equally many images, so the
    draw is the same uniform one);
  - model, loss (L1 + 0.1 FFT + 0.01 balance), AdamW and schedule as
    experiments/moce_ir_aio3.py; 120 epochs of 2 x N samples (N = train pairs).
`N`: the pairs in your `cdd11` train split (`jaxir build-dataset cdd11` logs it; the
official code does not state it), which fixes the steps of 120 epochs; without it the
schedule assumes 1000 steps per epoch.
"""
from experiments.base import DEFAULT_DATA_DIR, tfds_source
from experiments.moce_ir_aio3 import VARIANTS, moce_recipe  # noqa: F401 (VARIANTS: :base, :s)
from experiments.promptir_aio3 import GLOBAL_BATCH

DEFAULT_STEPS_PER_EPOCH = 1000


def get_config(arg=None):
    variant, _, pairs = (arg or "base").partition(",")
    # Without N: an epoch of DEFAULT_STEPS_PER_EPOCH global batches.
    samples = 2 * int(pairs) if pairs else DEFAULT_STEPS_PER_EPOCH * GLOBAL_BATCH
    c = moce_recipe(variant or "base", "cdd11", samples)
    c.data.train = tfds_source("cdd11", "train", DEFAULT_DATA_DIR, features=["input", "target"])
    return c
