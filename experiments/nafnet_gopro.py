"""NAFNet / Baseline on GoPro motion deblurring.

Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022,
Table 1 (GoPro): NAFNet-width64 33.69 dB / 0.967 SSIM, width32 32.87 dB.
Recipe from the official options/train/GoPro/{NAFNet,Baseline}-width{32,64}.yml:
256x256 crops with flips and rot90, global batch 32 (8 GPUs x 4), AdamW
lr 1e-3 betas (0.9, 0.9) weight decay 1e-3, cosine from 1e-3 to 1e-7 over
200k iterations without warmup, PSNR loss. The network trains as NAFNetLocal:
at 256 crops TLC equals global pooling; at test time TLC (train size 256) acts
on full 1280x720 frames.

arg: 'width32' (default), 'width64', 'baseline-width32', 'baseline-width64'.
"""
from experiments.base import base_config, tfds_source

# variant -> (registered model, width, block expansions): the Baseline's depthwise expansion differs per task.
VARIANTS = {
    "width32": ("nafnet", 32, {}),
    "width64": ("nafnet", 64, {}),
    "baseline-width32": ("nafnet_baseline", 32, {"dw_expand": 1, "ffn_expand": 2}),
    "baseline-width64": ("nafnet_baseline", 64, {"dw_expand": 1, "ffn_expand": 2}),
}


def nafnet_recipe(variants: dict, arg: str | None, blocks: dict, dataset: str, eval_split: str):
    """The NAFNet paper's shared recipe: AdamW (0.9, 0.9), cosine 1e-3 -> 1e-7 over 200k, PSNR loss, batch 32."""
    variant = arg or "width32"
    if variant not in variants:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(variants)}")
    name, width, extra = variants[variant]
    c = base_config()
    c.model.name = name
    c.model.kwargs = {"width": width, **blocks, **extra}
    c.data.train = tfds_source(dataset, "train")
    c.data.eval = tfds_source(dataset, eval_split)
    c.data.crop_size = 256
    c.data.batch_size = 32
    c.loss.terms = [{"name": "psnr", "weight": 1.0}]
    c.optim.update({"lr": 1e-3, "b1": 0.9, "b2": 0.9, "schedule": "cosine", "warmup_steps": 0, "min_lr": 1e-7})
    c.train.update({"num_steps": 200_000, "log_every": 200, "eval_every": 20_000, "ckpt_every": 5_000})
    c.eval.convention = dataset
    return c


def get_config(arg: str | None = None):
    blocks = {"enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1],
              "tlc_train_size": [256, 256]}
    c = nafnet_recipe(VARIANTS, arg, blocks, "gopro", "test")
    c.optim.weight_decay = 1e-3
    c.train.seed = 42
    return c
