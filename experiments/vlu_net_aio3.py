"""VLU-Net, all-in-one restoration on the 3-task protocol (denoise sigma 15/25/50, derain, dehaze).

Zeng, Wang, Chen, Su, Liu. "Vision-Language Gradient Descent-driven All-in-One Deep
Unfolding Networks", CVPR 2025; reproduces the 3-task table (CBSD68 sigma 15/25/50,
Rain100L, SOTS outdoor). Evaluate with `jaxir eval --benchmark allinone3`.

Recipe from the official code xianggkl/VLU-Net (commit 8c2f7a7): train.py,
utils/dataset_utils_clip.py, utils/schedulers.py, net/clip.py:
  - `vlu_net_clip`: VLUNet (dim 48, blocks [4, 6, 6, 8], 4 refinement blocks, heads
    [1, 2, 4, 8], GDFN 2.66, no bias) fed the degradation vector of a frozen
    open_clip ViT-B/32 (laion2b_s34b_b79k) + fine-tuned adapter, computed from the
    degraded crop resized to 224 (bicubic) and normalised. train.py's --de_dim default
    and the README's 3-task test command: de_dim 7.
  - The extractor's weights: method 'vlu' with --config.method.kwargs.clip=<open_clip
    ViT-B-32 laion2b_s34b_b79k open_clip_pytorch_model.bin> and
    --config.method.kwargs.adapter=<pretrained_ckpt/clip_tuned.pth> (or the adapter a
    `vlu_net_clip_align` run fine-tuned); the method keeps them frozen.
  - Data: PromptTrainDataset, the 'aio3' mixture with VLU-Net's repeats (those of
    PromptIR): denoise x 3 per sigma, Rain100L x 120, dehaze x 1, counted with
    PromptIR's lists (5144, 200, 72135).
  - 128x128 random crops, one of 7 flips/rot90s (random_augmentation).
  - Batch 4 per GPU on 8 GPUs = global 32; 200 epochs.
  - L1 loss. AdamW lr 2e-4 (torch defaults); LinearWarmupCosineAnnealingLR(warmup 15,
    max_epochs=200) stepped per epoch: the rate reaches 0 after the last epoch.
Differences: jaxir's warm-up and cosine move every step, not every epoch.
"""
from experiments.base import DEFAULT_DATA_DIR, base_config
from experiments.promptir_aio3 import SAMPLES_PER_EPOCH

GPUS, BATCH_PER_GPU = 8, 4
GLOBAL_BATCH = GPUS * BATCH_PER_GPU
EPOCHS, WARMUP_EPOCHS = 200, 15
VLU_NET_KWARGS = dict(de_dim=7, inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
                      num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, use_bias=False)


def epoch_steps(samples: int) -> int:
    """Lightning's DDP sampler pads the epoch to a multiple of the GPUs; each GPU's loader drops its last batch."""
    return -(-samples // GPUS) // BATCH_PER_GPU


def vlu_recipe(protocol: str, samples_per_epoch: int):
    c = base_config()
    c.model.name = "vlu_net_clip"
    c.model.kwargs = dict(VLU_NET_KWARGS)
    c.method = {"name": "vlu", "kwargs": {"clip": "", "adapter": ""}}
    c.data.train = {"source": "mixture", "kwargs": {"protocol": protocol, "data_dir": DEFAULT_DATA_DIR,
                                                    "weighting": "vlu_net"}}
    c.data.eval = None  # the protocol's test sets: jaxir eval --benchmark allinone3|allinone5
    c.data.crop_size = 128
    c.data.batch_size = GLOBAL_BATCH
    c.data.augment = True
    c.data.workers = 8
    spe = epoch_steps(samples_per_epoch)
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.01, "schedule": "cosine",
                    "warmup_steps": WARMUP_EPOCHS * spe, "min_lr": 0.0, "clip_norm": 0.0, "ema_decay": 0.0})
    c.train.update({"num_steps": EPOCHS * spe, "seed": 0, "log_every": 1000, "eval_every": 0,
                    "ckpt_every": 5 * spe})
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    return c


def get_config(arg=None):
    if arg not in (None, ""):
        raise ValueError(f"vlu_net_aio3 takes no argument, got {arg!r}")
    return vlu_recipe("aio3", SAMPLES_PER_EPOCH)
