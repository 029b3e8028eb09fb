"""MambaIRv2, Gaussian colour denoising (σ = 15, 25 or 50; `arg` picks it, default 15).

Guo et al., "MambaIRv2: Attentive State Space Restoration", CVPR 2025; reproduces its
colour-denoising table (CBSD68 / Kodak24 / McMaster / Urban100).

Recipe from csguoh/MambaIR options/train/mambairv2/train_MambaIRv2_ColorDN_level{15,25,50}.yml
(commit 33d7b34):
  - MambaIRv2 embed_dim 174, d_state 16, six groups of six layers, 6 heads, window 16,
    inner_rank 64, 128 prompts, ConvFFN kernel 5, MLP ratio 2 (22,657,971 parameters).
  - DFWB (DIV2K + Flickr2K + WED + BSD) with Gaussian noise of σ added on the fly, 128x128
    crops, flips and rot90, batch 2 per GPU on 8 GPUs (global 16).
  - Adam lr 2e-4 (σ 15) or 1e-4 (σ 25/50, fine-tuned from the σ 15 model), betas (0.9, 0.99);
    MultiStepLR gamma 0.5 at [800k, 1.2M, 1.4M, 1.5M] of 1.6M iterations (σ 15) or
    [400k, 600k, 700k, 750k] of 800k (σ 25/50). Charbonnier loss, eps 1e-3. Seed 10.

jaxir has no DFWB builder: the config trains on BSD400 colour (bsd400/color) and names the
difference here; point --config.data.train at a folder source for DFWB. Start σ 25/50 with
--config.train.init_from=<σ 15 workdir> as the official does.
"""
from experiments.base import base_config, tfds_source
from jaxir.models.mambairv2 import CONFIGS

VARIANTS = ["15", "25", "50"]  # σ; default first


def get_config(arg=None):
    if (arg or VARIANTS[0]) not in VARIANTS:
        raise ValueError(f"mambairv2_cbsd68 takes σ {VARIANTS}, got {arg!r}")
    sigma = int(arg or VARIANTS[0])
    kwargs, _ = CONFIGS["color_dn"]
    c = base_config()
    c.model.name = "mambairv2"
    c.model.kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    c.data.train = tfds_source("bsd400/color", "train")
    c.data.eval = tfds_source("cbsd68", "test")
    c.data.degradation = [{"name": "gaussian_noise", "sigma": sigma / 255}]
    c.data.crop_size, c.data.batch_size, c.data.augment, c.data.workers = 128, 16, True, 8
    c.loss.terms = [{"name": "charbonnier", "weight": 1.0, "eps": 1e-3}]
    c.optim.update({"b1": 0.9, "b2": 0.99, "weight_decay": 0.0, "schedule": "multistep", "gamma": 0.5,
                    "warmup_steps": 0})
    if sigma == 15:
        c.optim.lr, c.optim.milestones, c.train.num_steps = 2e-4, [800000, 1200000, 1400000, 1500000], 1600000
    else:
        c.optim.lr, c.optim.milestones, c.train.num_steps = 1e-4, [400000, 600000, 700000, 750000], 800000
    c.train.update({"seed": 10, "log_every": 1000, "eval_every": 5000, "ckpt_every": 5000})
    c.eval.convention = "cbsd68"
    return c
