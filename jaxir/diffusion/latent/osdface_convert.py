"""Conversion of OSDFace's released weights (jkwang28/OSDFace commit 0652227, `infer.py`, `test.sh`) into a jaxir
OSDFace folder, and that folder's loader.

The official inference reads two places:
- the Stable Diffusion 2.1 base diffusers folder (`--pretrained_model_name_or_path`): `unet/` (diffusers'
  `UNet2DConditionModel` naming), `vae/` (diffusers' `AutoencoderKL`), `scheduler/` (the ᾱ of t = 399);
- the OSDFace folder (`--ckpt_path`, `pretrained/`): `pytorch_lora_weights.safetensors` (the U-Net's LoRA in
  peft naming `unet.<module>.lora_A.weight` / `.lora_B.weight`, or the older `.lora.down.weight` /
  `.lora.up.weight`), `embedding_change_weights.pth` (TwoLayerConv1x1's Conv1d weights) and `associate_2.ckpt`
  (`--img_encoder_weight`: a Lightning checkpoint whose `state_dict` holds the VRE under `vqvae_LQ.`).

`test.sh` passes `--merge_lora`: `merge_Unet` adds (lora_alpha / lora_rank) · B·A to every targeted U-Net weight
(both default 16, so the scale is 1; the rank and alpha are not stored in the file), which `merge_peft_lora`
does on the state dict before conversion. The merged U-Net's diffusers names are then mapped to the CompVis
`UNetModel` names jaxir's `LDMUNet` converts by the generic rule (`diffusers_unet_to_ldm`); SD 2.x's linear
`proj_in`/`proj_out` become the equivalent 1x1 convolutions.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxir import io as jio
from jaxir.diffusion.latent import autoencoder_kl as akl
from jaxir.diffusion.latent import osdface, pipeline
from jaxir.diffusion.latent.osdface_vre import build as build_vre
from jaxir.models.ldm_unet import build_ldm_unet

# --------------------------------------------------------------------------------------------------
# diffusers UNet2DConditionModel -> CompVis UNetModel


_SUPPORTED_DEFAULTS = {"flip_sin_to_cos": True, "freq_shift": 0, "resnet_time_scale_shift": "default",
                       "time_embedding_type": "positional", "class_embed_type": None, "addition_embed_type": None,
                       "encoder_hid_dim": None, "only_cross_attention": False, "dual_cross_attention": False,
                       "conv_in_kernel": 3, "conv_out_kernel": 3, "norm_num_groups": 32,
                       "mid_block_type": "UNetMidBlock2DCrossAttn", "num_class_embeds": None,
                       "time_cond_proj_dim": None}


def _per_level(value, levels: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise ValueError(f"{what}: {len(value)} values for {levels} levels")
        return list(value)
    return [value] * levels


def diffusers_unet_kwargs(config: Mapping) -> dict:
    """A diffusers `unet/config.json` -> `LDMUNet` kwargs; refuses what LDMUNet does not compute."""
    for key, want in _SUPPORTED_DEFAULTS.items():
        got = config.get(key, want)
        if isinstance(got, (list, tuple)):
            got = all(g == want for g in got) and want
        if got != want:
            raise ValueError(f"diffusers U-Net option {key}={config.get(key)!r} is not ported (LDMUNet needs {want!r})")
    if abs(float(config.get("norm_eps", 1e-5)) - 1e-5) > 1e-12:
        raise ValueError(f"norm_eps {config['norm_eps']} is not ported (CompVis GroupNorm32 uses 1e-5)")
    boc = [int(c) for c in config["block_out_channels"]]
    levels = len(boc)
    mc = boc[0]
    if any(c % mc for c in boc):
        raise ValueError(f"block_out_channels {boc} are not multiples of the first")
    down = list(config["down_block_types"])
    up = list(config["up_block_types"])
    attn = ["CrossAttn" in t for t in down]
    if ["CrossAttn" in t for t in reversed(up)] != attn:
        raise ValueError(f"up blocks {up} do not mirror the down blocks {down}")
    layers = set(_per_level(config.get("layers_per_block", 2), levels, "layers_per_block"))
    depth = set(_per_level(config.get("transformer_layers_per_block", 1) or 1, levels, "transformer_layers_per_block"))
    if len(layers) != 1 or len(depth) != 1:
        raise ValueError("per-level layers_per_block / transformer_layers_per_block are not ported")
    # diffusers' historic naming: `attention_head_dim` holds the number of heads when num_attention_heads is unset.
    heads = _per_level(config.get("num_attention_heads") or config.get("attention_head_dim") or 8, levels, "heads")
    used = [(boc[i], heads[i]) for i in range(levels) if attn[i]] + [(boc[-1], heads[-1])]
    head_dims = {c // h for c, h in used}
    if any(c % h for c, h in used):
        raise ValueError(f"channels {boc} not divisible by heads {heads}")
    if len(head_dims) == 1:
        head_kwargs = {"num_head_channels": head_dims.pop()}
    elif len({h for _, h in used}) == 1:
        head_kwargs = {"num_heads": used[0][1], "num_head_channels": -1}
    else:
        raise ValueError(f"heads {heads} give neither a fixed head count nor a fixed head width")
    return dict(in_channels=int(config.get("in_channels", 4)), out_channels=int(config.get("out_channels", 4)),
                model_channels=mc, channel_mult=tuple(c // mc for c in boc), num_res_blocks=layers.pop(),
                attention_resolutions=tuple(2 ** i for i in range(levels) if attn[i]), transformer_depth=depth.pop(),
                context_dim=int(config["cross_attention_dim"]), **head_kwargs)


_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
           ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))


def _resnet(rest: str) -> str:
    for old, new in _RESNET:
        if rest.startswith(old + "."):
            return new + rest[len(old):]
    raise KeyError(rest)


def diffusers_unet_to_ldm(state_dict: Mapping[str, np.ndarray], num_res_blocks: int, num_levels: int) -> dict:
    """diffusers `UNet2DConditionModel` state dict -> CompVis `UNetModel` names (as `model.diffusion_model.`)."""
    per = num_res_blocks + 1
    out = {}
    for key, value in state_dict.items():
        value = np.asarray(value)
        new = None
        if key.startswith("time_embedding.linear_"):
            new = "time_embed." + {"1": "0", "2": "2"}[key.split(".")[1][-1]] + key[len("time_embedding.linear_1"):]
        elif key.startswith("conv_in."):
            new = "input_blocks.0.0." + key[len("conv_in."):]
        elif key.startswith("conv_norm_out."):
            new = "out.0." + key[len("conv_norm_out."):]
        elif key.startswith("conv_out."):
            new = "out.2." + key[len("conv_out."):]
        elif m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = 1 + i * per + j
            new = f"input_blocks.{block}.0.{_resnet(rest)}" if kind == "resnets" else f"input_blocks.{block}.1.{rest}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)$", key):
            new = f"input_blocks.{1 + int(m[1]) * per + num_res_blocks}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.*)$", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.*)$", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)$", key):
            i, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            block = i * per + j
            new = f"output_blocks.{block}.0.{_resnet(rest)}" if kind == "resnets" else f"output_blocks.{block}.1.{rest}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)$", key):
            i = int(m[1])
            if i >= num_levels - 1:
                raise KeyError(f"{key}: the last up block has no upsampler")
            block = i * per + num_res_blocks
            has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in state_dict)
            new = f"output_blocks.{block}.{2 if has_attn else 1}.conv.{m[2]}"
        if new is None:
            raise KeyError(f"{key}: not a diffusers UNet2DConditionModel parameter LDMUNet has")
        if re.search(r"\.(proj_in|proj_out)\.weight$", new) and value.ndim == 2:  # use_linear_projection
            value = value[:, :, None, None]
        out[new] = value
    return out


# --------------------------------------------------------------------------------------------------
# peft LoRA merge (infer.py merge_Unet)


def merge_peft_lora(unet_sd: Mapping[str, np.ndarray], lora_sd: Mapping[str, np.ndarray],
                    scale: float) -> dict:
    """W + scale · B·A for every `unet.<module>.lora_A.weight` (peft) or `.lora.down.weight` (older diffusers) pair.

    Conv adapters (A (r, I, kh, kw), B (O, r, 1, 1)) merge as B_flat @ A_flat reshaped, as the official merge.
    """
    merged = {k: np.asarray(v, np.float32) for k, v in unet_sd.items()}
    used = set()
    for key in lora_sd:
        if key.endswith(".lora_A.weight"):
            base, b_key = key[: -len(".lora_A.weight")], key.replace(".lora_A.weight", ".lora_B.weight")
        elif key.endswith(".lora.down.weight"):
            base, b_key = key[: -len(".lora.down.weight")], key.replace(".lora.down.weight", ".lora.up.weight")
        else:
            continue
        if not base.startswith("unet."):
            raise KeyError(f"{key}: only U-Net adapters (unet.*) are part of OSDFace")
        target = base[len("unet."):] + ".weight"
        if b_key not in lora_sd or target not in merged:
            raise KeyError(f"{key}: no {b_key} in the LoRA file or no {target} in the U-Net")
        a = np.asarray(lora_sd[key], np.float32)
        b = np.asarray(lora_sd[b_key], np.float32)
        w = merged[target]
        rank = a.shape[0]
        d = (b.reshape(b.shape[0], rank) @ a.reshape(rank, -1)).reshape(w.shape)
        merged[target] = w + scale * d
        used.update((key, b_key))
    left = sorted(k for k in lora_sd if k not in used)
    if left:
        raise KeyError(f"LoRA keys not merged: {left[:10]}")
    if not used:
        raise KeyError("no LoRA pairs (.lora_A/.lora_B or .lora.down/.lora.up) in the LoRA file")
    return merged


# --------------------------------------------------------------------------------------------------
# the whole model


@dataclasses.dataclass
class OSDFaceModel:
    nets: dict
    variables: dict
    kwargs: dict
    alpha_bar: float | None = None  # ᾱ at the timestep from the scheduler config (None: SD's scaled-linear)

    def restore(self, lq01, key, color_fix: bool = False):
        return osdface.restore(self.nets, self.variables, lq01, key, color_fix=color_fix, alpha_bar=self.alpha_bar)


def build_nets(kwargs: Mapping[str, dict]) -> dict:
    return {"unet": build_ldm_unet(**dict(kwargs["unet"])),
            "vae": akl.AutoencoderKL(**akl.diffusers_kwargs(dict(kwargs["vae"]))),
            "vre": build_vre(**dict(kwargs["vre"])),
            "embedding_change": osdface.EmbeddingChange(**dict(kwargs["embedding_change"]))}


def _weights_file(folder: pathlib.Path) -> pathlib.Path:
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                 "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: no diffusion_pytorch_model.safetensors/.bin")


def scheduler_alpha_bar(config: Mapping, timestep: int = osdface.TIMESTEP) -> float:
    """ᾱ_t from a diffusers scheduler config (scaled_linear or linear betas)."""
    n = int(config.get("num_train_timesteps", 1000))
    start, end = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    kind = config.get("beta_schedule", "scaled_linear")
    if kind == "scaled_linear":
        betas = pipeline.sd_betas(n, start, end)
    elif kind == "linear":
        betas = np.linspace(start, end, n, dtype=np.float64)
    else:
        raise ValueError(f"beta_schedule {kind!r} is not ported")
    return float(np.cumprod(1.0 - betas)[timestep])


VRE_PREFIX = "vqvae_LQ."
# VQVAEencoder parameters outside the embedder's forward pass (the decoder is not loaded by lq_embed either).
_VRE_KEEP = re.compile(r"^(encoder\.|quant_conv\.|quantize\.embedding\.weight$)")


def vre_state_dict(checkpoint_sd: Mapping[str, np.ndarray]) -> dict:
    """`associate_2.ckpt`'s `state_dict` -> the VQVAEencoder state dict (`vqvae_encoder.__init__`'s filter)."""
    sd = {k[len(VRE_PREFIX):]: v for k, v in checkpoint_sd.items()
          if k.startswith(VRE_PREFIX) and not k.startswith(VRE_PREFIX + "decoder")}
    if not sd:
        raise KeyError(f"no '{VRE_PREFIX}' keys in the VRE checkpoint (expected OSDFace's associate_2.ckpt)")
    return {k: v for k, v in sd.items() if _VRE_KEEP.match(k)}


VRE_KWARGS: dict = {}  # the official vqvae_encoder defaults (29,172,416 parameters)


def convert(sd_folder, ckpt_folder, lora_rank: int = 16, lora_alpha: float = 16.0,
            vre_checkpoint=None, vre_kwargs: Mapping | None = None) -> OSDFaceModel:
    """SD 2.1 base diffusers folder + OSDFace's `pretrained/` folder -> OSDFaceModel (LoRA merged)."""
    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_checkpoint, load_state_dict, select_state_dict

    sd_folder, ckpt_folder = pathlib.Path(sd_folder), pathlib.Path(ckpt_folder)
    unet_cfg = json.loads((sd_folder / "unet" / "config.json").read_text())
    vae_cfg = json.loads((sd_folder / "vae" / "config.json").read_text())
    sched = sd_folder / "scheduler" / "scheduler_config.json"
    alpha_bar = scheduler_alpha_bar(json.loads(sched.read_text())) if sched.is_file() else None
    kwargs = {"unet": diffusers_unet_kwargs(unet_cfg), "vae": akl.diffusers_kwargs(vae_cfg),
              "vre": dict(vre_kwargs if vre_kwargs is not None else VRE_KWARGS)}
    ec_sd = load_state_dict(ckpt_folder / "embedding_change_weights.pth")
    kwargs["embedding_change"] = {"out_channels": int(np.shape(ec_sd["conv2.weight"])[0])}
    nets = build_nets(kwargs)

    unet_sd = load_state_dict(_weights_file(sd_folder / "unet"))
    lora_sd = load_state_dict(ckpt_folder / "pytorch_lora_weights.safetensors")
    merged = merge_peft_lora(unet_sd, lora_sd, lora_alpha / lora_rank)
    del unet_sd
    unet = nets["unet"]
    ldm_sd = diffusers_unet_to_ldm(merged, unet.num_res_blocks, len(unet.channel_mult))
    del merged
    levels = len(unet.channel_mult) - 1
    variables = {"unet": convert_state_dict(ldm_sd, unet, jnp.zeros((1, 2 ** levels, 2 ** levels, unet.in_channels)),
                                            jnp.zeros((1,), jnp.int32), jnp.zeros((1, 77, unet.context_dim)))}
    del ldm_sd
    vae = nets["vae"]
    variables["vae"] = convert_state_dict(load_state_dict(_weights_file(sd_folder / "vae")), vae,
                                          jnp.zeros((1, 8, 8, vae.in_channels)))
    vre = nets["vre"]
    vre_path = pathlib.Path(vre_checkpoint) if vre_checkpoint else ckpt_folder / "associate_2.ckpt"
    vre_sd = vre_state_dict(select_state_dict(load_checkpoint(vre_path), "state_dict", str(vre_path)))
    side = 2 ** (len(vre.ch_mult) - 1)
    variables["vre"] = convert_state_dict(vre_sd, vre, jnp.zeros((1, side, side, vre.in_channels)))
    variables["embedding_change"] = convert_state_dict(ec_sd, nets["embedding_change"],
                                                       jnp.zeros((1, 77, vre.embed_dim)))
    return OSDFaceModel(nets, variables, kwargs, alpha_bar)


