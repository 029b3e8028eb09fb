"""PromptIR, all-in-one restoration on the 3-task protocol (denoise sigma 15/25/50, derain, dehaze).

Potlapalli, Zamir, Khan, Khan. "PromptIR: Prompting for All-in-One Blind Image
Restoration", NeurIPS 2023; reproduces Table 1 (all-in-one: CBSD68 sigma 15/25/50,
Rain100L, SOTS outdoor). Evaluate with `jaxir eval --benchmark allinone3`.

Recipe from the official code va1shn9v/PromptIR (commit 106159a): options.py,
train.py, utils/dataset_utils.py:
  - PromptIR(decoder=True): dim 48, blocks [4, 6, 6, 8], 4 refinement blocks,
    heads [1, 2, 4, 8], GDFN 2.66, no bias, WithBias LayerNorm, prompts 64/32/16
    (35.59M parameters).
  - Data: PromptTrainDataset, the 'aio3' mixture with PromptIR's weights: BSD400 +
    WED (5144 clean images) x 3 per sigma, noise synthesised on the fly; Rain100L
    train (200) x 120; RESIDE OTS (72135) x 1: 142,431 samples per epoch.
  - 128x128 random crops (images first cropped to a multiple of 16), random
    flips/rot90 (random_augmentation's 8 modes).
  - Batch 8 per GPU on 4 GPUs (options.py defaults) = global 32; 120 epochs =
    120 * floor(ceil(142431 / 4) / 8) = 534,120 steps (Lightning's DistributedSampler
    pads the epoch to 4 x 35,608; each GPU's loader drops its last partial batch).
  - L1 loss. AdamW lr 2e-4 (torch defaults: betas (0.9, 0.999), weight decay
    0.01); LinearWarmupCosineAnnealingLR(warmup_epochs=15, max_epochs=150)
    stepped per epoch.
Differences: the official cosine is laid out over 150 epochs but training stops at
120 (the lr ends near 2.3e-5, not 0) and steps once per epoch; jaxir warms up over
15 epochs of steps and decays smoothly to min_lr 2.3e-5 at step 534,120.
"""
from experiments.base import DEFAULT_DATA_DIR, base_config

SAMPLES_PER_EPOCH = 5144 * 3 * 3 + 200 * 120 + 72135
GPUS, BATCH_PER_GPU = 4, 8
GLOBAL_BATCH = GPUS * BATCH_PER_GPU


def epoch_steps(samples: int) -> int:
    """Lightning's DDP sampler pads the epoch to a multiple of the GPUs; each GPU's loader drops its last batch."""
    return -(-samples // GPUS) // BATCH_PER_GPU


EPOCH_STEPS = epoch_steps(SAMPLES_PER_EPOCH)
PROMPTIR_KWARGS = dict(
    inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8], num_refinement_blocks=4,
    heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias", decoder=True,
    prompt_sizes=[64, 32, 16],
)


def cosine_at(epoch: float, warmup: int = 15, max_epochs: int = 150, lr: float = 2e-4) -> float:
    """The official LinearWarmupCosineAnnealingLR (eta_min 0) after `epoch` epochs."""
    import math

    return 0.5 * lr * (1 + math.cos(math.pi * (epoch - warmup) / (max_epochs - warmup)))


def aio_recipe(protocol: str, weighting: str, samples_per_epoch: int, epochs: int = 120):
    """The optimisation shared by the all-in-one recipes of PromptIR and MoCE-IR (Lightning, AdamW 2e-4)."""
    c = base_config()
    c.data.train = {"source": "mixture", "kwargs": {"protocol": protocol, "data_dir": DEFAULT_DATA_DIR,
                                                    "weighting": weighting}}
    c.data.eval = None  # the protocol's test sets: jaxir eval --benchmark allinone3|allinone5
    c.data.crop_size = 128
    c.data.batch_size = GLOBAL_BATCH
    c.data.augment = True
    c.data.workers = 8
    steps_per_epoch = epoch_steps(samples_per_epoch)
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.01, "schedule": "cosine",
                    "warmup_steps": 15 * steps_per_epoch, "min_lr": cosine_at(epochs), "clip_norm": 0.0,
                    "ema_decay": 0.0})
    c.train.update({"num_steps": epochs * steps_per_epoch, "seed": 0, "log_every": 1000, "eval_every": 0,
                    "ckpt_every": 5 * steps_per_epoch})
    return c


def promptir_aio3():
    c = aio_recipe("aio3", "promptir", SAMPLES_PER_EPOCH)
    c.model.name = "promptir"
    c.model.kwargs = dict(PROMPTIR_KWARGS)
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    return c


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"promptir_aio3 takes no argument, got {arg!r}")
    return promptir_aio3()
