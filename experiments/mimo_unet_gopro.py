"""MIMO-UNet, motion deblurring on GoPro.

Cho, Ji, Hong, Jung, Ko, "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021; reproduces Table 1 (GoPro): MIMO-UNet 31.73 dB PSNR,
0.951 SSIM (6.8M parameters).

Recipe from the official chosj95/MIMO-UNet main.py, train.py and data/
(commit 5c58013): 3000 epochs over the 2103 GoPro training pairs, batch 4 (an
epoch is ceil(2103 / 4) = 526 iterations, drop_last=False), 256x256 random
crops with horizontal flips; Adam lr 1e-4, betas (0.9, 0.999), no weight decay,
no clipping; MultiStepLR halving the rate every 500 epochs; loss: L1 at the
three output scales (targets bilinearly resized to 1/4, 1/2, 1) + 0.1 * L1
between their two-sided 2-D FFTs (torch.rfft onesided=False). Validation every
100 epochs.

`mimo_recipe` is shared with experiments/mimo_unet_plus_gopro.py.
"""
from __future__ import annotations

import math

from experiments.base import base_config, tfds_source

GOPRO_TRAIN_PAIRS = 2103
BATCH_SIZE = 4
EPOCHS = 3000
HALVE_EVERY_EPOCHS = 500
STEPS_PER_EPOCH = math.ceil(GOPRO_TRAIN_PAIRS / BATCH_SIZE)


def mimo_recipe(model: str):
    c = base_config()
    c.model.name = model
    c.model.kwargs = {}
    c.data.train = tfds_source("gopro", "train")
    c.data.eval = tfds_source("gopro", "test")
    c.data.crop_size = 256
    c.data.batch_size = BATCH_SIZE
    c.data.augment = "hflip"  # PairRandomHorizontalFilp only
    c.data.workers = 8
    c.loss.terms = [{"name": "l1", "weight": 1.0}, {"name": "fft", "weight": 0.1}]
    c.loss.multiscale = "bilinear"
    # MultiStepLR milestones (500, ..., 3000 epochs); the last one coincides with the end of training.
    milestones = [e * STEPS_PER_EPOCH for e in range(HALVE_EVERY_EPOCHS, EPOCHS, HALVE_EVERY_EPOCHS)]
    c.optim.update({"lr": 1e-4, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "schedule": "multistep",
                    "warmup_steps": 0, "milestones": milestones, "gamma": 0.5, "clip_norm": 0.0, "ema_decay": 0.0})
    c.train.update({"num_steps": EPOCHS * STEPS_PER_EPOCH, "log_every": 100, "eval_every": 100 * STEPS_PER_EPOCH,
                    "ckpt_every": 100 * STEPS_PER_EPOCH})
    c.eval.convention = "gopro"
    return c


def get_config(arg: str | None = None):
    if arg:
        raise ValueError(f"mimo_unet_gopro takes no argument, got {arg!r}")
    return mimo_recipe("mimo_unet")
