"""ACL, motion deblurring on GoPro (`arg` 'gopro', default) or deraining on Rain13K ('rain13k').

Gu, Meng, Ji, Sun, "ACL: Activating Capability of Linear Attention for Image Restoration",
CVPR 2025; targets its GoPro/HIDE deblurring and Rain13K (Test100, Rain100H/L, Test1200,
Test2800) deraining tables.

No official code or option file was found. The paper trains in the Restormer setting its
comparisons use, which this config follows (swz30/Restormer Deblurring_Restormer.yml and
Deraining_Restormer.yml): progressive patches [128 ... 384], AdamW lr 3e-4, weight decay
1e-4, L1 loss, gradient clip 0.01, 300k iterations with a constant-then-cosine schedule.
The model sizes are jaxir's (jaxir.models.acl.CONFIGS), not the paper's: see the README.
"""
from experiments.restormer_gopro import restormer_recipe
from jaxir.models.acl import CONFIGS

TASKS = {"gopro": ("gopro", ["input", "target"], "gopro"),
         "rain13k": ("rain13k", ["input", "target"], "rain100h")}
VARIANTS = list(TASKS)  # default first


def get_config(arg=None):
    task = arg or "gopro"
    if task not in TASKS:
        raise ValueError(f"acl_gopro takes one of {sorted(TASKS)}, got {arg!r}")
    dataset, features, convention = TASKS[task]
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in CONFIGS[task].items()}
    c = restormer_recipe(kwargs, dataset, features, convention)
    c.model.name = "acl"
    if task == "rain13k":
        c.data.eval = {"source": "tfds", "kwargs": dict(c.data.eval.kwargs, name="rain100h")}
    return c
