"""VLU-Net's CLIP adapter fine-tuning on degradation descriptions (`:aio5`, default, or `:aio3`).

Official: xianggkl/VLU-Net CLIP_degradation_extractor.ipynb (commit 8c2f7a7) with
utils/clip_dataset.py. A frozen open_clip ViT-B/32 (laion2b_s34b_b79k: pass its
open_clip_pytorch_model.bin as --config.method.kwargs.clip) gets an adapter MLP on
its image and on its text features (DA_adapter, LeakyReLU between the layers); the
logits of a degraded crop against the task descriptions ("image with noise", "image
with many noise", "image with large amount of noise", "image with rain", "image with
haze" [, "image with blur", "image with low light"]) are adapted image features @
adapted text features^T, trained with cross-entropy on the task label (method
'vlu_align', loss target 'task').
  - Data: TrainDataset_forIR over the NHRBL (5-task) or NHR (3-task) lists: each x 1,
    Rain100L x 120; 128x128 random crops (RandomCropPair), no flips (is_aug False),
    counted with PromptIR's lists (5144, 200, 72135; GoPro 2103; LOLv1 485).
  - Batch 32 on one GPU (shuffle, last partial batch kept); 100 epochs.
  - Adam lr 1e-5, betas (0.9, 0.999), eps 1e-8, constant rate.
The trained image adapter is `ad_imageEncoder.adapter_*`, laid out as vlu_net_clip's
`model_degradation.ad_imageEncoder`; handing it to the VLU-Net configs takes the
official `clip_tuned.pth` format (method 'vlu' `adapter`), which jaxir does not write.
"""
from experiments.base import DEFAULT_DATA_DIR, base_config
from experiments.vlu_net_aio3 import VLU_NET_KWARGS

VARIANTS = ("aio5", "aio3")
BATCH, EPOCHS = 32, 100
SIZES = {"denoise": 5144, "derain": 200, "dehaze": 72135, "deblur": 2103, "lowlight": 485}


def samples_per_epoch(protocol: str) -> int:
    n = 3 * SIZES["denoise"] + 120 * SIZES["derain"] + SIZES["dehaze"]
    return n + (SIZES["deblur"] + SIZES["lowlight"] if protocol == "aio5" else 0)


def get_config(arg=None):
    protocol = arg or "aio5"
    if protocol not in VARIANTS:
        raise ValueError(f"vlu_net_clip_align takes one of {VARIANTS}, got {arg!r}")
    c = base_config()
    c.model.name = "vlu_net_clip"  # the CLIP configuration; the method trains the aligner built from it
    c.model.kwargs = dict(VLU_NET_KWARGS)
    c.method = {"name": "vlu_align", "kwargs": {"clip": "", "num_tasks": 7 if protocol == "aio5" else 5}}
    c.data.train = {"source": "mixture", "kwargs": {"protocol": protocol, "data_dir": DEFAULT_DATA_DIR,
                                                    "weighting": "vlu_net_clip"}}
    c.data.eval = None
    c.data.crop_size = 128
    c.data.batch_size = BATCH
    c.data.augment = False
    c.data.workers = 8
    spe = -(-samples_per_epoch(protocol) // BATCH)
    c.optim.update({"lr": 1e-5, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "schedule": "constant",
                    "warmup_steps": 0, "clip_norm": 0.0, "ema_decay": 0.0})
    c.train.update({"num_steps": EPOCHS * spe, "seed": 0, "log_every": 1000, "eval_every": 0,
                    "ckpt_every": 10 * spe})
    c.loss.terms = [{"name": "cross_entropy", "weight": 1.0}]
    c.loss.target = "task"
    return c
