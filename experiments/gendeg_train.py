"""GenDeg: training the degradation generator (Rajagopalan, Nair, Patel, "GenDeg: Diffusion-based
degradation synthesis for generalizable all-in-one image restoration", CVPR 2025; sudraj2002/GenDeg
`configs/train.yaml`, `train.sh`, `edit_dataset.py`, `ldm/models/diffusion/ddpm_edit.py`).

The model (`gendeg`, `jaxir.diffusion.latent.gendeg.GenDegLDM`) is the paper's: SD 1.5's U-Net with 8
input channels (859.5M), SD's VAE and CLIP ViT-L/14 frozen, the μ/σ conditioner; ε-prediction MSE with
hybrid conditioning (noisy degraded latent ++ clean latent), 5% text / image / both dropout; AdamW 1e-4
(10x on stats_proj / cc_projection), LambdaLinearScheduler with no warm-up and f = 1 (a constant rate),
EMA 0.9999, 256² pairs with horizontal flips, 16 per GPU x 2 GPUs x 4 accumulated = 128 per update,
float32 (Lightning's default) with the U-Net checkpointed (`use_checkpoint`).

Data: the official pairs are `data/seeds.json` over the authors' GenIRData folder (not published in the
repository); this config assembles the part jaxir's TFDS builders cover, each record labelled with its
degradation (the prompt picked by the `gendeg` method): haze (RESIDE OTS, NH-HAZE, Dense-Haze), rain
(Rain13K), snow (Snow100K), snow + haze (CSD, prompted "snowy and hazy" as `edit_dataset.py` does),
motion blur (HIDE, RealBlur-J), low light (LOL v1 standing in for LOLv2). Missing (no builder): I-HAZE,
CityscapesFog, Rain1400, ORD, RainDS, RealRain1k, SPAC, CityscapesSnow, REDS, LOLv2, SID, Raindrop.
Datasets are mixed in proportion to their pairs (seeds.json lists every pair once per epoch).

Not as the official (README, latent diffusion): prompts use the caption "a photo" instead of per-image
BLIP-2 captions (train_csv.json); images are randomly cropped to 256² from full resolution instead of
resized to 256² (LANCZOS) first, so μ/σ are of the crop; the EMA has no (1+n)/(10+n) warm-up and also
averages the conditioner; the epoch count (2000 over seeds.json) becomes a step count.

Before training: `jaxir gendeg init v1-5-pruned-emaonly.ckpt --tokenizer CLIP_DIR --out INIT.msgpack`
(SD 1.5 weights, the U-Net's extra 4 input channels zero, as `init_from_ckpt`), then train with
--config.train.init_from=INIT.msgpack --config.method.kwargs.tokenizer=CLIP_DIR. Generation from the
result: `jaxir gendeg export` then `jaxir gendeg generate`.
"""
from experiments.base import base_config, tfds_source
from jaxir.diffusion.latent.gendeg import PAPER_KWARGS, prompt

# label -> prompt; then the builders read under each label (train splits)
PROMPTS = [prompt("haze"), prompt("rain"), prompt("snow"), "a photo in snowy and hazy conditions",
           prompt("blur"), prompt("lowlight")]
DATASETS = [("reside_ots", 0), ("nh_haze", 0), ("dense_haze", 0), ("rain13k", 1), ("snow100k", 2), ("csd", 3),
            ("hide", 4), ("realblur_j", 4), ("lol", 5)]


def get_config(arg: str | None = None):
    if arg:  # no variants: any argument would escape the recipe check (tests/test_recipes.py)
        raise ValueError(f"gendeg_train takes no argument, got {arg!r}")
    c = base_config()
    c.model.name = "gendeg"
    c.model.kwargs = {"unet_kwargs": dict(PAPER_KWARGS["unet"]), "vae_kwargs": dict(PAPER_KWARGS["vae"]),
                      "text_kwargs": dict(PAPER_KWARGS["text_encoder"]),
                      "conditioner_kwargs": dict(PAPER_KWARGS["conditioner"]),
                      "linear_start": 0.00085, "linear_end": 0.012, "num_timesteps": 1000, "remat": True}
    c.method = {"name": "gendeg", "kwargs": {"tokenizer": "weights/clip-vit-large-patch14", "prompts": PROMPTS,
                                             "context_length": 77}}
    tasks = [{"name": name, "source": tfds_source(name, "train"), "weight": None} for name, _ in DATASETS]
    c.data.train = {"source": "task_mixture", "kwargs": {"tasks": tasks, "task_ids": [i for _, i in DATASETS]}}
    c.data.eval = None
    c.data.crop_size = 256
    c.data.batch_size = 128
    c.data.augment = "hflip"
    # training_outputs returns (ε prediction, ε): the official l_simple is their MSE.
    c.loss.terms = [{"name": "l2", "weight": 1.0}]
    c.optim.update({"lr": 1e-4, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.01,
                    "schedule": "lambda_linear", "warmup_steps": 0, "f_start": 1e-6, "f_max": 1.0, "f_min": 1.0,
                    "cycle_length": 10_000_000_000_000, "clip_norm": 0.0, "ema_decay": 0.9999,
                    "lr_multipliers": {"conditioner": 10.0}})
    c.train.update({"num_steps": 100_000, "seed": 23, "log_every": 100, "eval_every": 0, "ckpt_every": 5_000,
                    "compute_dtype": "float32", "init_from": "weights/gendeg_sd15_init.msgpack"})
    return c
