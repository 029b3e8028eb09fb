"""OSDFace's visual representation embedder (Wang et al., CVPR 2025; jkwang28/OSDFace commit 0652227,
`lq_embed/vqvae.py` `VQVAEencoder`): a CodeFormer/taming-style encoder of the low-quality face, a 1x1
`quant_conv` to the codebook width, and `VectorQuantizer.inference`, whose output replaces the text
embedding of the one-step U-Net.

Encoder: conv_in; per level `num_res_blocks` ResnetBlocks (GroupNorm 32 eps 1e-6, swish, 1x1
`nin_shortcut`), each followed by multi-head self-attention when the level's nominal resolution (from
`resolution`, not the input size) is in `attn_resolutions`; stride-2 conv after right/bottom padding
between levels; mid block-attention-block; GN-swish-conv_out.

Selection (discrete; reproduced exactly): distances d = |z|^2 + |e|^2 - 2 z.e of every latent position
to every code; each position's nearest code and distance; positions ordered by that distance (stable);
the first `n_min` distinct codes in that order, looked up in the codebook; rows past the number of
distinct codes stay zero. The official loop is only correct for batch 1 (it takes the minimum over the
whole batch); here each image is selected on its own, which is what it computes for batch 1.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.diffusion.latent.autoencoder_kl import VAEResnetBlock, _Resample
from jaxir.models.attention import dot_product_attention, merge_heads, split_heads
from jaxir.models.blocks import PRECISION, Conv2d, Dtype
from jaxir.models.unet_blocks import GroupNorm32


class MultiHeadAttnBlock(nn.Module):
    """Self-attention over pixels: GN, 1x1 q/k/v, softmax(q k^T / sqrt(C/heads)) v, 1x1 proj_out, residual."""

    head_size: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        n = GroupNorm32(32, 1e-6, name="norm1")(x)
        GroupNorm32(32, 1e-6, name="norm2")(x)  # official parameter, used only for cross-attention (never here)
        q, k, v = (split_heads(Conv2d(c, 1, dtype=self.dtype, name=name)(n).reshape(b, h * w, c), self.head_size)
                   for name in ("q", "k", "v"))
        out = merge_heads(dot_product_attention(q, k, v, (c // self.head_size) ** -0.5)).reshape(b, h, w, c)
        return x + Conv2d(c, 1, dtype=self.dtype, name="proj_out")(out)


class _Level(nn.Module):
    out_channels: int
    num_res_blocks: int
    attention: bool
    downsample: bool
    head_size: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_res_blocks):
            x = VAEResnetBlock(self.out_channels, 32, self.dtype, "nin_shortcut", name=f"block_{i}")(x)
            if self.attention:
                x = MultiHeadAttnBlock(self.head_size, self.dtype, name=f"attn_{i}")(x)
        if self.downsample:
            x = _Resample(True, self.dtype, name="downsample")(x)
        return x


class _Mid(nn.Module):
    head_size: int
    dtype: Dtype

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x = VAEResnetBlock(c, 32, self.dtype, "nin_shortcut", name="block_1")(x)
        x = MultiHeadAttnBlock(self.head_size, self.dtype, name="attn_1")(x)
        return VAEResnetBlock(c, 32, self.dtype, "nin_shortcut", name="block_2")(x)


class MultiHeadEncoder(nn.Module):
    ch: int
    ch_mult: Sequence[int]
    num_res_blocks: int
    attn_resolutions: Sequence[int]
    resolution: int
    z_channels: int
    double_z: bool = False
    enable_mid: bool = True
    head_size: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        h = Conv2d(self.ch, 3, padding=1, dtype=self.dtype, name="conv_in")(x.astype(self.dtype))
        res = self.resolution
        last = len(self.ch_mult) - 1
        for i, mult in enumerate(self.ch_mult):
            h = _Level(self.ch * mult, self.num_res_blocks, res in self.attn_resolutions, i != last, self.head_size,
                       self.dtype, name=f"down_{i}")(h)
            if i != last:
                res //= 2
        if self.enable_mid:
            h = _Mid(self.head_size, self.dtype, name="mid")(h)
        h = nn.silu(GroupNorm32(32, 1e-6, name="norm_out")(h))
        out = 2 * self.z_channels if self.double_z else self.z_channels
        return Conv2d(out, 3, padding=1, dtype=self.dtype, name="conv_out")(h)


def select_codes(z, codebook, n_min: int):
    """(N, H, W, C) latents, (n_e, C) codebook -> (N, n_min, C): the first n_min distinct nearest codes by distance."""
    n = z.shape[0]
    flat = z.reshape(n, -1, z.shape[-1]).astype(jnp.float32)
    e = codebook.astype(jnp.float32)
    d = (jnp.sum(flat ** 2, axis=-1, keepdims=True) + jnp.sum(e ** 2, axis=1)
         - 2.0 * jnp.einsum("npc,kc->npk", flat, e, precision=PRECISION))

    def one(dist):
        codes, values = jnp.argmin(dist, axis=-1), jnp.min(dist, axis=-1)
        order = jnp.argsort(values, stable=True)
        ranked = codes[order]
        positions = jnp.arange(ranked.shape[0])
        first_at = jnp.full((e.shape[0],), ranked.shape[0]).at[ranked].min(positions)
        is_first = first_at[ranked] == positions
        slot = jnp.cumsum(is_first) - 1
        keep = is_first & (slot < n_min)
        chosen = jnp.full((n_min,), -1).at[jnp.where(keep, slot, n_min)].set(ranked, mode="drop")
        return jnp.where((chosen >= 0)[:, None], e[jnp.maximum(chosen, 0)], 0.0)

    return jax.vmap(one)(d)


class VQVAEEncoder(nn.Module):
    n_embed: int = 1024
    embed_dim: int = 512
    ch: int = 64
    ch_mult: Sequence[int] = (1, 2, 2, 2, 4, 8)
    num_res_blocks: int = 2
    attn_resolutions: Sequence[int] = (16,)
    in_channels: int = 3
    resolution: int = 512
    z_channels: int = 512
    double_z: bool = False
    enable_mid: bool = True
    head_size: int = 1
    n_min: int = 77
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        """x: NHWC image as the official input (N, n_min, embed_dim) visual prompt."""
        hs = MultiHeadEncoder(self.ch, tuple(self.ch_mult), self.num_res_blocks, tuple(self.attn_resolutions),
                              self.resolution, self.z_channels, self.double_z, self.enable_mid, self.head_size,
                              self.dtype, name="encoder")(x)
        h = Conv2d(self.embed_dim, 1, dtype=self.dtype, name="quant_conv")(hs)
        table = _Codebook(self.n_embed, self.embed_dim, name="quantize")()
        return select_codes(h, table, self.n_min)


class _Codebook(nn.Module):
    """`quantize.embedding` (n_e, C), initialised U(-1/n_e, 1/n_e) as the official VectorQuantizer."""

    n_embed: int
    embed_dim: int

    @nn.compact
    def __call__(self):
        bound = 1.0 / self.n_embed

        def init(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        return nn.Embed(self.n_embed, self.embed_dim, embedding_init=init, name="embedding")(jnp.arange(self.n_embed))


_UNSUPPORTED_FLAGS = ("cat_prompt_embedding", "use_pos_embedding", "use_att_pool")
_UNUSED = ("out_ch", "dropout", "fix_decoder", "fix_codebook", "fix_encoder")


def official_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    flags = kwargs.pop("flags", kwargs.pop("args", {})) or {}
    on = [f for f in _UNSUPPORTED_FLAGS if flags.get(f)]
    if on:
        raise ValueError(f"VQVAEencoder options not ported: {on} (OSDFace's released configuration uses none)")
    for key in _UNUSED:
        kwargs.pop(key, None)
    for key in ("ch_mult", "attn_resolutions"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return kwargs


def build(**kwargs) -> VQVAEEncoder:
    for key in ("ch_mult", "attn_resolutions"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return VQVAEEncoder(**kwargs)


registry.register_model(registry.ModelEntry(
    name="osdface_vre",
    builder=build,
    official=(("jkwang28/OSDFace", "VQVAEencoder"),),
    translate_kwargs=official_kwargs,
    pad_multiple=32,
    min_size=32,
    official_file="lq_embed/vqvae.py",
    description="OSDFace visual representation embedder (VQ encoder + distinct nearest-code selection): 29.2M.",
))
