"""DvSR on GoPro motion deblurring.

Whang, Delbracio, Talebi, Saharia, Dimakis, Milanfar, "Deblurring via Stochastic
Refinement", CVPR 2022 (no official code). Predictor g: U-Net, channel multipliers
(1, 2, 3, 4) from 64; denoiser f: (1, 2, 3, 4) from 32, conditioned on y and the
continuous noise level; both trained jointly by the denoising objective
(`jaxir.diffusion.dvsr`). The paper reports LPIPS, NIQE, FID, KID, PSNR and SSIM on
GoPro and HIDE.

Not stated in the paper and chosen here (each a config key): 256x256 crops with
flips, batch 8, Adam lr 1e-4 with 10k warmup steps then constant, 1M steps, EMA
0.9999, L1 on ε, the SR3 training schedule (linear β 1e-6..1e-2, T = 2000). Evaluation
during training scores the deterministic g(y); `jaxir restore --samples K` runs
Algorithm 1 and the K-sample average ("Ours-SA").
"""
from experiments.base import base_config, tfds_source


def get_config(arg: str | None = None):
    if arg:  # no variants: any argument would escape the recipe check (tests/test_recipes.py)
        raise ValueError(f"dvsr_gopro takes no argument, got {arg!r}")
    c = base_config()
    c.model.name = "dvsr"
    c.model.kwargs = {"predictor_channels": 64, "predictor_mult": [1, 2, 3, 4], "denoiser_channels": 32,
                      "denoiser_mult": [1, 2, 3, 4], "num_res_blocks": 2, "prediction": "epsilon"}
    c.data.train = tfds_source("gopro", "train")
    c.data.eval = tfds_source("gopro", "test")
    c.data.crop_size = 256
    c.data.batch_size = 8
    # training_outputs returns (f's ε prediction, ε): the loss compares the two.
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    c.optim.update({"lr": 1e-4, "weight_decay": 0.0, "schedule": "constant", "warmup_steps": 10_000,
                    "ema_decay": 0.9999})
    c.train.update({"num_steps": 1_000_000, "log_every": 100, "eval_every": 50_000, "ckpt_every": 10_000})
    c.eval.convention = "gopro"
    return c
