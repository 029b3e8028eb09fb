"""Latent-diffusion U-Net with spatial transformers: `ldm.modules.diffusionmodules.openaimodel.UNetModel`
of Stable Diffusion (Rombach et al., CVPR 2022), as GenDeg ships it (sudraj2002/GenDeg, commit dc22c1e,
`GenDeg/stable_diffusion/ldm/modules/`, the InstructPix2Pix fork of CompVis/stable-diffusion).

The ADM skeleton (timestep MLP, input/middle/output blocks with skip concatenations,
`jaxir.models.unet_blocks` ResBlocks, up/downsampling) with every attention block a
`SpatialTransformer` (`ldm/modules/attention.py`): GroupNorm (eps 1e-6), 1x1 proj_in,
`transformer_depth` BasicTransformerBlocks (pre-LayerNorm self-attention, cross-attention to
the context, GEGLU feed-forward, each residual), 1x1 proj_out, residual. Heads: `num_heads`
fixed with head width ch / num_heads, or ch / num_head_channels heads (SD 2.x).

Inputs: NHWC latent x (GenDeg: 8 channels = noisy latent ++ clean-image latent), timesteps
(N,) (integers in the official use), context (N, L, context_dim) (CLIP ViT-L/14 last hidden
states, L = 77). `remat` recomputes each ResBlock and transformer block in the backward pass
(the official `use_checkpoint`; outputs unchanged).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.attention import dot_product_attention, merge_heads, split_heads
from jaxir.models.blocks import Conv2d, Dtype, LayerNorm, Linear
from jaxir.models.unet_blocks import Downsample, GroupNorm32, ResBlock, Upsample, timestep_embedding


class CrossAttention(nn.Module):
    """`CrossAttention`: bias-free to_q/to_k/to_v, softmax(q k^T / sqrt(d)) v per head, to_out Linear.

    Self-attention when `context` is None.
    """

    heads: int
    dim_head: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, context=None):
        context = x if context is None else context
        inner = self.heads * self.dim_head
        q = Linear(inner, use_bias=False, dtype=self.dtype, name="to_q")(x)
        k = Linear(inner, use_bias=False, dtype=self.dtype, name="to_k")(context.astype(self.dtype))
        v = Linear(inner, use_bias=False, dtype=self.dtype, name="to_v")(context.astype(self.dtype))
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
        out = merge_heads(dot_product_attention(q, k, v, self.dim_head ** -0.5))
        return Linear(x.shape[-1], dtype=self.dtype, name="to_out_0")(out)


class GEGLU(nn.Module):
    """x * GELU(gate) with [x, gate] = proj(input) (exact erf GELU, as torch's F.gelu)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h, gate = jnp.split(Linear(2 * self.features, dtype=self.dtype, name="proj")(x), 2, axis=-1)
        return h * nn.gelu(gate, approximate=False)


class FeedForward(nn.Module):
    """GEGLU to 4x width, dropout, Linear back (`FeedForward(dim, glu=True)`)."""

    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        h = GEGLU(4 * x.shape[-1], self.dtype, name="net_0")(x)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        return Linear(x.shape[-1], dtype=self.dtype, name="net_2")(h)


class BasicTransformerBlock(nn.Module):
    heads: int
    dim_head: int
    dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, context, train: bool = False):
        dt = self.dtype
        drop = nn.Dropout(self.dropout, deterministic=not train)
        x = drop(CrossAttention(self.heads, self.dim_head, dt, name="attn1")(LayerNorm(dtype=dt, name="norm1")(x))) + x
        x = drop(CrossAttention(self.heads, self.dim_head, dt, name="attn2")(
            LayerNorm(dtype=dt, name="norm2")(x), context)) + x
        return FeedForward(self.dropout, dt, name="ff")(LayerNorm(dtype=dt, name="norm3")(x), train) + x


class SpatialTransformer(nn.Module):
    heads: int
    dim_head: int
    depth: int = 1
    dropout: float = 0.0
    remat: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, context, train: bool = False):
        b, height, width, c = x.shape
        inner = self.heads * self.dim_head
        h = GroupNorm32(epsilon=1e-6, name="norm")(x)
        h = Conv2d(inner, 1, dtype=self.dtype, name="proj_in")(h).reshape(b, height * width, inner)
        # self is argument 0 for nn.remat; `train` (3) is a Python bool.
        block_cls = nn.remat(BasicTransformerBlock, static_argnums=(3,)) if self.remat else BasicTransformerBlock
        for index in range(self.depth):
            h = block_cls(self.heads, self.dim_head, self.dropout, self.dtype,
                          name=f"transformer_blocks_{index}")(h, context, train)
        h = Conv2d(c, 1, dtype=self.dtype, name="proj_out")(h.reshape(b, height, width, inner))
        return h + x


