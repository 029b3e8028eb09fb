"""Stable Diffusion's KL autoencoder (Rombach et al., CVPR 2022, `ldm.models.autoencoder.AutoencoderKL`),
with the parameter names of diffusers' `AutoencoderKL` (`diffusers/models/autoencoders/autoencoder_kl.py`,
`vae.py` Encoder/Decoder, `resnet.py` ResnetBlock2D, `attention_processor.py` Attention), so diffusers
folders and `.safetensors` convert by the generic rule.

Encoder: conv_in; per level `layers_per_block` ResnetBlocks and (but last) a stride-2 conv after
right/bottom zero padding; mid ResnetBlock-attention-ResnetBlock; GN-SiLU-conv to 2 x latent
channels (mean, log-variance); quant_conv 1x1. Decoder mirrors it with `layers_per_block + 1`
ResnetBlocks and nearest 2x upsampling + conv. GroupNorms use eps 1e-6. The posterior is diagonal
Gaussian with log-variance clamped to [-30, 20]; latents are scaled by `scaling_factor`
(0.18215 for SD 1.x) before diffusion. `tile` runs the decoder over overlapping latent tiles with
linear blending (diffusers' `tiled_decode`) for images larger than memory allows.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir.models.blocks import Conv2d, Dtype, Linear, interpolate_nearest
from jaxir.models.unet_blocks import GroupNorm32

SD_SCALING_FACTOR = 0.18215


class VAEResnetBlock(nn.Module):
    """diffusers `ResnetBlock2D` without a time embedding: GN-SiLU-conv twice, 1x1 `conv_shortcut` on a width change
    (taming/ldm's `ResnetBlock` names it `nin_shortcut`)."""

    out_channels: int
    groups: int = 32
    dtype: Dtype = jnp.float32
    shortcut_name: str = "conv_shortcut"

    @nn.compact
    def __call__(self, x):
        dt = self.dtype
        h = nn.silu(GroupNorm32(self.groups, 1e-6, name="norm1")(x))
        h = Conv2d(self.out_channels, 3, padding=1, dtype=dt, name="conv1")(h)
        h = nn.silu(GroupNorm32(self.groups, 1e-6, name="norm2")(h))
        h = Conv2d(self.out_channels, 3, padding=1, dtype=dt, name="conv2")(h)
        if x.shape[-1] != self.out_channels:
            x = Conv2d(self.out_channels, 1, dtype=dt, name=self.shortcut_name)(x)
        return x + h


class VAEAttention(nn.Module):
    """Single-head self-attention over pixels with a GroupNorm in front and a residual (diffusers `Attention`)."""

    groups: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        t = GroupNorm32(self.groups, 1e-6, name="group_norm")(x).reshape(b, h * w, c)
        q, k, v = (Linear(c, dtype=self.dtype, name=n)(t) for n in ("to_q", "to_k", "to_v"))
        logits = jnp.einsum("bnc,bmc->bnm", q, k, preferred_element_type=jnp.float32) / jnp.sqrt(float(c))
        out = jnp.einsum("bnm,bmc->bnc", jax.nn.softmax(logits, axis=-1).astype(v.dtype), v)
        return x + Linear(c, dtype=self.dtype, name="to_out_0")(out).reshape(x.shape)


class MidBlock(nn.Module):
    groups: int = 32
    add_attention: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = VAEResnetBlock(c, self.groups, self.dtype, name="resnets_0")(x)
        if self.add_attention:
            x = VAEAttention(self.groups, self.dtype, name="attentions_0")(x)
        return VAEResnetBlock(c, self.groups, self.dtype, name="resnets_1")(x)


class _Resample(nn.Module):
    """`downsamplers.0` (pad right/bottom by one, 3x3 stride 2) or `upsamplers.0` (nearest 2x, 3x3)."""

    down: bool
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        if self.down:
            x = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
            return Conv2d(c, 3, stride=2, padding=0, dtype=self.dtype, name="conv")(x)
        return Conv2d(c, 3, padding=1, dtype=self.dtype, name="conv")(interpolate_nearest(x, 2))


class _Level(nn.Module):
    out_channels: int
    num_resnets: int
    resample: str | None  # 'down', 'up' or None
    groups: int = 32
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for j in range(self.num_resnets):
            x = VAEResnetBlock(self.out_channels, self.groups, self.dtype, name=f"resnets_{j}")(x)
        if self.resample == "down":
            x = _Resample(True, self.dtype, name="downsamplers_0")(x)
        elif self.resample == "up":
            x = _Resample(False, self.dtype, name="upsamplers_0")(x)
        return x


class Encoder(nn.Module):
    block_out_channels: Sequence[int]
    layers_per_block: int
    latent_channels: int
    groups: int = 32
    mid_block_add_attention: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.block_out_channels[0], 3, padding=1, dtype=self.dtype, name="conv_in")(x.astype(self.dtype))
        last = len(self.block_out_channels) - 1
        for i, ch in enumerate(self.block_out_channels):
            x = _Level(ch, self.layers_per_block, "down" if i < last else None, self.groups, self.dtype,
                       name=f"down_blocks_{i}")(x)
        x = MidBlock(self.groups, self.mid_block_add_attention, self.dtype, name="mid_block")(x)
        x = nn.silu(GroupNorm32(self.groups, 1e-6, name="conv_norm_out")(x))
        return Conv2d(2 * self.latent_channels, 3, padding=1, dtype=self.dtype, name="conv_out")(x)


