"""MIMO-UNet+, motion deblurring on GoPro.

Cho, Ji, Hong, Jung, Ko, "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021; reproduces Table 1 (GoPro): MIMO-UNet+ 32.45 dB PSNR,
0.957 SSIM (16.1M parameters; MIMO-UNet++'s geometric self-ensemble is a
test-time procedure not included here).

The network has 20 residual blocks per stage and Dropout2d(0.1) on the two
fused skip features while training (official MIMOUNetPlus); the training recipe
is MIMO-UNet's (same main.py defaults, see experiments/mimo_unet_gopro.py).
"""
from experiments.mimo_unet_gopro import mimo_recipe


def get_config(arg: str | None = None):
    if arg:
        raise ValueError(f"mimo_unet_plus_gopro takes no argument, got {arg!r}")
    return mimo_recipe("mimo_unet_plus")
