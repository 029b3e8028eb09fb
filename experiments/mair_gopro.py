"""MaIR (U-Net), motion deblurring on GoPro.

Li et al., "MaIR: A Locality- and Continuity-Preserving Mamba for Image Restoration",
CVPR 2025; reproduces the GoPro row of its motion-deblurring table.

Recipe from the official options file XLearning-SCU/2025-CVPR-MaIR
realDenoising/options/train/train_MaIR_MotionDeblur.yml (commit 2fb433e):
  - MaIRUNet dim 48, blocks [4, 6, 6, 8], 4 refinement blocks, ssm_ratio 2, first-level MLP
    ratio 4 (flp_ratio), MLP ratio 1.5, scan_len 4, no bias (26,293,296 parameters).
  - 718,250 iterations of progressive learning: patches [128, 160, 192, 256] for
    [184k, 160k, 192k, 182.25k] iterations, per-GPU batches [4, 2, 1, 1] on 8 GPUs
    (global [32, 16, 8, 8]; jaxir's batch sizes are global); flips and rot90.
  - AdamW lr 3e-4, betas (0.9, 0.999), weight decay 1e-4; gradient norm clipped to 0.01
    (use_grad_clip, image_restoration_model.py); L1 loss.
  - CosineAnnealingRestartCyclicLR: periods [184k, 544k], eta_mins [3e-4, 1e-6]: constant
    3e-4, then cosine to 1e-6. Seed 100.

`:dehaze_its`, `:dehaze_ots` and `:derain` select the same class's dehazing/deraining
recipe (train_MaIR_ITS.yml / _OTS.yml / _R6K.yml: dim 24, blocks [2, 2, 3, 4], scan_len 8,
700k iterations at 256x256, batch 6 per GPU on num_gpu 2 (global 12), AdamW lr 2e-4,
periods [184k, 516k], eta_mins [2e-4, 1e-6]). The repository has no deraining options file:
R6K is RESIDE-6K, a dehazing mix; `:derain` trains that recipe on Rain13K (jaxir's choice,
a `deviation` row in experiments/recipes.toml).
"""
from experiments.base import base_config, tfds_source
from jaxir.models.mair import CONFIGS

TASKS = {
    # task: (config, train set, eval set, convention)
    "deblur": ("motion_deblur", ("gopro", "train"), ("gopro", "test"), "gopro"),
    "dehaze_its": ("dehaze", ("reside_its", "train"), ("sots_indoor", "test"), "sots_indoor"),
    "dehaze_ots": ("dehaze", ("reside_ots", "train"), ("sots_outdoor", "test"), "sots_outdoor"),
    "derain": ("derain", ("rain13k", "train"), ("rain100h", "test"), "rain100h"),
}
VARIANTS = list(TASKS)  # default first


def get_config(arg=None):
    task = arg or "deblur"
    if task not in TASKS:
        raise ValueError(f"mair_gopro takes one of {sorted(TASKS)}, got {arg!r}")
    model, train, evaluation, convention = TASKS[task]
    c = base_config()
    c.model.name = "mair_unet"
    c.model.kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIGS[model].items()}
    c.data.train = tfds_source(*train)
    c.data.eval = tfds_source(*evaluation)
    c.data.augment = True
    c.data.workers = 8
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    c.optim.update({"b1": 0.9, "b2": 0.999, "weight_decay": 1e-4, "warmup_steps": 0, "clip_norm": 0.01})
    c.optim.schedule = "cosine_restarts"
    c.optim.restart_weights = [1.0, 1.0]
    if task == "deblur":
        progressive = dict(milestones=[184000, 160000, 192000, 182250], patch_sizes=[128, 160, 192, 256],
                           batch_sizes=[32, 16, 8, 8])
        c.data.progressive = progressive
        c.data.crop_size, c.data.batch_size = 128, 32
        c.optim.lr = 3e-4
        c.optim.periods, c.optim.eta_mins = [184000, 544000], [3e-4, 1e-6]
        c.train.num_steps = sum(progressive["milestones"])
    else:
        c.data.crop_size, c.data.batch_size = 256, 12  # 6 per GPU x num_gpu 2
        c.optim.lr = 2e-4
        c.optim.periods, c.optim.eta_mins = [184000, 516000], [2e-4, 1e-6]
        c.train.num_steps = 700000
    c.train.update({"seed": 100, "log_every": 1000, "eval_every": 10000, "ckpt_every": 4000})
    c.eval.convention = convention
    return c