class LDMUNet(nn.Module):
    in_channels: int = 4
    model_channels: int = 320
    out_channels: int = 4
    num_res_blocks: int = 2
    attention_resolutions: Sequence[int] = (4, 2, 1)  # downsample rates
    dropout: float = 0.0
    channel_mult: Sequence[int] = (1, 2, 4, 4)
    conv_resample: bool = True
    num_classes: int | None = None
    num_heads: int = 8
    num_head_channels: int = -1
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    transformer_depth: int = 1
    context_dim: int = 768
    remat: bool = False
    dtype: Dtype = jnp.float32

    def _heads(self, channels: int) -> tuple[int, int]:
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        return channels // self.num_head_channels, self.num_head_channels

    @nn.compact
    def __call__(self, x, timesteps, context, y=None, train: bool = False):
        if (y is None) != (self.num_classes is None):
            raise ValueError("pass class labels y if and only if the model is class-conditional (num_classes)")
        if x.ndim != 4 or x.shape[-1] != self.in_channels:
            raise ValueError(f"LDM U-Net expects NHWC input with {self.in_channels} channels, got {x.shape}")
        if context.ndim != 3 or context.shape[-1] != self.context_dim:
            raise ValueError(f"context must be (N, L, {self.context_dim}), got {context.shape}")
        levels = len(self.channel_mult) - 1
        if x.shape[1] % 2 ** levels or x.shape[2] % 2 ** levels:
            raise ValueError(f"H and W must be multiples of {2 ** levels} ({levels} downsamplings), got {x.shape[1:3]}")
        dt = self.dtype
        mc = self.model_channels
        emb = timestep_embedding(timesteps, mc)
        emb = Linear(4 * mc, dtype=dt, name="time_embed_0")(emb)
        emb = Linear(4 * mc, dtype=dt, name="time_embed_2")(nn.silu(emb))
        if self.num_classes is not None:
            emb = emb + nn.Embed(self.num_classes, 4 * mc, name="label_emb")(y).astype(emb.dtype)
        context = context.astype(dt)
        res_cls = nn.remat(ResBlock, static_argnums=(3,)) if self.remat else ResBlock

        def res(h, out_ch, name, **kw):
            return res_cls(out_ch, self.dropout, use_scale_shift_norm=self.use_scale_shift_norm, dtype=dt,
                           name=name, **kw)(h, emb, train)

        def attn(h, name):
            heads, dim_head = self._heads(h.shape[-1])
            return SpatialTransformer(heads, dim_head, self.transformer_depth, self.dropout, self.remat, dt,
                                      name=name)(h, context, train)

        h = Conv2d(mc, 3, padding=1, dtype=dt, name="input_blocks_0_0")(x.astype(dt))
        hs = [h]
        ds, index = 1, 1
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.num_res_blocks):
                h = res(h, mult * mc, f"input_blocks_{index}_0")
                if ds in self.attention_resolutions:
                    h = attn(h, f"input_blocks_{index}_1")
                hs.append(h)
                index += 1
            if level != levels:
                name = f"input_blocks_{index}_0"
                h = res(h, h.shape[-1], name, down=True) if self.resblock_updown else \
                    Downsample(self.conv_resample, h.shape[-1], dt, name=name)(h)
                hs.append(h)
                index += 1
                ds *= 2

        h = res(h, h.shape[-1], "middle_block_0")
        h = attn(h, "middle_block_1")
        h = res(h, h.shape[-1], "middle_block_2")

        index = 0
        for level, mult in reversed(list(enumerate(self.channel_mult))):
            for i in range(self.num_res_blocks + 1):
                h = jnp.concatenate([h, hs.pop()], axis=-1)
                h = res(h, mc * mult, f"output_blocks_{index}_0")
                sub = 1
                if ds in self.attention_resolutions:
                    h = attn(h, f"output_blocks_{index}_{sub}")
                    sub += 1
                if level and i == self.num_res_blocks:
                    name = f"output_blocks_{index}_{sub}"
                    h = res(h, h.shape[-1], name, up=True) if self.resblock_updown else \
                        Upsample(self.conv_resample, h.shape[-1], dt, name=name)(h)
                    ds //= 2
                index += 1

        h = nn.silu(GroupNorm32(name="out_0")(h))
        return Conv2d(self.out_channels, 3, padding=1, dtype=dt, name="out_2")(h).astype(jnp.float32)


# image_size, fp16 and checkpointing do not change the function; `legacy` only changes the head
# split of plain AttentionBlocks, never of spatial transformers.
_UNUSED_OFFICIAL = ("image_size", "use_checkpoint", "use_fp16", "dims", "legacy", "use_spatial_transformer",
                    "num_heads_upsample", "use_new_attention_order")


def official_kwargs(official: dict) -> dict:
    if official.get("dims", 2) != 2:
        raise ValueError("only 2-D U-Nets are ported")
    if not official.get("use_spatial_transformer", False):
        raise ValueError("LDMUNet ports the spatial-transformer U-Net; without it the ADM U-Net (adm_unet) applies")
    if official.get("n_embed") is not None:
        raise ValueError("codebook-id prediction (n_embed) is not ported")
    kwargs = {k: v for k, v in official.items() if k not in _UNUSED_OFFICIAL and k != "n_embed"}
    return kwargs


def build_ldm_unet(**kwargs) -> LDMUNet:
    for key in ("attention_resolutions", "channel_mult"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return LDMUNet(**kwargs)


def example_inputs(model: LDMUNet, batch: int, height: int, width: int, context_length: int = 77) -> list:
    """Abstract (x, timesteps, context[, y]) for tracing."""
    inputs = [jax.ShapeDtypeStruct((batch, height, width, model.in_channels), jnp.float32),
              jax.ShapeDtypeStruct((batch,), jnp.int32),
              jax.ShapeDtypeStruct((batch, context_length, model.context_dim), jnp.float32)]
    if model.num_classes is not None:
        inputs.append(jax.ShapeDtypeStruct((batch,), jnp.int32))
    return inputs


registry.register_model(registry.ModelEntry(
    name="ldm_unet",
    builder=build_ldm_unet,
    official=(("sudraj2002/GenDeg", "UNetModel"), ("CompVis/stable-diffusion", "UNetModel")),
    translate_kwargs=official_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file="GenDeg/stable_diffusion/ldm/modules/diffusionmodules/openaimodel.py",
    example_inputs=example_inputs,
    description="Latent-diffusion U-Net with spatial transformers (SD 1.x; GenDeg's 8-channel U-Net: 859.5M).",
))
