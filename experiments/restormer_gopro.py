"""Restormer, motion deblurring on GoPro.

Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image
Restoration", CVPR 2022; reproduces Table 2 (GoPro: 32.92 dB PSNR, 0.961 SSIM).

Recipe from the official options file swz30/Restormer
Motion_Deblurring/Options/Deblurring_Restormer.yml (commit df766d5):
  - Restormer with dim 48, blocks [4, 6, 6, 8], 4 refinement blocks, heads [1, 2, 4, 8],
    GDFN expansion 2.66, no bias, WithBias LayerNorm (26.13M parameters).
  - 300k iterations of progressive learning: patch sizes [128, 160, 192, 256, 320, 384]
    for [92k, 64k, 48k, 36k, 36k, 24k] iterations with per-GPU batches [8, 5, 4, 2, 1, 1]
    on 8 GPUs, i.e. global batches [64, 40, 32, 16, 8, 8] (paper Sec. 4: "batch size 64
    at 128x128 ... (384^2, 8)"); jaxir's batch sizes are global.
  - Random flips and rot90 (geometric_augs: true); L1 loss, weight 1.
  - AdamW lr 3e-4, betas (0.9, 0.999), weight decay 1e-4; gradient norm clipped at 0.01
    (use_grad_clip: true -> clip_grad_norm_(params, 0.01) in image_restoration_model.py).
  - LR: BasicSR CosineAnnealingRestartCyclicLR with periods [92k, 208k] and eta_mins
    [3e-4, 1e-6]: constant 3e-4 for 92k iterations, then cosine from 3e-4 to 1e-6 over 208k.
  - Seed 100; validation and checkpoints every 4k iterations.

The official loader random-crops pre-extracted 512x512 GoPro crops (generate_patches_gopro.py);
jaxir crops the full training frames directly. Evaluated on the GoPro test set with the
'gopro' metric convention (MATLAB-style PSNR/SSIM on uint8 images).
"""
from experiments.base import base_config, tfds_source

RESTORMER_KWARGS = dict(
    inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
    heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias",
    dual_pixel_task=False,
)
# Iterations per stage (not cumulative), patch side, global batch (8 GPUs x per-GPU batch).
PROGRESSIVE = dict(
    milestones=[92000, 64000, 48000, 36000, 36000, 24000],
    patch_sizes=[128, 160, 192, 256, 320, 384],
    batch_sizes=[64, 40, 32, 16, 8, 8],
)


def restormer_recipe(model_kwargs: dict, dataset: str, features: list[str], convention: str):
    """The training recipe all Restormer options files share (progressive patches, AdamW, L1, cyclic cosine)."""
    c = base_config()
    c.model.name = "restormer"
    c.model.kwargs = dict(model_kwargs)
    c.data.train = tfds_source(dataset, "train", features=features)
    c.data.eval = tfds_source(dataset, "test", features=features)
    c.data.progressive = dict(PROGRESSIVE)
    # The first stage's sizes, for anything that reads a single crop/batch (e.g. parameter init).
    c.data.crop_size = PROGRESSIVE["patch_sizes"][0]
    c.data.batch_size = PROGRESSIVE["batch_sizes"][0]
    c.data.augment = True
    c.data.dual_pixel = False
    c.data.workers = 8
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    c.optim.update({"lr": 3e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 1e-4, "warmup_steps": 0,
                    "clip_norm": 0.01, "ema_decay": 0.0})
    c.optim.schedule = "cosine_restarts"  # BasicSR CosineAnnealingRestartCyclicLR
    c.optim.periods = [92000, 208000]
    c.optim.restart_weights = [1.0, 1.0]
    c.optim.eta_mins = [3e-4, 1e-6]
    c.train.update({"num_steps": sum(PROGRESSIVE["milestones"]), "seed": 100, "log_every": 1000,
                    "eval_every": 4000, "ckpt_every": 4000})
    c.eval.convention = convention
    return c


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"restormer_gopro takes no argument, got {arg!r}")
    return restormer_recipe(RESTORMER_KWARGS, "gopro", ["input", "target"], "gopro")
