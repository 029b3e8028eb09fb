"""NAFNet / Baseline on SIDD real-image denoising.

Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022,
Table 1 (SIDD): NAFNet-width64 40.30 dB / 0.962 SSIM, width32 39.97 dB.
Recipe from the official options/train/SIDD/{NAFNet,Baseline}-width{32,64}.yml:
256x256 crops without flips or rotations, global batch 32 (8 GPUs x 4), AdamW
lr 1e-3 betas (0.9, 0.9) no weight decay, cosine to 1e-7 over 200k
iterations without warmup, PSNR loss.

arg: 'width32' (default), 'width64', 'baseline-width32', 'baseline-width64'.
"""
from experiments.base import base_config, tfds_source

VARIANTS = {
    "width32": ("nafnet", 32, {}),
    "width64": ("nafnet", 64, {}),
    "baseline-width32": ("nafnet_baseline", 32, {"dw_expand": 2, "ffn_expand": 2}),
    "baseline-width64": ("nafnet_baseline", 64, {"dw_expand": 2, "ffn_expand": 2}),
}


def get_config(arg: str | None = None):
    variant = arg or "width32"
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    name, width, extra = VARIANTS[variant]
    c = base_config()
    c.model.name = name
    c.model.kwargs = {"width": width, "enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12,
                      "dec_blk_nums": [2, 2, 2, 2], **extra}
    c.data.train = tfds_source("sidd", "train")
    c.data.eval = tfds_source("sidd", "validation")
    c.data.crop_size = 256
    c.data.batch_size = 32
    c.data.augment = False
    c.loss.terms = [{"name": "psnr", "weight": 1.0}]
    c.optim.update({"lr": 1e-3, "b1": 0.9, "b2": 0.9, "weight_decay": 0.0, "schedule": "cosine",
                    "warmup_steps": 0, "min_lr": 1e-7})
    c.train.update({"num_steps": 200_000, "seed": 10, "log_every": 200, "eval_every": 20_000, "ckpt_every": 5_000})
    c.eval.convention = "sidd"
    return c