class Decoder(nn.Module):
    block_out_channels: Sequence[int]
    layers_per_block: int
    out_channels: int
    groups: int = 32
    mid_block_add_attention: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, z):
        chans = list(reversed(self.block_out_channels))
        x = Conv2d(chans[0], 3, padding=1, dtype=self.dtype, name="conv_in")(z.astype(self.dtype))
        x = MidBlock(self.groups, self.mid_block_add_attention, self.dtype, name="mid_block")(x)
        last = len(chans) - 1
        for i, ch in enumerate(chans):
            x = _Level(ch, self.layers_per_block + 1, "up" if i < last else None, self.groups, self.dtype,
                       name=f"up_blocks_{i}")(x)
        x = nn.silu(GroupNorm32(self.groups, 1e-6, name="conv_norm_out")(x))
        return Conv2d(self.out_channels, 3, padding=1, dtype=self.dtype, name="conv_out")(x)


class DiagonalGaussian:
    """Posterior N(mean, exp(logvar)) from the encoder's moments (log-variance clamped to [-30, 20])."""

    def __init__(self, moments):
        self.mean, logvar = jnp.split(moments.astype(jnp.float32), 2, axis=-1)
        self.logvar = jnp.clip(logvar, -30.0, 20.0)
        self.std = jnp.exp(0.5 * self.logvar)

    def sample(self, key):
        return self.mean + self.std * jax.random.normal(key, self.mean.shape)

    def mode(self):
        return self.mean

    def kl(self):
        """KL to N(0, I), summed over latent pixels and channels."""
        return 0.5 * jnp.sum(jnp.square(self.mean) + jnp.exp(self.logvar) - 1.0 - self.logvar, axis=(1, 2, 3))


class AutoencoderKL(nn.Module):
    """NHWC images in [-1, 1] <-> latents. `__call__` encodes then decodes the posterior mode (sample with `key`)."""

    in_channels: int = 3
    out_channels: int = 3
    block_out_channels: Sequence[int] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    use_quant_conv: bool = True
    use_post_quant_conv: bool = True
    mid_block_add_attention: bool = True
    scaling_factor: float = SD_SCALING_FACTOR
    dtype: Dtype = jnp.float32

    def setup(self):
        chans = tuple(self.block_out_channels)
        self.encoder = Encoder(chans, self.layers_per_block, self.latent_channels, self.norm_num_groups,
                               self.mid_block_add_attention, self.dtype)
        self.decoder = Decoder(chans, self.layers_per_block, self.out_channels, self.norm_num_groups,
                               self.mid_block_add_attention, self.dtype)
        if self.use_quant_conv:
            self.quant_conv = Conv2d(2 * self.latent_channels, 1, dtype=self.dtype)
        if self.use_post_quant_conv:
            self.post_quant_conv = Conv2d(self.latent_channels, 1, dtype=self.dtype)

    def encode(self, x) -> DiagonalGaussian:
        moments = self.encoder(x)
        if self.use_quant_conv:
            moments = self.quant_conv(moments)
        return DiagonalGaussian(moments)

    def decode(self, z):
        if self.use_post_quant_conv:
            z = self.post_quant_conv(z.astype(self.dtype))
        return self.decoder(z).astype(jnp.float32)

    def __call__(self, x, key=None, train: bool = False):
        posterior = self.encode(x)
        z = posterior.mode() if key is None else posterior.sample(key)
        return self.decode(z)


def encode_latents(vae: AutoencoderKL, variables, images01, key=None):
    """Images in [0, 1] (NHWC) -> scaled latents (posterior mode, or a sample with `key`)."""
    posterior = vae.apply(variables, 2.0 * images01 - 1.0, method=AutoencoderKL.encode)
    z = posterior.mode() if key is None else posterior.sample(key)
    return z * vae.scaling_factor


def decode_latents(vae: AutoencoderKL, variables, latents, tile: int | None = None, overlap: int = 8):
    """Scaled latents -> images in [0, 1]; `tile` (latent pixels) decodes overlapping tiles blended linearly."""
    z = latents / vae.scaling_factor
    if tile is None or (z.shape[1] <= tile and z.shape[2] <= tile):
        x = vae.apply(variables, z, method=AutoencoderKL.decode)
    else:
        x = _tiled(lambda t: vae.apply(variables, t, method=AutoencoderKL.decode), z, tile, overlap)
    return jnp.clip((x + 1.0) / 2.0, 0.0, 1.0)


