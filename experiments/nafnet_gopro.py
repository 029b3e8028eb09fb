"""NAFNet / Baseline on GoPro motion deblurring.

Chen, Chu, Zhang, Sun, "Simple Baselines for Image Restoration", ECCV 2022,
Table 1 (GoPro): NAFNet-width64 33.69 dB / 0.967 SSIM, width32 32.87 dB.
Recipe from the official megvii-research/NAFNet (commit 2b4af71)
options/train/GoPro/{NAFNet,Baseline}-width{32,64}.yml, one file per variant
(`VARIANTS` below): 256x256 crops with flips and rot90, AdamW lr 1e-3 betas
(0.9, 0.9), TrueCosineAnnealingLR to 1e-7 over the whole run without warmup,
PSNR loss, gradient norm clipped at 0.01 (the files leave `use_grad_clip`
unset and basicsr/models/image_restoration_model.py defaults it to true).
width32: 200k iterations at 8 GPUs x 4 = 32, seed 42; width64: 400k at 8 x 8 =
64, seed 10; weight decay 1e-3 except Baseline-width64 (0). The network trains
as NAFNetLocal / BaselineLocal: at 256 crops TLC equals global pooling; at
test time TLC (train size 256) acts on full 1280x720 frames. The official
files train on 512x512 sub-images cut from the frames
(scripts/data_preparation/gopro.py); jaxir crops the frames directly.
`jaxir recipe experiments/nafnet_gopro.py:VARIANT` shows each value beside its source.

arg: 'width32' (default), 'width64', 'baseline-width32', 'baseline-width64'.
"""
from experiments.base import base_config, tfds_source

GPUS = 8  # num_gpu of every NAFNet options file; jaxir's batch is global


def variant(file, model, width, per_gpu_batch, iterations, weight_decay, seed, dw_expand=None):
    """One official options file's values."""
    extra = {} if dw_expand is None else {"dw_expand": dw_expand, "ffn_expand": 2}
    return dict(file=file, model=model, kwargs={"width": width, **extra}, batch=GPUS * per_gpu_batch,
                iterations=iterations, weight_decay=weight_decay, seed=seed)


# variant -> options/train/GoPro/<file>: network_g, batch_size_per_gpu, total_iter, weight_decay, manual_seed
VARIANTS = {
    "width32": variant("NAFNet-width32.yml", "nafnet", 32, 4, 200_000, 1e-3, 42),
    "width64": variant("NAFNet-width64.yml", "nafnet", 64, 8, 400_000, 1e-3, 10),
    "baseline-width32": variant("Baseline-width32.yml", "nafnet_baseline", 32, 4, 200_000, 1e-3, 42, dw_expand=1),
    "baseline-width64": variant("Baseline-width64.yml", "nafnet_baseline", 64, 8, 400_000, 0.0, 10, dw_expand=2),
}


def nafnet_recipe(variants: dict, arg: str | None, blocks: dict, dataset: str, eval_split: str):
    """The NAFNet paper's shared recipe with one options file's values."""
    name = arg or next(iter(variants))
    if name not in variants:
        raise ValueError(f"unknown variant {name!r}; choose from {', '.join(variants)}")
    v = variants[name]
    c = base_config()
    c.model.name = v["model"]
    c.model.kwargs = {**blocks, **v["kwargs"]}
    c.data.train = tfds_source(dataset, "train")
    c.data.eval = tfds_source(dataset, eval_split)
    c.data.crop_size = 256
    c.data.batch_size = v["batch"]
    c.loss.terms = [{"name": "psnr", "weight": 1.0}]
    c.optim.update({"lr": 1e-3, "b1": 0.9, "b2": 0.9, "weight_decay": v["weight_decay"], "schedule": "cosine",
                    "warmup_steps": 0, "min_lr": 1e-7, "clip_norm": 0.01, "ema_decay": 0.0})
    c.train.update({"num_steps": v["iterations"], "seed": v["seed"], "log_every": 200, "eval_every": 20_000,
                    "ckpt_every": 5_000})
    c.eval.convention = dataset
    return c


def get_config(arg: str | None = None):
    blocks = {"enc_blk_nums": [1, 1, 1, 28], "middle_blk_num": 1, "dec_blk_nums": [1, 1, 1, 1],
              "tlc_train_size": [256, 256]}
    return nafnet_recipe(VARIANTS, arg, blocks, "gopro", "test")
