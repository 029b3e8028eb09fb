"""ADMS on the Rain-Blur-Noise all-in-one setting, NAFNet or MSBDN backbone.

Park, Lee, Chun, "All-in-One Image Restoration for Unknown Degradations Using
Adaptive Discriminative Filters for Specific Degradations", CVPR 2023 (Table of
Rain-Noise-Blur results; parameter table: NAFNet UM 17.1M -> ADS 18.9M, MSBDN
28.7M -> 31.6M at q = 3%). No official code was reachable: the stages follow the
paper and each backbone's own official recipe (NAFNet: megvii-research/NAFNet
options/train/GoPro/NAFNet-width32.yml, AdamW 1e-3 cosine, PSNR loss; MSBDN:
BookerDeWitt/MSBDN-DFF train.py, Adam 1e-4 halved every 7 epochs, MSE, clip 0.25,
batch 16). MSBDN is networks/MSBDN-RDFF.py, the 28.7M model.

The degradations are synthesised on the fly from clean images (config.data.train's
`clean` source; the bundled photos by default, a `clean_folder` of your training
photos for real runs): rain T⊙(x+S)+(1−T)⊙A (rain streaks), blur x∗k (random
camera-shake kernels), noise x+ε (σ = 25/255). The paper's own data mix (its
datasets and noise levels) is not reproduced.

arg: '<backbone>:<stage>', backbone 'nafnet' | 'msbdn', stage
  um              the unified model on all three degradations
  finetune-<d>    the target model of degradation d (rain | blur | noise), started
                  from the UM: --config.train.init_from=<um workdir>
  dc              the degradation classifier (cross-entropy on the task label)
  ads             CNN-ADS, after `jaxir.methods.adms.prepare_ads(...)` wrote the
                  masks and initial weights: --config.method.kwargs.selections_file=
                  <dir>/selections.json --config.train.init_from=<dir>/ads_init.msgpack
"""
from experiments.base import base_config

TASKS = {
    "rain": [{"name": "rain"}],
    "blur": [{"name": "motion_blur", "kernel_size": 21}],
    "noise": [{"name": "gaussian_noise", "sigma": 25 / 255}],
}
BACKBONES = {
    "nafnet": ("nafnet", {"width": 32, "enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1,
                          "dec_blk_nums": [1, 1, 1, 1]}),
    "msbdn": ("msbdn", {"rdff": True}),
}
STAGE_STEPS = {"um": 200_000, "finetune": 50_000, "dc": 20_000, "ads": 50_000}


def adms_variants(tasks: dict) -> list[str]:
    """Every '<backbone>:<stage>' argument, the default ('nafnet:um') first."""
    stages = ["um", *(f"finetune-{t}" for t in tasks), "dc", "ads"]
    return [f"{b}:{s}" for b in BACKBONES for s in stages]


VARIANTS = adms_variants(TASKS)


def adms_config(arg: str | None, tasks: dict, clean: dict | None = None, paired: dict | None = None):
    """The config of one ADMS stage; `paired` maps task names to sources read instead of synthesised."""
    arg = arg or "nafnet:um"
    if arg not in adms_variants(tasks):
        raise ValueError(f"unknown argument {arg!r}; use one of {', '.join(adms_variants(tasks))}")
    backbone, _, stage = arg.partition(":")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose from {', '.join(BACKBONES)}")
    kind = stage.partition("-")[0]
    if kind not in STAGE_STEPS or (kind == "finetune" and stage.partition("-")[2] not in tasks):
        raise ValueError(f"unknown stage {stage!r}; use um, finetune-<{'|'.join(tasks)}>, dc or ads")
    paired = paired or {}
    entries = [{"name": name, "source": paired[name]} if name in paired else {"name": name, "degradation": spec}
               for name, spec in tasks.items()]
    if kind == "finetune":
        entries = [e for e in entries if e["name"] == stage.partition("-")[2]]
    name, kwargs = BACKBONES[backbone]
    c = base_config()
    c.model.name = name
    c.model.kwargs = kwargs
    c.data.train = {"source": "task_mixture", "kwargs": {"tasks": entries, "clean": clean}}
    if kind == "finetune":  # the fine-tuned model keeps the task's label
        c.data.train.kwargs.task_ids = [list(tasks).index(stage.partition("-")[2])]
    c.data.crop_size = 256
    if backbone == "nafnet":
        c.data.batch_size = 32
        c.loss.terms = [{"name": "psnr"}]
        c.optim.update({"lr": 1e-3, "b1": 0.9, "b2": 0.9, "weight_decay": 1e-3, "schedule": "cosine",
                        "min_lr": 1e-7})
    else:
        c.data.batch_size = 16
        c.loss.terms = [{"name": "l2"}]
        c.optim.update({"lr": 1e-4, "schedule": "cosine", "min_lr": 1e-6, "clip_norm": 0.25})
    if kind == "dc":
        c.method.name = "jaxir.methods.adms:classifier"
        c.method.kwargs = {"num_classes": len(tasks)}
        c.loss.terms = [{"name": "cross_entropy"}]
        c.loss.target = "task"
        c.optim.update({"lr": 1e-3, "weight_decay": 0.0, "schedule": "cosine", "min_lr": 1e-6, "clip_norm": 0.0})
    if kind == "ads":
        c.method.name = "jaxir.methods.adms:ads"
        c.method.kwargs = {"selections_file": "", "num_degradations": len(tasks)}
    c.train.update({"num_steps": STAGE_STEPS[kind], "log_every": 200, "ckpt_every": 5_000})
    return c


def get_config(arg: str | None = None):
    return adms_config(arg, TASKS)
