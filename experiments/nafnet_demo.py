"""Demo: a small NAFNet learns to remove camera shake and noise from the photos bundled with
scikit-image / scikit-learn, evaluated on held-out photos. Runs on a laptop CPU in minutes.

    jaxir demo --workdir runs/demo            # or: jaxir train --config experiments/nafnet_demo.py ...

Degradation is synthesised on device for every crop: a random camera-shake trajectory
kernel (motion_blur) then Gaussian noise of sigma 25/255.
"""
import ml_collections


def get_config(arg=None):
    c = ml_collections.ConfigDict()

    c.model = ml_collections.ConfigDict()
    c.model.name = "nafnet"
    c.model.kwargs = {"width": 16, "enc_blk_nums": [1, 1, 1, 2], "middle_blk_num": 1,
                      "dec_blk_nums": [1, 1, 1, 1]}

    c.data = ml_collections.ConfigDict()
    c.data.train = {"source": "bundled", "kwargs": {"split": "train", "heldout": 3}}
    c.data.eval = {"source": "bundled", "kwargs": {"split": "heldout", "heldout": 3}}
    c.data.crop_size = 64
    c.data.batch_size = 8
    c.data.augment = True
    c.data.degradation = [
        {"name": "motion_blur", "kernel_size": 15, "length": [3.0, 10.0]},
        {"name": "gaussian_noise", "sigma": 25 / 255},
    ]
    c.data.workers = 0
    c.data.eval_batch_size = 1
    c.data.eval_seed = 0

    c.loss = ml_collections.ConfigDict()
    c.loss.terms = [{"name": "psnr", "weight": 1.0}]  # NAFNet's PSNR loss
    c.loss.multiscale = "bilinear"

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 2e-3
    c.optim.b1 = 0.9
    c.optim.b2 = 0.9
    c.optim.eps = 1e-8
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 50
    c.optim.min_lr = 1e-5
    c.optim.milestones = []
    c.optim.gamma = 0.5
    c.optim.clip_norm = 1.0
    c.optim.ema_decay = 0.99

    c.train = ml_collections.ConfigDict()
    c.train.num_steps = 600
    c.train.seed = 0
    c.train.log_every = 50
    c.train.eval_every = 300
    c.train.ckpt_every = 150
    c.train.keep_checkpoints = 2
    c.train.compute_dtype = "float32"
    c.train.param_sharding = "replicated"
    c.train.fsdp_min_size = 2**16
    c.train.nan_policy = "skip"
    c.train.num_samples = 3

    c.eval = ml_collections.ConfigDict()
    c.eval.convention = ""  # '' = PSNR/SSIM on RGB in [0, 1]; or a jaxir.metrics convention name
    return c
