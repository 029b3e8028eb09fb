"""AirNet on the 3-task all-in-one protocol (denoise σ 15/25/50, derain, dehaze).

Li, Zhang, Pan, Peng, Tang, Jin, "All-In-One Image Restoration for Unknown
Corruption", CVPR 2022; reproduces the all-in-one rows of Table 1 (one model for
BSD68 σ 15/25/50, Rain100L, SOTS outdoor; `jaxir eval --benchmark allinone3`).

Recipe from XLearning-SCU/2022-CVPR-AirNet option.py and train.py (commit bedea82):
  - batch = len(de_type) = 5 (one record of each of the 5 degradation labels, the
    'airnet' mixture weighting), 128x128 random crops, random flips/rot90;
    an epoch is 400 * 5 samples = 400 steps.
  - Adam (no weight decay), 1000 epochs in two stages, started as two runs:
    `:encoder` — the first 100 epochs (40k steps) train only the contrastive
      encoder (CBDE) with InfoNCE; lr 1e-3, x0.1 from epoch 61 (the official sets
      lr = 1e-3 * 0.1 ** (epoch // 60) after each epoch);
    `:joint` — the other 900 epochs (360k steps): L1 + 0.1 * InfoNCE, lr 1e-4 halved
      every 125 epochs from joint epoch 126 (lr = 1e-4 * 0.5 ** ((epoch - 100) // 125));
      start it with --config.train.init_from=<encoder workdir> (the MoCo queue carries over).
  - MoCo: queue of 5 * 256 keys, momentum 0.999, temperature 0.07 (jaxir.methods.moco).
"""
from experiments.base import DEFAULT_DATA_DIR, base_config

STEPS_PER_EPOCH = 400  # TrainDataset.__len__ = 400 * len(de_type), batch len(de_type)
ENCODER_EPOCHS, TOTAL_EPOCHS = 100, 1000
BATCH = 5
VARIANTS = ["joint", "encoder"]  # the two official stages, run one after the other (default: joint)


def get_config(arg: str | None = None):
    stage = arg or "joint"
    if stage not in VARIANTS:
        raise ValueError(f"airnet_aio3 takes 'encoder' or 'joint', got {arg!r}")
    c = base_config()
    c.model.name = "airnet"
    c.model.kwargs = {"batch_size": BATCH}
    c.data.train = {"source": "mixture",
                    "kwargs": {"protocol": "aio3", "data_dir": DEFAULT_DATA_DIR, "weighting": "airnet"}}
    c.data.eval = None  # scored by `jaxir eval --benchmark allinone3`
    c.data.crop_size = 128
    c.data.batch_size = BATCH
    c.data.augment = True
    c.loss.terms = [{"name": "l1", "weight": 1.0}]
    c.method = {"name": "moco", "kwargs": {"stage": stage, "momentum": 0.999, "contrast_weight": 0.1}}
    c.optim.update({"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "schedule": "multistep",
                    "warmup_steps": 0, "clip_norm": 0.0, "ema_decay": 0.0})
    if stage == "encoder":
        epochs = ENCODER_EPOCHS
        c.optim.update({"lr": 1e-3, "gamma": 0.1, "milestones": [61 * STEPS_PER_EPOCH]})
    else:
        epochs = TOTAL_EPOCHS - ENCODER_EPOCHS
        c.optim.update({"lr": 1e-4, "gamma": 0.5,
                        "milestones": [j * STEPS_PER_EPOCH for j in range(126, epochs, 125)]})
    c.train.update({"num_steps": epochs * STEPS_PER_EPOCH, "log_every": STEPS_PER_EPOCH,
                    "ckpt_every": 50 * STEPS_PER_EPOCH})
    return c
