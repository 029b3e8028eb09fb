"""NAFNet / Baseline on SIDD real-image denoising.

Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022,
Table 1 (SIDD): NAFNet-width64 40.30 dB / 0.962 SSIM, width32 39.97 dB.
Recipe from the official megvii-research/NAFNet (commit 2b4af71)
options/train/SIDD/{NAFNet,Baseline}-width{32,64}.yml, one file per variant:
256x256 crops without flips or rotations, AdamW lr 1e-3 betas (0.9, 0.9) and
no weight decay, cosine to 1e-7 over the whole run without warmup, PSNR loss,
gradient norm clipped at 0.01 (image_restoration_model.py's default), seed 10;
width32: 200k iterations at 8 GPUs x 4 = 32; width64: 400k at 8 x 8 = 64. The
official files train on 512x512 sub-images (scripts/data_preparation/sidd.py);
jaxir crops the images directly.

arg: 'width32' (default), 'width64', 'baseline-width32', 'baseline-width64'.
"""
from experiments.nafnet_gopro import nafnet_recipe, variant

# variant -> options/train/SIDD/<file>: network_g, batch_size_per_gpu, total_iter, weight_decay, manual_seed
VARIANTS = {
    "width32": variant("NAFNet-width32.yml", "nafnet", 32, 4, 200_000, 0.0, 10),
    "width64": variant("NAFNet-width64.yml", "nafnet", 64, 8, 400_000, 0.0, 10),
    "baseline-width32": variant("Baseline-width32.yml", "nafnet_baseline", 32, 4, 200_000, 0.0, 10, dw_expand=1),
    "baseline-width64": variant("Baseline-width64.yml", "nafnet_baseline", 64, 8, 400_000, 0.0, 10, dw_expand=2),
}


def get_config(arg: str | None = None):
    blocks = {"enc_blk_nums": [2, 2, 4, 8], "middle_blk_num": 12, "dec_blk_nums": [2, 2, 2, 2]}
    c = nafnet_recipe(VARIANTS, arg, blocks, "sidd", "validation")
    c.data.augment = False
    return c
