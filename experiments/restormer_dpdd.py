"""Restormer, defocus deblurring on DPDD: dual-pixel (default) or single-image (`:single`).

Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022; reproduces Table 3 (DPDD test, indoor + outdoor
combined): dual-pixel 26.66 dB PSNR / 0.833 SSIM / 0.035 MAE / 0.155 LPIPS,
single-image 25.98 dB / 0.811 / 0.038 / 0.178.

Recipe from the official options files of swz30/Restormer (commit df766d5):
  dual-pixel:   Defocus_Deblurring/Options/DefocusDeblur_DualPixel_16bit_Restormer.yml
                (left and right views stacked into a 6-channel input, inp_channels 6,
                dual_pixel_task True: skip conv at the refinement stage, no input residual)
  single-image: Defocus_Deblurring/Options/DefocusDeblur_Single_8bit_Restormer.yml
                (the combined centre view 'inputC', inp_channels 3, dual_pixel_task False)
Both otherwise match the motion-deblurring recipe (experiments/restormer_gopro.py):
300k iterations of progressive learning (patches [128 .. 384], global batches
[64, 40, 32, 16, 8, 8] = 8 GPUs x [8, 5, 4, 2, 1, 1]), flips/rot90, L1 loss, AdamW
3e-4 with weight decay 1e-4, gradient norm clipped at 0.01, constant LR for 92k
iterations then cosine to 1e-6 over 208k, seed 100.

The official dual-pixel loader reads the 16-bit PNGs; so do jaxir's 'dpdd' TFDS
records (lossless uint16). Evaluated on the DPDD test split with the 'dpdd' convention.
"""
from experiments.restormer_gopro import RESTORMER_KWARGS, restormer_recipe

VARIANTS = ("dual", "single")


def get_config(arg=None):
    variant = arg or "dual"
    if variant not in VARIANTS:
        raise ValueError(f"restormer_dpdd argument must be one of {VARIANTS}, got {arg!r}")
    dual = variant == "dual"
    kwargs = {**RESTORMER_KWARGS, "inp_channels": 6 if dual else 3, "dual_pixel_task": dual}
    # Dual-pixel: the pipeline concatenates left and right into the 6-channel 'input'.
    features = ["input_left", "input_right", "target"] if dual else ["input", "target"]
    config = restormer_recipe(kwargs, "dpdd", features, "dpdd")
    config.data.dual_pixel = dual
    return config
