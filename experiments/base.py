"""The config every experiment starts from: all groups the training loop reads, with neutral defaults.

Paper configs call `base_config()` and set what their paper specifies, so each
file reads as the recipe it reproduces. Dataset names are the TFDS builders of
`data_pipelines.builders`; `data_dir` is where `tfds` keeps the built datasets
(override with --config.data.train.kwargs.data_dir=...).
"""
from __future__ import annotations

import ml_collections

DEFAULT_DATA_DIR = "~/tensorflow_datasets"


def tfds_source(name: str, split: str, data_dir: str = DEFAULT_DATA_DIR, **kwargs) -> dict:
    return {"source": "tfds", "kwargs": {"name": name, "split": split, "data_dir": data_dir, **kwargs}}


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict({"name": "", "kwargs": {}})
    # augment: True (one of the 8 flips/rot90s), 'hflip' (horizontal flips only) or False; any type may be set.
    augment = ml_collections.FieldReference(True, field_type=object)
    c.data = ml_collections.ConfigDict({
        "train": None, "eval": None, "crop_size": 256, "batch_size": 8, "augment": augment,
        "degradation": None, "workers": 0, "eval_batch_size": 1, "eval_seed": 0,
    })
    c.loss = ml_collections.ConfigDict({"terms": [{"name": "l1", "weight": 1.0}], "multiscale": "bilinear",
                                        "target": "target"})
    c.optim = ml_collections.ConfigDict({
        "optimizer": "adamw", "rms_decay": 0.99,
        "lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0, "schedule": "cosine",
        "warmup_steps": 0, "min_lr": 0.0, "milestones": [], "gamma": 0.5, "clip_norm": 0.0, "ema_decay": 0.0,
        "steps_per_epoch": 0,  # > 0: the rate is held per epoch, as schedulers PyTorch steps once an epoch
    })
    c.train = ml_collections.ConfigDict({
        "num_steps": 1000, "seed": 0, "log_every": 100, "eval_every": 0, "ckpt_every": 1000,
        "keep_checkpoints": 2, "compute_dtype": "float32", "param_sharding": "replicated",
        "fsdp_min_size": 2**16, "nan_policy": "skip", "num_samples": 3,
        "init_from": "", "init_from_config": "", "init_from_subtree": "", "init_from_into": "",
        # Activation rematerialisation (jaxir.train.remat): none | block | stage | full.
        "remat": "none", "remat_policy": "nothing", "remat_modules": [],
    })
    c.eval = ml_collections.ConfigDict({"convention": None})
    # A paper's training method (jaxir.methods): a registered name (AirNet's MoCo stages, DA-RCOT's OT) or
    # 'package.module:function' building the trained module from the model (ADMS, DCPT).
    c.method = ml_collections.ConfigDict({"name": "supervised", "kwargs": {}})
    return c
