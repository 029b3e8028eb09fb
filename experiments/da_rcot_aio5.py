"""DA-RCOT on the 5-task all-in-one protocol (denoise σ=25, derain, dehaze, deblur, low light).

Tang et al., "Degradation-Aware Residual-Conditioned Optimal Transport for Unified Image
Restoration" (DA-RCOT), TPAMI 2025; reproduces the five-degradation table
(`jaxir eval --benchmark allinone5`).

Recipe from xl-tang3/DA-RCOT README ("5 Degradation example") and trainer.py (commit 9a42bf4):
  python trainer.py --batchSize=2 --nEpochs=55 --pairnum=10000000 --Sigma=10000 --sigma=1
    --de_type derain dehaze denoise_25 deblur lowlight --patch_size=128 --backbone=MRCNet --step=15
  - MRCNet(decoder=True) (52,336,698 parameters); F_net on the 128x128 patches.
  - Data: util/universal_dataset.py repeats (the 'da_rcot' weighting of data_pipelines.mixtures):
    denoise_25 (BSD400 + WED, 5144) x5, derain (Rain100L train, 200) x360, dehaze (RESIDE OTS
    list, 72135) x1, deblur (GoPro train, 2103) x35, lowlight (LOL train, 485) x150: 316,210
    samples an epoch, batch 2 -> 158,105 steps an epoch; 55 epochs.
  - RMSprop (torch defaults) for both networks: F_net lr 1e-4, the map lr 5e-5 (lr / 2); both
    x0.1 every 15 epochs (lr * 0.1 ** ((epoch - 1) // 15)).
  - Objective: jaxir.methods.ot (potential step + gradient penalty 10, then the map with the
    Fourier-residual transport cost, sigma = 1, the residual-embedding contrast (x0.1) and
    the paired L1 term, Sigma = 10000). The config's loss.terms are not used by this method.
"""
from experiments.base import DEFAULT_DATA_DIR, base_config

SAMPLES_PER_EPOCH = 5144 * 5 + 200 * 360 + 72135 * 1 + 2103 * 35 + 485 * 150
BATCH, EPOCHS, STEP_EPOCHS, PATCH, LR = 2, 55, 15, 128, 1e-4
STEPS_PER_EPOCH = SAMPLES_PER_EPOCH // BATCH


def get_config(arg: str | None = None):
    if arg not in (None, ""):
        raise ValueError(f"da_rcot_aio5 takes no argument, got {arg!r}")
    milestones = [k * STEP_EPOCHS * STEPS_PER_EPOCH for k in range(1, (EPOCHS - 1) // STEP_EPOCHS + 1)]
    c = base_config()
    c.model.name = "da_rcot"
    c.model.kwargs = {"decoder": True}
    c.data.train = {"source": "mixture",
                    "kwargs": {"protocol": "aio5", "data_dir": DEFAULT_DATA_DIR, "weighting": "da_rcot"}}
    c.data.eval = None  # scored by `jaxir eval --benchmark allinone5`
    c.data.crop_size, c.data.batch_size, c.data.augment = PATCH, BATCH, True
    c.loss.terms = [{"name": "l1", "weight": 1.0, "outputs": [0]}]  # replaced by the method's objective
    c.method = {"name": "rcot", "kwargs": {
        "patch_size": PATCH, "lr": LR, "milestones": milestones, "gamma": 0.1, "sigma": 1.0, "Sigma": 10000.0,
        "contrast_weight": 0.1, "gp_weight": 10.0, "paired": True}}
    c.optim.update({"optimizer": "rmsprop", "lr": LR / 2, "rms_decay": 0.99, "eps": 1e-8, "schedule": "multistep",
                    "milestones": milestones, "gamma": 0.1, "warmup_steps": 0, "clip_norm": 0.0, "ema_decay": 0.0})
    c.train.update({"num_steps": EPOCHS * STEPS_PER_EPOCH, "log_every": 1000, "ckpt_every": STEPS_PER_EPOCH})
    return c
