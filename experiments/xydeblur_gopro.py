"""XYDeblur on GoPro motion deblurring.

Ji, Lee, Chu, Kim, Jang, "XYDeblur: Divide and Conquer for Single Image
Deblurring", CVPR 2022, Table 1 (GoPro, 4.92M parameters). Recipe from the
official main.py/train.py: 256x256 crops (MIMO-UNet's loader: random crop and
horizontal flip), batch 4, Adam lr 1e-4 without weight decay, 3000 epochs with
the lr halved every 500 epochs, L1 loss on the final output only (index 2, the
sum of both decoder passes plus the input). GoPro train has 2103 pairs, so an
epoch is 526 steps at batch 4.
"""
from experiments.base import base_config, tfds_source

STEPS_PER_EPOCH = 2103 // 4 + 1


def get_config(arg: str | None = None):
    if arg:
        raise ValueError(f"xydeblur_gopro takes no argument, got {arg!r}")
    c = base_config()
    c.model.name = "xydeblur"
    c.model.kwargs = {"base_channel": 32, "num_res_enc": 6, "num_res_dec": 6}
    c.data.train = tfds_source("gopro", "train")
    c.data.eval = tfds_source("gopro", "test")
    c.data.crop_size = 256
    c.data.batch_size = 4
    c.data.augment = "hflip"
    c.loss.terms = [{"name": "l1", "weight": 1.0, "outputs": [2]}]
    c.optim.update({"lr": 1e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "schedule": "multistep",
                    "milestones": [500 * k * STEPS_PER_EPOCH for k in range(1, 6)], "gamma": 0.5})
    c.train.update({"num_steps": 3000 * STEPS_PER_EPOCH, "log_every": 100, "eval_every": 100 * STEPS_PER_EPOCH,
                    "ckpt_every": 50 * STEPS_PER_EPOCH})
    c.eval.convention = "gopro"
    return c
