"""VLU-Net: vision-language guided deep unfolding for all-in-one restoration.

Zeng, Xiang, ... "Vision-Language Gradient Descent-driven All-in-One Deep Unfolding
Networks", CVPR 2025. Official code: xianggkl/VLU-Net, net/Final.py (`VLUNet`).

A Restormer-shaped U-Net in which every stage is one unfolded proximal-gradient
step: a gradient-descent module (GDM)
    x <- x - r * phi^T(phi(x, p) - y)
whose operator phi is a cross-attention of the features with a degradation prompt
p, and phi^T a transposed (channel) attention; then Restormer transformer blocks
act as the proximal denoiser. The prompt is a softmax(linear(v))-weighted sum of
`de_dim` learned prompts, v being the 512-d CLIP degradation vector of the input,
bilinearly resized to the feature size. A second stream of image features y runs
beside the features through the same U-Net (its own down/up-samplers).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.attention import dot_product_attention, l2_normalize, merge_heads, split_heads
from jaxir.models.blocks import Conv2d, Linear, interpolate_bilinear
from jaxir.models.restormer import MDTA, Downsample, OverlapPatchEmbed, TransformerBlock, Upsample

Dtype = Any
DEGRADATION_DIM = 512


class CrossAttention(nn.Module):
    """Transposed (channel) attention with queries and values from x, keys from the prompt."""

    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, prompt):
        b, h, w, c = x.shape
        dt = self.dtype
        temperature = self.param("temperature", nn.initializers.ones, (self.num_heads,), jnp.float32)
        qv = Conv2d(2 * c, 1, use_bias=False, dtype=dt, name="qv")(x)
        qv = Conv2d(2 * c, 3, padding=1, groups=2 * c, use_bias=False, dtype=dt, name="qv_dwconv")(qv)
        k = Conv2d(c, 1, use_bias=False, dtype=dt, name="k")(prompt)
        k = Conv2d(c, 3, padding=1, groups=c, use_bias=False, dtype=dt, name="k_dwconv")(k)
        q, v = jnp.split(qv, 2, axis=-1)
        q, k, v = (split_heads(t.reshape(b, h * w, c), self.num_heads).swapaxes(-1, -2) for t in (q, k, v))
        out = dot_product_attention(l2_normalize(q), l2_normalize(k), v, temperature[:, None, None])
        out = merge_heads(out.swapaxes(-1, -2)).reshape(b, h, w, c)
        return Conv2d(c, 1, use_bias=False, dtype=dt, name="project_out")(out)


def prompt_channels(dim: int, stage: int) -> int:
    """The official int(dim // 10 * stage)."""
    return int(dim // 10 * stage)


class GDM(nn.Module):
    """One gradient step x - r * phi^T(phi(x, prompt(v)) - y) (the official `GDM`)."""

    de_dim: int
    stage: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, img, degradation):
        b, h, w, dim = x.shape
        promptdim, size = prompt_channels(dim, self.stage), int(96 // self.stage)
        r = self.param("r", nn.initializers.ones, (1,), jnp.float32)
        weights = jax.nn.softmax(Linear(self.de_dim, name="linear")(degradation.astype(jnp.float32)), axis=-1)
        # Official layout (1, de_dim, C, S, S), torch.rand init.
        prompts = self.param("prompt_param", nn.initializers.uniform(1.0),
                             (1, self.de_dim, promptdim, size, size), jnp.float32)
        prompt = jnp.einsum("bd,dchw->bhwc", weights, prompts[0])
        prompt = interpolate_bilinear(prompt, size=(h, w)).astype(self.dtype)
        residual = CrossAttention(2, self.dtype, name="phi")(x, prompt) - img
        return x - r.astype(self.dtype) * MDTA(2, dtype=self.dtype, name="phit")(residual)


class Denoiser(nn.Module):
    """The official `num_Transformer_Block`: `num_blocks` Restormer blocks under `blocks`."""

    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_blocks):
            x = TransformerBlock(self.num_heads, self.ffn_expansion_factor, dtype=self.dtype, name=f"blocks_{i}")(x)
        return x


class UnfoldingStage(nn.Module):
    """`DUN_BaseBlock`: a GDM step then the denoiser; the image stream passes through unchanged."""

    de_dim: int
    stage: int
    num_blocks: int
    num_heads: int
    ffn_expansion_factor: float
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, img, degradation):
        x = GDM(self.de_dim, self.stage, self.dtype, name="gradient_descent")(x, img, degradation)
        return Denoiser(self.num_blocks, self.num_heads, self.ffn_expansion_factor, self.dtype, name="denoiser")(x)


