"""Demo: a small NAFNet learns to remove camera shake and noise from the photos bundled with
scikit-image / scikit-learn, evaluated on held-out photos. Minutes on a 2-core CPU.

    jaxir demo --workdir runs/demo            # or: jaxir train --config experiments/nafnet_demo.py ...

Degradation is synthesised on device for every crop: a random camera-shake trajectory
kernel (motion_blur) then Gaussian noise of sigma 25/255. On held-out photos the
restoration gains about 6.5 dB PSNR over the degraded input (measured at 600 steps).
"""
from experiments.base import base_config


def get_config(arg=None):
    if arg:
        raise ValueError(f"nafnet_demo takes no argument, got {arg!r}")
    c = base_config()
    c.model.name = "nafnet"
    c.model.kwargs = {"width": 16, "enc_blk_nums": [1, 1, 1, 2], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1]}

    c.data.train = {"source": "bundled", "kwargs": {"split": "train", "heldout": 3}}
    c.data.eval = {"source": "bundled", "kwargs": {"split": "heldout", "heldout": 3}}
    c.data.crop_size = 64
    c.data.batch_size = 8
    c.data.degradation = [
        {"name": "motion_blur", "kernel_size": 15, "length": [3.0, 10.0]},
        {"name": "gaussian_noise", "sigma": 25 / 255},
    ]

    c.loss.terms = [{"name": "psnr", "weight": 1.0}]  # NAFNet's PSNR loss

    c.optim.update({"lr": 2e-3, "b1": 0.9, "b2": 0.9, "weight_decay": 1e-4, "schedule": "cosine",
                    "warmup_steps": 50, "min_lr": 1e-5, "clip_norm": 1.0, "ema_decay": 0.99})
    c.train.update({"num_steps": 600, "log_every": 50, "eval_every": 300, "ckpt_every": 150, "num_samples": 3})
    return c
