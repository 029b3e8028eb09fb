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

The official dual-pixel loader reads the 16-bit PNGs; jaxir's 'dpdd' TFDS records
are 8-bit (see data_pipelines/builders/defocus.py). Evaluated on the DPDD test split
with the 'dpdd' convention.
"""
import ml_collections

VARIANTS = ("dual", "single")
PROGRESSIVE = dict(
    milestones=[92000, 64000, 48000, 36000, 36000, 24000],
    patch_sizes=[128, 160, 192, 256, 320, 384],
    batch_sizes=[64, 40, 32, 16, 8, 8],
)


def get_config(arg=None):
    variant = arg or "dual"
    if variant not in VARIANTS:
        raise ValueError(f"restormer_dpdd argument must be one of {VARIANTS}, got {arg!r}")
    dual = variant == "dual"
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict(dict(name="restormer", kwargs=dict(
        inp_channels=6 if dual else 3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
        num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, use_bias=False,
        layer_norm_type="WithBias", dual_pixel_task=dual,
    )))

    config.data = ml_collections.ConfigDict()
    # Dual-pixel: the pipeline concatenates left and right into the 6-channel 'input'.
    features = ["input_left", "input_right", "target"] if dual else ["input", "target"]
    config.data.train = dict(source="tfds", kwargs=dict(name="dpdd", split="train", features=features))
    config.data.eval = dict(source="tfds", kwargs=dict(name="dpdd", split="test", features=features))
    config.data.dual_pixel = dual
    config.data.progressive = dict(PROGRESSIVE)
    config.data.crop_size = PROGRESSIVE["patch_sizes"][0]
    config.data.batch_size = PROGRESSIVE["batch_sizes"][0]
    config.data.augment = True
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

    config.eval = ml_collections.ConfigDict(dict(convention="dpdd"))
    return config
