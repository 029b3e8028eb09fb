"""Stripformer, motion deblurring on GoPro, in the paper's two stages: `:pretrain` (default), `:finetune`.

Tsai et al., "Stripformer: a Strip Transformer for Fast Image Deblurring", ECCV 2022;
reproduces Table 1 (GoPro: 33.08 dB PSNR, 0.962 SSIM).

Recipe from the official repo pp00704831/Stripformer-ECCV-2022- (commit 9efba88):
  pretrain: config/config_Stripformer_pretrained.yaml, train_Stripformer_pretrained.py:
            3000 epochs of 256x256 random crops, batch 8.
  finetune: config/config_Stripformer_gopro.yaml, train_Stripformer_gopro.py:
            1000 more epochs of 512x512 crops, batch 8, starting from the pretrained
            weights with a fresh optimizer and schedule: pass the pretrain
            workdir as --config.train.init_from.
  Both: Adam lr 1e-4 (no weight decay, no clipping), cosine annealing to 1e-7 over the
  stage (CosineAnnealingLR, T_max = the stage's epochs); flips and rot90 ('geometric'
  scope); seed 666. An epoch is ceil(2103 / 8) = 263 iterations (DataLoader with
  drop_last=False over the 2103 GoPro training pairs), validation every 30 epochs.
  The network sees images shifted to [-0.5, 0.5] and its output is shifted back
  (aug.get_normalize, predict_GoPro_test_results.py): model kwarg input_offset=0.5.

Loss: the official Stripformer_Loss is Charbonnier (eps 1e-3) + 0.05 * edge loss
(Charbonnier between one-level Laplacian-pyramid residuals, 5-tap Gaussian
[.05, .25, .4, .25, .05], replicate padding) + 0.0005 * a contrastive loss on VGG19
features (restored-to-sharp over restored-to-blurred L1, masked to blurred regions).
This config has the Charbonnier and edge terms; the contrastive term is not
reproduced (it needs ImageNet VGG19 weights, which jaxir does not ship, and the
blurred input inside the loss).
"""
import math

import ml_collections

GOPRO_TRAIN_PAIRS = 2103
BATCH_SIZE = 8
STEPS_PER_EPOCH = math.ceil(GOPRO_TRAIN_PAIRS / BATCH_SIZE)
# stage -> (crop side, epochs)
STAGES = {"pretrain": (256, 3000), "finetune": (512, 1000)}
ARGS = tuple(STAGES)  # paper config names (jaxir.paper_configs)


def get_config(arg=None):
    stage = arg or "pretrain"
    if stage not in STAGES:
        raise ValueError(f"stripformer_gopro argument must be one of {tuple(STAGES)}, got {arg!r}")
    crop, epochs = STAGES[stage]
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict(dict(name="stripformer", kwargs=dict(
        channels=[64, 128, 320], decoder_dim=192, heads=5, decoder_heads=3, input_offset=0.5,
    )))

    config.data = ml_collections.ConfigDict()
    features = ["input", "target"]
    config.data.train = dict(source="tfds", kwargs=dict(name="gopro", split="train", features=features))
    config.data.eval = dict(source="tfds", kwargs=dict(name="gopro", split="test", features=features))
    config.data.crop_size = crop
    config.data.batch_size = BATCH_SIZE
    config.data.augment = True
    config.data.workers = 8
    config.data.eval_batch_size = 1

    config.loss = ml_collections.ConfigDict()
    config.loss.terms = [dict(name="charbonnier", weight=1.0, eps=1e-3), dict(name="edge", weight=0.05, eps=1e-3)]

    config.optim = ml_collections.ConfigDict()
    config.optim.lr = 1e-4
    config.optim.b1 = 0.9
    config.optim.b2 = 0.999
    config.optim.weight_decay = 0.0
    config.optim.schedule = "cosine"
    config.optim.warmup_steps = 0
    config.optim.min_lr = 1e-7
    config.optim.clip_norm = 0.0
    config.optim.ema_decay = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.num_steps = epochs * STEPS_PER_EPOCH
    # Finetune starts from the pretrain stage's final weights: --config.train.init_from=<its workdir>.
    config.train.init_from = ""
    config.train.seed = 666
    config.train.log_every = 1000
    config.train.eval_every = 30 * STEPS_PER_EPOCH
    config.train.ckpt_every = 30 * STEPS_PER_EPOCH
    config.train.keep_checkpoints = 2
    config.train.compute_dtype = "float32"
    config.train.param_sharding = "replicated"
    config.train.nan_policy = "skip"

    config.eval = ml_collections.ConfigDict(dict(convention="gopro"))
    return config
