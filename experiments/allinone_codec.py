"""All-in-one image compression and restoration (Zeng, Li, Zheng, Xiong, WACV 2025): rate–distortion training
of jaxir.models.allinone_codec on degraded inputs against clean targets.

    jaxir train --config experiments/allinone_codec.py:allinone:0.0130 --workdir runs/aio-q4
    jaxir eval --config experiments/allinone_codec.py:allinone:0.0130 --workdir runs/aio-q4 --rd-curve rd.png
    jaxir compress photo.png photo.bin --config experiments/allinone_codec.py:allinone:0.0130 --workdir runs/aio-q4

Argument '<setting>:<λ>' (default 'allinone:0.0018'). Settings: the paper's degradations, synthesised from clean images on the fly
(config.data.train's `clean` source; the bundled photos unless set): 'noise' (Gaussian, σ in [15, 50]/255),
'rain' (the heavy-rain model T⊙(x+S)+(1−T)⊙A), 'haze' (atmospheric scattering), 'clean' (no degradation: the
paper keeps clean-image compression performance), and 'allinone' (a task mixture of clean, noise, rain and
haze, the all-in-one model). λ: the distortion weight of the objective
    L = λ · 255² · MSE(x̂, x_clean) + bpp + L_aux,
one model per λ (the RD curve's points). The λ values are CompressAI's MSE ladder for its hyperprior models
(quality 1-6); the paper's own λ values, training sets and schedule were not available (no official code):
see the recipes.toml block's reason. L_aux trains the entropy bottleneck's quantiles (CompressAI trains them
with a separate Adam at 1e-3; here one optimizer serves both, their gradients being disjoint).
"""
from experiments.base import base_config

LAMBDAS = ("0.0018", "0.0035", "0.0067", "0.0130", "0.0250", "0.0483")
SETTINGS = {
    "clean": [],
    "noise": [{"name": "gaussian_noise", "sigma": [15 / 255, 50 / 255]}],
    "rain": [{"name": "rain"}],
    "haze": [{"name": "haze"}],
}
VARIANTS = [f"{setting}:{lmbda}" for setting in ("allinone", *SETTINGS) for lmbda in LAMBDAS]
MODEL_KWARGS = {"N": 128, "M": 192, "stage_blocks": [2, 2, 2], "num_heads": 4, "window": 8,
                "num_representations": 5, "representation_size": 16, "representation_dim": 32}


def codec_config(setting: str, lmbda: float, model_kwargs: dict | None = None, clean: dict | None = None):
    c = base_config()
    c.model.name = "allinone_codec"
    c.model.kwargs = dict(model_kwargs or MODEL_KWARGS)
    if setting == "allinone":
        tasks = [{"name": name, "degradation": spec} for name, spec in SETTINGS.items()]
        c.data.train = {"source": "task_mixture", "kwargs": {"tasks": tasks, "clean": clean}}
        c.data.eval = {"source": "bundled", "kwargs": {"split": "heldout", "heldout": 3}}
        c.data.degradation = []
    else:
        c.data.train = clean or {"source": "bundled", "kwargs": {"split": "train", "heldout": 3}}
        c.data.eval = {"source": "bundled", "kwargs": {"split": "heldout", "heldout": 3}}
        c.data.degradation = list(SETTINGS[setting])
    c.data.crop_size = 256
    c.data.batch_size = 8
    c.loss.terms = [
        {"name": "l2", "weight": float(lmbda) * 255 ** 2, "label": "distortion"},
        {"name": "rate", "weight": 1.0},
        {"name": "aux", "key": "entropy_aux", "weight": 1.0, "label": "entropy_aux"},
    ]
    c.optim.update({"lr": 1e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0, "schedule": "cosine",
                    "warmup_steps": 0, "min_lr": 1e-6, "clip_norm": 1.0, "ema_decay": 0.0})
    c.train.update({"num_steps": 500_000, "log_every": 1000, "eval_every": 0, "ckpt_every": 10_000, "seed": 0})
    return c


def get_config(arg: str | None = None):
    arg = arg or VARIANTS[0]
    if arg not in VARIANTS:
        raise ValueError(f"allinone_codec takes '<setting>:<lambda>', one of {', '.join(VARIANTS)}; got {arg!r}")
    setting, _, lmbda = arg.partition(":")
    return codec_config(setting, float(lmbda))
