"""MPMF-Net, all-in-one weather restoration on AWTD (haze, rain, rain + streaks, snow, low light).

Chen, Wen, et al., "Multi-Axis Prompt and Multi-Dimension Fusion Network for All-in-One
Weather-Degraded Image Restoration", AAAI 2025; reproduces the all-in-one table on the
AWTD test sets (FoggyCityscapes, RainCityscapes, RSCityscapes, SnowTrafficData,
LowLightTrafficData, RainDS-syn).

Recipe from chdwyb/MPMF-Net options.py and train.py (commit a9c511f):
  - MPMF-Net class defaults (3,303,308 parameters).
  - AWTD train/input + train/target pairs, 256x256 random crops with the 8 flip/rot90
    variants (datasets.py), batch 32; 400 epochs.
  - Adam lr 2e-4, CosineAnnealingLR(T_max=400 epochs, eta_min=1e-7).
  - Loss: L1(restored, target) + 0.04 * VGG16 perceptual loss (relu1_2/2_2/3_3 MSE,
    `vgg_perceptual`) + 0.1 * L1(INR output, target nearest-downsampled by 4).
  - Validation on RainDS-syn every 3 epochs (PSNR); data from the `awtd` builder.
`arg`: the number of training pairs in your AWTD copy (the official repository does
not state it), which fixes the steps of 400 epochs; without it the schedule assumes
100 steps per epoch.
"""
from experiments.base import base_config, tfds_source

EPOCHS, BATCH, CROP = 400, 32, 256


def get_config(arg: str | None = None):
    steps_per_epoch = int(arg) // BATCH if arg else 100  # DataLoader(drop_last=True)
    c = base_config()
    c.model.name = "mpmf_net"
    c.model.kwargs = {}
    # `jaxir build-dataset awtd --manual-dir <AWTD>`; the other test sets are splits 'test_<set>'.
    c.data.train = tfds_source("awtd", "train", features=["input", "target"])
    c.data.eval = tfds_source("awtd", "test_raindssyn", features=["input", "target"])
    c.data.crop_size, c.data.batch_size, c.data.augment = CROP, BATCH, True
    # Outputs: (restored, coarse INR output at 1/4); the INR target is nearest-downsampled (F.interpolate default).
    c.loss.terms = [{"name": "l1", "weight": 1.0, "outputs": [0]},
                    {"name": "vgg_perceptual", "weight": 0.04, "outputs": [0]},
                    {"name": "l1", "weight": 0.1, "outputs": [1], "label": "inr"}]
    c.loss.multiscale = "nearest"
    num_steps = EPOCHS * steps_per_epoch
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "schedule": "cosine",
                    "warmup_steps": 0, "min_lr": 1e-7, "clip_norm": 0.0, "ema_decay": 0.0})
    c.train.update({"num_steps": num_steps, "seed": 1234, "log_every": steps_per_epoch,
                    "eval_every": 3 * steps_per_epoch, "ckpt_every": 20 * steps_per_epoch})
    return c
