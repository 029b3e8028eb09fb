"""ConvIR, motion deblurring on GoPro. `arg` picks the size: 's', 'b' or 'l' (default 'l').

Cui, Ren, Cao, Knoll, "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024; reproduces the GoPro row of the official README's results table
(ConvIR-L: 33.28 dB PSNR, 0.963 SSIM; the paper reports GoPro for the large model).

Recipe from the official c-yn/ConvIR Motion_Deblurring/{main,train}.py and
data/data_load.py (commit 05dcbff): 3000 epochs over the 2103 GoPro training
pairs, batch 4 (an epoch is ceil(2103 / 4) = 526 iterations, drop_last=False),
256x256 random crops with horizontal flips; Adam lr 1e-4, betas (0.9, 0.999),
no weight decay; linear warmup over 3 epochs (GradualWarmupScheduler) then cosine
annealing to 1e-6 (CosineAnnealingLR over the remaining epochs); gradient norm
clipped to 0.001; loss: L1 at the three output scales (targets bilinearly
resized) + 0.1 * L1 between their 2-D FFTs (real and imaginary parts stacked).
Evaluation on full GoPro test frames reflect-padded to a multiple of 32
(Motion_Deblurring/eval.py). The official code steps the schedule per epoch;
here it is stepped per iteration over the same number of iterations. jaxir's
augmentation draws one of the 8 flips/rot90s instead of a horizontal flip only.

`convir_recipe` below is the recipe every official ConvIR task shares; the other
ConvIR configs (convir_derain, convir_dehaze_its, convir_dehaze_ots,
convir_desnow) import it and set their task's numbers.
"""
from __future__ import annotations

import math

import ml_collections

from experiments.base import base_config, tfds_source

SIZES = {"s": 4, "b": 8, "l": 16}  # ConvIR-S/B/L: num_res (official 'version' small/base/large)
ARGS = tuple(SIZES)  # paper config names convir-gopro-s/-b/-l (jaxir.paper_configs)
GOPRO_TRAIN_PAIRS = 2103


def parse_size(arg: str | None, default: str) -> str:
    size = (arg or default).lower()
    if size not in SIZES:
        raise ValueError(f"ConvIR size must be one of {sorted(SIZES)}, got {arg!r}")
    return size


def convir_recipe(*, model: str, size: str, train_set: dict, eval_set: dict, convention: str | None, train_pairs: int,
                  batch_size: int, epochs: int, lr: float, warmup_epochs: int, clip_norm: float,
                  valid_every_epochs: int, crop_size=256):
    """The official ConvIR training loop (train.py of every task) with one task's numbers."""
    steps_per_epoch = math.ceil(train_pairs / batch_size)
    c = base_config()
    c.model.name = model
    c.model.kwargs = {"num_res": SIZES[size]}
    # Rebuilt rather than assigned: base_config types crop_size as int, real-haze crops are (h, w).
    c.data = ml_collections.ConfigDict({**c.data.to_dict(), "train": train_set, "eval": eval_set,
                                        "crop_size": crop_size, "batch_size": batch_size, "augment": True,
                                        "workers": 8})
    c.loss.terms = [{"name": "l1", "weight": 1.0}, {"name": "fft", "weight": 0.1}]
    c.loss.multiscale = "bilinear"
    c.optim.update({"lr": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "schedule": "cosine",
                    "warmup_steps": warmup_epochs * steps_per_epoch, "min_lr": 1e-6, "clip_norm": clip_norm,
                    "ema_decay": 0.0})
    c.train.update({"num_steps": epochs * steps_per_epoch, "log_every": 100,
                    "eval_every": valid_every_epochs * steps_per_epoch,
                    "ckpt_every": valid_every_epochs * steps_per_epoch})
    c.eval.convention = convention
    return c


def get_config(arg: str | None = None):
    size = parse_size(arg, "l")
    return convir_recipe(
        model="convir", size=size, train_set=tfds_source("gopro", "train"),
        eval_set=tfds_source("gopro", "test"),
        convention="gopro", train_pairs=GOPRO_TRAIN_PAIRS, batch_size=4, epochs=3000, lr=1e-4, warmup_epochs=3,
        clip_norm=0.001, valid_every_epochs=100,
    )