_PARTS = ("unet", "vae", "vre", "embedding_change")


def save(directory, model: OSDFaceModel) -> None:
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for part in _PARTS:
        jio.save_weights(directory / f"{part}.msgpack", part, model.kwargs[part], jax.device_get(model.variables[part]))
    (directory / "osdface.json").write_text(json.dumps({"timestep": osdface.TIMESTEP, "alpha_bar": model.alpha_bar}))


def load(directory) -> OSDFaceModel:
    directory = pathlib.Path(directory)
    loaded = {part: jio.load_weights(directory / f"{part}.msgpack") for part in _PARTS}
    kwargs = {part: loaded[part][1] for part in _PARTS}
    meta = json.loads((directory / "osdface.json").read_text()) if (directory / "osdface.json").is_file() else {}
    return OSDFaceModel(build_nets(kwargs), {part: loaded[part][2] for part in _PARTS}, kwargs, meta.get("alpha_bar"))


def restore_folder(model: OSDFaceModel, input_dir, out_dir, seed: int = 114, color_fix: bool = False,
                   size: int = 512) -> list[str]:
    """`infer.py` over a folder: square inputs bilinearly resized (align_corners=True) to size², others kept
    (their sides must suit the U-Net); each written as OUT/<stem>.png."""
    from jaxir.models.blocks import resize_bilinear_align_corners

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    multiple = 8 * 2 ** (len(model.nets["unet"].channel_mult) - 1)
    run = jax.jit(lambda variables, x, key: osdface.restore(model.nets, variables, x, key, color_fix=color_fix,
                                                            alpha_bar=model.alpha_bar))
    key = jax.random.key(seed)
    stems = []
    for index, path in enumerate(jio.list_images(input_dir)):
        image = np.asarray(jio.read_image(path), np.float32)
        image = np.repeat(image, 3, axis=-1) if image.ndim == 2 or image.shape[-1] == 1 else image[..., :3]
        x = jnp.asarray(image.reshape(1, image.shape[0], image.shape[1], 3))
        if x.shape[1] == x.shape[2] and x.shape[1] != size:
            x = resize_bilinear_align_corners(x, (size, size))
        if x.shape[1] % multiple or x.shape[2] % multiple:
            raise ValueError(f"{path}: {x.shape[1]}x{x.shape[2]} is not square and not a multiple of {multiple}")
        out = run(model.variables, x, jax.random.fold_in(key, index))
        jio.write_image(out_dir / f"{path.stem}.png", np.asarray(out[0]))
        stems.append(path.stem)
    return stems
