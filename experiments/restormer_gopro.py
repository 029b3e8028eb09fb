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
import ml_collections

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


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"restormer_gopro takes no argument, got {arg!r}")
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict(dict(name="restormer", kwargs=dict(RESTORMER_KWARGS)))

    config.data = ml_collections.ConfigDict()
    features = ["input", "target"]
    config.data.train = dict(source="tfds", kwargs=dict(name="gopro", split="train", features=features))
    config.data.eval = dict(source="tfds", kwargs=dict(name="gopro", split="test", features=features))
    config.data.progressive = dict(PROGRESSIVE)
    # The first stage's sizes, for anything that reads a single crop/batch (e.g. parameter init).
    config.data.crop_size = PROGRESSIVE["patch_sizes"][0]
    config.data.batch_size = PROGRESSIVE["batch_sizes"][0]
    config.data.augment = True
    config.data.dual_pixel = False
    config.data.workers = 8
    config.data.eval_batch_size = 1

    config.loss = ml_collections.ConfigDict()
    config.loss.terms = [dict(name="l1", weight=1.0)]

    config.optim = ml_collections.ConfigDict()
    config.optim.lr = 3e-4
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.weight_decay = 1e-4
    config.optim.schedule = "cosine_restarts"  # BasicSR CosineAnnealingRestartCyclicLR
    config.optim.periods = [92000, 208000]
    config.optim.restart_weights = [1.0, 1.0]
    config.optim.eta_mins = [3e-4, 1e-6]
    config.optim.warmup_steps = 0
    config.optim.clip_norm = 0.01
    config.optim.ema_decay = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = sum(PROGRESSIVE["milestones"])
    config.train.seed = 100
    config.train.log_every = 1000
    config.train.eval_every = 4000
    config.train.ckpt_every = 4000
    config.train.keep_checkpoints = 2
    config.train.compute_dtype = "float32"
    config.train.param_sharding = "replicated"
    config.train.nan_policy = "skip"

    config.eval = ml_collections.ConfigDict(dict(convention="gopro"))
    return config