class VLUNet(nn.Module):
    """The official `VLUNet`; inputs: NHWC image and the (N, 512) degradation vector."""

    de_dim: int = 7
    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False  # the 1x1 channel reductions and the output conv only
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, inp, degradation, train: bool = False):
        if inp.ndim != 4 or inp.shape[-1] != self.inp_channels:
            raise ValueError(f"VLUNet expects NHWC input with {self.inp_channels} channels, got shape {inp.shape}")
        if inp.shape[1] % 8 or inp.shape[2] % 8:
            raise ValueError(f"VLUNet needs H and W divisible by 8, got {inp.shape[1]}x{inp.shape[2]}; "
                             "pad the input (registry pad_multiple=8)")
        if degradation.shape != (inp.shape[0], DEGRADATION_DIM):
            raise ValueError(f"degradation vector must be (N, {DEGRADATION_DIM}), got {degradation.shape}")
        dt, dim, nb, hd = self.dtype, self.dim, self.num_blocks, self.heads
        inp = inp.astype(dt)

        def unfold(name, stage, level, x, img, blocks=None):
            return UnfoldingStage(self.de_dim, stage, nb[level] if blocks is None else blocks, hd[level],
                                  self.ffn_expansion_factor, dt, name=name)(x, img, degradation)

        def reduce(x, features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)(x)

        enc1 = unfold("encoder_level1", 1, 0, OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp),
                      img1 := OverlapPatchEmbed(dim, dtype=dt, name="patch_embed_i")(inp))
        # The official forward downsamples the level-1 image stream with `down1_2`, the feature
        # downsampler; `down1_2_i` holds parameters its forward never uses (kept for the state dict).
        down1_2 = Downsample(dt, name="down1_2")
        Downsample(dt, name="down1_2_i")(img1)
        img2 = down1_2(img1)
        enc2 = unfold("encoder_level2", 2, 1, down1_2(enc1), img2)
        img3 = Downsample(dt, name="down2_3_i")(img2)
        enc3 = unfold("encoder_level3", 3, 2, Downsample(dt, name="down2_3")(enc2), img3)
        img4 = Downsample(dt, name="down3_4_i")(img3)
        latent = unfold("latent", 4, 3, Downsample(dt, name="down3_4")(enc3), img4)

        x = reduce(jnp.concatenate([Upsample(dt, name="up4_3")(latent), enc3], -1), 4 * dim, "reduce_chan_level3")
        y = reduce(jnp.concatenate([Upsample(dt, name="up4_3_i")(img4), img3], -1), 4 * dim,
                   "reduce_chan_level3_img")
        x = unfold("decoder_level3", 3, 2, x, y)
        x = reduce(jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], -1), 2 * dim, "reduce_chan_level2")
        y = reduce(jnp.concatenate([Upsample(dt, name="up3_2_i")(y), img2], -1), 2 * dim, "reduce_chan_level2_img")
        x = unfold("decoder_level2", 2, 1, x, y)
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], -1)
        y = jnp.concatenate([Upsample(dt, name="up2_1_i")(y), img1], -1)
        x = unfold("decoder_level1", 1, 0, x, y)
        x = unfold("refinement", 1, 0, x, y, blocks=self.num_refinement_blocks)
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(x) + inp
        return out.astype(jnp.float32)


def _vlu_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    if "bias" in kwargs:
        kwargs["use_bias"] = bool(kwargs.pop("bias"))
    # The official class accepts these but its blocks always use WithBias norms and never read `decoder`.
    for key in ("LayerNorm_type", "decoder"):
        kwargs.pop(key, None)
    for key in ("num_blocks", "heads"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return kwargs


registry.register_model(registry.ModelEntry(
    name="vlu_net",
    builder=lambda **kw: VLUNet(**_vlu_kwargs(kw)),
    official=(("xianggkl/VLU-Net", "VLUNet"),),
    translate_kwargs=_vlu_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file="net/Final.py",
    # The second input is the (N, 512) CLIP degradation vector.
    example_input_shapes=lambda model, shapes: [shapes[0], (shapes[0][0], DEGRADATION_DIM)],
    description="VLU-Net (CVPR 2025): unfolding with a CLIP degradation prior; inputs image + 512-d vector.",
))
