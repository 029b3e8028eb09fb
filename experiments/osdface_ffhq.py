"""OSDFace one-step face restoration: LoRA training of the SD 2.1 U-Net on FFHQ at 512².

Wang et al., "OSDFace: One-Step Diffusion Model for Face Restoration", CVPR 2025 (jkwang28/OSDFace, commit
0652227). The official training code is not released (README: "Release training code" open), so this config
follows the paper's description (jaxir.methods.osdface): the one-step generator (VRE → embedding_change → SD 2.1
U-Net at t = 399 → VAE decode), LoRA on the U-Net (rank 16, alpha 16: infer.py's --lora_rank/--lora_alpha
defaults, with which the released LoRA merges), a pixel MSE, edge-aware DISTS (edge_aware_dists_demo.py), the
facial identity loss and GAN guidance. Data: FFHQ resized to 512² (README "Datasets"; FFHQR is not included) as
a paired folder of low-quality/high-quality faces (`input/`, `target/`) degraded offline: jaxir has no
face-degradation pipeline for FFHQ.

Everything the paper states but this session could not read, and everything it does not state, is jaxir's
choice (experiments/recipes.toml `reason`): loss weights 1 / 1 / 1 / 0.1, the discriminator, AdamW 5e-5, batch 8,
100k steps. Weights by path (override with --config.method.kwargs.*): `pretrained` (an OSDFace folder from
`jaxir osdface convert --lora-alpha 0`), `arcface` (an arcface_torch iresnet100 backbone.pth), `dists`
(pyiqa's DISTS_weights.pth or DISTS_pytorch's weights.pt).
"""
from experiments.base import base_config

DATA_DIR = "data/ffhq512"
# stabilityai/stable-diffusion-2-1-base unet/config.json in LDMUNet terms (jaxir.diffusion.latent.osdface_convert)
SD21_UNET = dict(in_channels=4, out_channels=4, model_channels=320, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                 attention_resolutions=(4, 2, 1), num_head_channels=64, transformer_depth=1, context_dim=1024)
SD21_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4)


def get_config(arg: str | None = None):
    if arg not in (None, ""):
        raise ValueError(f"osdface_ffhq takes no argument, got {arg!r}")
    c = base_config()
    c.model.name = "ldm_unet"
    c.model.kwargs = dict(SD21_UNET)
    c.data.train = {"source": "paired_folder",
                    "kwargs": {"input_dir": f"{DATA_DIR}/input", "target_dir": f"{DATA_DIR}/target"}}
    c.data.eval = None  # scored by jaxir.eval.osdface on CelebA-Test-style folders
    c.data.crop_size, c.data.batch_size, c.data.augment = 512, 8, "hflip"
    c.loss.terms = [{"name": "l2", "weight": 1.0}]  # replaced by the method's objective
    c.method = {"name": "osdface", "kwargs": {
        "vae": SD21_VAE, "vre": {}, "lora_rank": 16, "lora_alpha": 16.0,
        "pretrained": "pretrained/osdface_base", "arcface": "pretrained/arcface_r100.pth",
        "arcface_kwargs": {"arch": "r100"}, "dists": "pretrained/DISTS_weights.pth",
        "l2_weight": 1.0, "dists_weight": 1.0, "id_weight": 1.0, "gan_weight": 0.1,
        "disc_lr": 5e-5}}
    c.optim.update({"optimizer": "adamw", "lr": 5e-5, "b1": 0.9, "b2": 0.999, "weight_decay": 0.0,
                    "schedule": "constant", "warmup_steps": 0, "clip_norm": 1.0, "ema_decay": 0.0})
    c.train.update({"num_steps": 100_000, "log_every": 100, "ckpt_every": 5000})
    return c
