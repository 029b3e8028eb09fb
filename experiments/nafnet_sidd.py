"""NAFNet / Baseline on SIDD real-image denoising.

Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022,
Table 1 (SIDD): NAFNet-width64 40.30 dB / 0.962 SSIM, width32 39.97 dB.
Recipe from the official options/train/SIDD/{NAFNet,Baseline}-width{32,64}.yml:
256x256 crops without flips or rotations, global batch 32 (8 GPUs x 4), AdamW
lr 1e-3 betas (0.9, 0.9) no weight decay, cosine to 1e-7 over 200k
iterations without warmup, PSNR loss.

arg: 'width32' (default), 'width64', 'baseline-width32', 'baseline-width64'.
"""
from experiments.nafnet_gopro import nafnet_recipe

VARIANTS = {
    "width32": ("nafnet", 32, {}),
    "width64": ("nafnet", 64, {}),
    "baseline-width32": ("nafnet_baseline", 32, {"dw_expand": 2, "ffn_expand": 2}),
    "baseline-width64": ("nafnet_baseline", 64, {"dw_expand": 2, "ffn_expand": 2}),
}


def get_config(arg: str | None = None):
    blocks = {"enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]}
    c = nafnet_recipe(VARIANTS, arg, blocks, "sidd", "validation")
    c.data.augment = False
    c.optim.weight_decay = 0.0
    c.train.seed = 10
    return c
