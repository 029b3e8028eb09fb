"""MaIR, Gaussian colour denoising (σ = 15, 25 or 50; `arg` picks it, default 15).

Li, Zhao, Wang, Hu, Gou, Peng, "MaIR: A Locality- and Continuity-Preserving Mamba for Image
Restoration", CVPR 2025; reproduces its colour-denoising table (CBSD68 / Kodak24 / McMaster / Urban100).

Recipe from XLearning-SCU/2025-CVPR-MaIR options/train/train_MaIR_CDN_s{15,25,50}.yml (commit 2fb433e):
  - MaIR embed_dim 180, d_state 16, six groups of six blocks, ssm_ratio 1.3, MLP ratio 2, scan_len 4,
    no upsampler (14,089,035 parameters).
  - DFWB (DIV2K + Flickr2K + WED + BSD) with Gaussian noise of σ added on the fly, 128x128 crops,
    flips and rot90, batch 1 per GPU on 8 GPUs (global 8).
  - Adam lr 2e-4, betas (0.9, 0.99), no weight decay; MultiStepLR gamma 0.5 at
    [1.6M, 2.1M, 2.5M, 2.8M, 3.0M] of 3.2M iterations (σ 15), or, fine-tuned from the σ 15 model,
    at [200k, 800k, 1.2M, 1.4M, 1.5M] of 1.6M (σ 25/50). Charbonnier loss sqrt(d^2 + 1e-12)
    (jaxir's eps 1e-6, squared). Seed 10.

jaxir has no DFWB builder: the config trains on BSD400 colour (bsd400/color) and names the
difference here; point --config.data.train at a folder source for DFWB. Start σ 25/50 with
--config.train.init_from=<σ 15 workdir> as the official does.
"""
from experiments.base import base_config, tfds_source
from jaxir.models.mair import MAIR_CONFIGS

VARIANTS = ["15", "25", "50"]  # σ; default first


def get_config(arg=None):
    if (arg or VARIANTS[0]) not in VARIANTS:
        raise ValueError(f"mair_cbsd68 takes σ {VARIANTS}, got {arg!r}")
    sigma = int(arg or VARIANTS[0])
    kwargs, _ = MAIR_CONFIGS["color_dn"]
    c = base_config()
    c.model.name = "mair"
    c.model.kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    c.data.train = tfds_source("bsd400/color", "train")
    c.data.eval = tfds_source("cbsd68", "test")
    c.data.degradation = [{"name": "gaussian_noise", "sigma": sigma / 255}]
    c.data.crop_size, c.data.batch_size, c.data.augment, c.data.workers = 128, 8, True, 8
    c.loss.terms = [{"name": "charbonnier", "weight": 1.0, "eps": 1e-6}]
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.99, "weight_decay": 0.0, "schedule": "multistep",
                    "gamma": 0.5, "warmup_steps": 0})
    if sigma == 15:
        c.optim.milestones, c.train.num_steps = [1600000, 2100000, 2500000, 2800000, 3000000], 3200000
    else:
        c.optim.milestones, c.train.num_steps = [200000, 800000, 1200000, 1400000, 1500000], 1600000
    c.train.update({"seed": 10, "log_every": 1000, "eval_every": 50000, "ckpt_every": 25000})
    c.eval.convention = "cbsd68"
    return c
