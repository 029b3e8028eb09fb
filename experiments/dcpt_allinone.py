"""DCPT (degradation classification pre-training) for the 5D and 10D all-in-one settings.

Hu, Jin, Yao, Lu, "Universal Image Restoration Pre-training via Degradation
Classification", ICLR 2025 (Tables of the 5D and 10D all-in-one results).
Official code: MILab-PKU/dcpt; its test options (options/all_in_one/test/
test_NAFNet_5d.yml, test_Restormer_5d.yml) give the networks: NAFNet width 64 with
blocks [1, 1, 1, 28] / 1 / [1, 1, 1, 1], Restormer at its defaults; the classifier is
basicsr/archs/degrad_classify_arch.py (`PromptIR_DC`). The training option files
are not in the repository: the schedules below (AdamW 2e-4 cosine, 256 crops,
batch 32, L1 fine-tuning) are jaxir's choices, not the paper's.

5D: denoising (sigma 25, synthesised on BSD400 colour), deraining (Rain100L),
dehazing (RESIDE OTS), deblurring (GoPro), low-light (LOL), labelled 0-4.
10D: DA-CLIP's ten degradations. jaxir synthesises noisy (sigma 50), blurry (random
camera shake), hazy, rainy and low-light on the fly from clean images; JPEG,
raindrop, shadowed, snowy and inpainting are read from DA-CLIP's universal
dataset in `paired_folder`s (<root>/<degradation>/LQ and GT; set
--config.data.train.kwargs.tasks... or edit DATA_ROOT).

arg: '<nafnet|restormer>:<5d|10d>:<pretrain|finetune>'. The fine-tuning stage
starts from the pre-training's restorer: --config.train.init_from=<pretrain
workdir> --config.train.init_from_config=experiments/dcpt_allinone.py:<model>:<set>:pretrain.
"""
from experiments.base import base_config, tfds_source

DATA_ROOT = "~/data/daclip/universal/train"
MODELS = {
    "nafnet": ("nafnet", {"width": 64, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                          "dec_blk_nums": [1, 1, 1, 1]}),
    "restormer": ("restormer", {}),
}


def _paired(name: str) -> dict:
    return {"source": "paired_folder", "kwargs": {"input_dir": f"{DATA_ROOT}/{name}/LQ",
                                                  "target_dir": f"{DATA_ROOT}/{name}/GT"}}


TASK_SETS = {
    "5d": [
        {"name": "denoise_25", "degradation": [{"name": "gaussian_noise", "sigma": 25 / 255}]},
        {"name": "derain", "source": tfds_source("rain100l", "train")},
        {"name": "dehaze", "source": tfds_source("reside_ots", "train")},
        {"name": "deblur", "source": tfds_source("gopro", "train")},
        {"name": "lowlight", "source": tfds_source("lol", "train")},
    ],
    "10d": [
        {"name": "noisy", "degradation": [{"name": "gaussian_noise", "sigma": 50 / 255}]},
        {"name": "blurry", "degradation": [{"name": "motion_blur", "kernel_size": 21}]},
        {"name": "hazy", "degradation": [{"name": "haze"}]},
        {"name": "rainy", "degradation": [{"name": "rain"}]},
        {"name": "low-light", "degradation": [{"name": "low_light"}]},
        {"name": "jpeg-compressed", "source": _paired("jpeg-compressed")},
        {"name": "raindrop", "source": _paired("raindrop")},
        {"name": "shadowed", "source": _paired("shadowed")},
        {"name": "snowy", "source": _paired("snowy")},
        {"name": "inpainting", "source": _paired("inpainting")},
    ],
}
CLEAN = {"5d": tfds_source("bsd400/color", "train"),
         # The clean images of DA-CLIP's noisy set carry the on-the-fly syntheses.
         "10d": {"source": "clean_folder", "kwargs": {"directory": f"{DATA_ROOT}/noisy/GT"}}}


VARIANTS = [f"{m}:{t}:{s}" for m in MODELS for t in TASK_SETS for s in ("pretrain", "finetune")]


def get_config(arg: str | None = None):
    if (arg or VARIANTS[0]) not in VARIANTS:
        raise ValueError(f"arg must be one of {', '.join(VARIANTS)}, got {arg!r}")
    model, task_set, stage = ((arg or "nafnet:5d:pretrain").split(":") + ["", ""])[:3]
    if model not in MODELS or task_set not in TASK_SETS or stage not in ("pretrain", "finetune"):
        raise ValueError(f"arg must be '<{'|'.join(MODELS)}>:<5d|10d>:<pretrain|finetune>', got {arg!r}")
    name, kwargs = MODELS[model]
    tasks = TASK_SETS[task_set]
    c = base_config()
    c.model.name = name
    c.model.kwargs = kwargs
    c.data.train = {"source": "task_mixture", "kwargs": {"tasks": tasks, "clean": CLEAN[task_set]}}
    c.data.crop_size = 256
    c.data.batch_size = 32
    c.optim.update({"lr": 2e-4, "b1": 0.9, "b2": 0.999, "weight_decay": 1e-4, "schedule": "cosine", "min_lr": 1e-6})
    if stage == "pretrain":
        c.method.name = "jaxir.methods.dcpt:pretrain"
        c.method.kwargs = {"num_classes": len(tasks), "num_res_blocks": 2}
        c.loss.terms = [{"name": "cross_entropy"}]
        c.loss.target = "task"
        c.train.update({"num_steps": 100_000, "log_every": 200, "ckpt_every": 5_000})
    else:
        c.loss.terms = [{"name": "l1"}]
        c.train.update({"num_steps": 300_000, "log_every": 200, "ckpt_every": 5_000,
                        "init_from_subtree": "restorer"})
    return c