def _tiled(fn, z, tile: int, overlap: int):
    """Apply `fn` (latent -> image at scale s) on overlapping tiles; overlaps are averaged with linear ramps."""
    n, h, w, _ = z.shape
    stride = tile - overlap
    if stride <= 0:
        raise ValueError("tile must exceed overlap")
    starts_h = sorted({min(i, max(h - tile, 0)) for i in range(0, max(h - overlap, 1), stride)})
    starts_w = sorted({min(i, max(w - tile, 0)) for i in range(0, max(w - overlap, 1), stride)})
    out = weight = None
    for i in starts_h:
        for j in starts_w:
            piece = fn(z[:, i:i + tile, j:j + tile])
            s = piece.shape[1] // min(tile, h)
            th, tw = piece.shape[1], piece.shape[2]
            ramp_h = _ramp(th, overlap * s, i > 0, i + tile < h)
            ramp_w = _ramp(tw, overlap * s, j > 0, j + tile < w)
            wgt = ramp_h[:, None] * ramp_w[None, :]
            if out is None:
                out = jnp.zeros((n, h * s, w * s, piece.shape[-1]), piece.dtype)
                weight = jnp.zeros((h * s, w * s), piece.dtype)
            out = out.at[:, i * s:i * s + th, j * s:j * s + tw].add(piece * wgt[None, :, :, None])
            weight = weight.at[i * s:i * s + th, j * s:j * s + tw].add(wgt)
    return out / weight[None, :, :, None]


def _ramp(size: int, overlap: int, rise: bool, fall: bool):
    r = jnp.ones((size,), jnp.float32)
    if overlap <= 0:
        return r
    up = (jnp.arange(overlap, dtype=jnp.float32) + 1.0) / (overlap + 1.0)
    if rise:
        r = r.at[:overlap].multiply(up)
    if fall:
        r = r.at[size - overlap:].multiply(up[::-1])
    return r


def diffusers_kwargs(config: dict) -> dict:
    """A diffusers `config.json` of AutoencoderKL -> AutoencoderKL fields."""
    keys = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels",
            "norm_num_groups", "use_quant_conv", "use_post_quant_conv", "mid_block_add_attention", "scaling_factor")
    kwargs = {k: config[k] for k in keys if k in config and config[k] is not None}
    if "block_out_channels" in kwargs:
        kwargs["block_out_channels"] = tuple(kwargs["block_out_channels"])
    return kwargs


def load_diffusers(folder) -> tuple[AutoencoderKL, dict]:
    """A diffusers `vae/` folder (config.json + diffusion_pytorch_model.safetensors) -> (model, variables)."""
    import json
    import pathlib

    from jaxir.convert.state_dict import convert_state_dict
    from jaxir.convert.torch_io import load_state_dict

    folder = pathlib.Path(folder)
    model = AutoencoderKL(**diffusers_kwargs(json.loads((folder / "config.json").read_text())))
    weights = next((folder / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
                    if (folder / n).is_file()), None)
    if weights is None:
        raise FileNotFoundError(f"{folder}: no diffusion_pytorch_model.safetensors/.bin")
    variables = convert_state_dict(load_state_dict(weights), model, jnp.zeros((1, 8, 8, model.in_channels)))
    return model, variables


_COMPVIS_RENAMES = (
    (r"\.nin_shortcut\.", ".conv_shortcut."),
    (r"^(encoder|decoder)\.norm_out\.", r"\1.conv_norm_out."),
    (r"^encoder\.down\.(\d+)\.block\.(\d+)\.", r"encoder.down_blocks.\1.resnets.\2."),
    (r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down_blocks.\1.downsamplers.0."),
    (r"\.mid\.block_1\.", ".mid_block.resnets.0."),
    (r"\.mid\.block_2\.", ".mid_block.resnets.1."),
    (r"\.mid\.attn_1\.norm\.", ".mid_block.attentions.0.group_norm."),
    (r"\.mid\.attn_1\.(q|k|v)\.", r".mid_block.attentions.0.to_\1."),
    (r"\.mid\.attn_1\.proj_out\.", ".mid_block.attentions.0.to_out.0."),
)


def compvis_to_diffusers(state_dict, num_levels: int) -> dict:
    """CompVis/ldm `AutoencoderKL` keys (`first_stage_model.` stripped) -> diffusers names.

    The decoder's `up.{b}` runs last-to-first (`up.{L-1}` first), diffusers' `up_blocks.{i}` in execution
    order; the mid attention's 1x1 convs become Linear weights. Training-only `loss.*` keys are dropped.
    """
    import re

    out = {}
    for key, value in state_dict.items():
        if key.startswith("loss."):
            continue
        new = key
        for pattern, repl in _COMPVIS_RENAMES:
            new = re.sub(pattern, repl, new)
        match = re.match(r"^decoder\.up\.(\d+)\.(block\.(\d+)|upsample)\.(.*)$", new)
        if match:
            i = num_levels - 1 - int(match.group(1))
            inner = f"resnets.{match.group(3)}" if match.group(3) is not None else "upsamplers.0"
            new = f"decoder.up_blocks.{i}.{inner}.{match.group(4)}"
        if ".attentions.0.to_" in new and new.endswith(".weight") and value.ndim == 4:
            value = value[:, :, 0, 0]
        out[new] = value
    return out
