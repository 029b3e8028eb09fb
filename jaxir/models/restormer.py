"""Restormer, incl. the dual-pixel defocus-deblurring variant.

Zamir, Arora, Khan, Hayat, Khan, Yang. "Restormer: Efficient Transformer for
High-Resolution Image Restoration", CVPR 2022.
Official code: swz30/Restormer, basicsr/models/archs/restormer_arch.py.

A 4-level U-Net of transformer blocks: multi-Dconv head transposed attention
(MDTA, attention across channels, so its cost is linear in the pixels) and a
gated-Dconv feed-forward network (GDFN). The building blocks (`MDTA`, `GDFN`,
`TransformerBlock`, `OverlapPatchEmbed`, `Downsample`, `Upsample`) are public
and parametric: PromptIR and MoCE-IR reuse them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.attention import dot_product_attention, l2_normalize, merge_heads, split_heads
from jaxir.models.blocks import Conv2d, LayerNorm, gelu, pixel_shuffle, pixel_unshuffle

Dtype = Any
LAYER_NORM_TYPES = ("WithBias", "BiasFree")


class RestormerLayerNorm(nn.Module):
    """Channel LayerNorm (eps 1e-5), the official wrapper whose `body` holds the weights."""

    layer_norm_type: str = "WithBias"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"layer_norm_type must be one of {LAYER_NORM_TYPES}, got {self.layer_norm_type!r}")
        return LayerNorm(epsilon=1e-5, bias_free=self.layer_norm_type == "BiasFree", dtype=self.dtype,
                         name="body")(x)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: tokens are channels, L2-normalised over pixels.

    attn = softmax(temperature_h * q_hat k_hat^T) with a learned temperature per head.
    """

    num_heads: int
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        dt = self.dtype
        temperature = self.param("temperature", nn.initializers.ones, (self.num_heads,), jnp.float32)
        qkv = Conv2d(3 * c, 1, use_bias=self.use_bias, dtype=dt, name="qkv")(x)
        qkv = Conv2d(3 * c, 3, padding=1, groups=3 * c, use_bias=self.use_bias, dtype=dt, name="qkv_dwconv")(qkv)
        out = transposed_attention(*jnp.split(qkv, 3, axis=-1), temperature)
        return Conv2d(c, 1, use_bias=self.use_bias, dtype=dt, name="project_out")(out)


def transposed_attention(q, k, v, temperature):
    """MDTA's attention on NHWC q, k, v: per head (len(temperature) heads), channels are the tokens."""
    b, h, w, c = q.shape
    num_heads = temperature.shape[0]
    # (B, HW, C) -> (B, heads, C/heads, HW): each channel of a head is a token over all pixels.
    q, k, v = (split_heads(t.reshape(b, h * w, c), num_heads).swapaxes(-1, -2) for t in (q, k, v))
    out = dot_product_attention(l2_normalize(q), l2_normalize(k), v, temperature[:, None, None])
    return merge_heads(out.swapaxes(-1, -2)).reshape(b, h, w, c)


def gdfn_hidden_features(dim: int, ffn_expansion_factor: float) -> int:
    """GDFN hidden width: the official int() truncation (48 * 2.66 -> 127)."""
    return int(dim * ffn_expansion_factor)


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: 1x1 -> depthwise 3x3 -> GELU(x1) * x2 -> 1x1."""

    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c, dt = x.shape[-1], self.dtype
        hidden = gdfn_hidden_features(c, self.ffn_expansion_factor)
        x = Conv2d(2 * hidden, 1, use_bias=self.use_bias, dtype=dt, name="project_in")(x)
        x = Conv2d(2 * hidden, 3, padding=1, groups=2 * hidden, use_bias=self.use_bias, dtype=dt, name="dwconv")(x)
        x1, x2 = jnp.split(x, 2, axis=-1)
        return Conv2d(c, 1, use_bias=self.use_bias, dtype=dt, name="project_out")(gelu(x1) * x2)


class TransformerBlock(nn.Module):
    """x + MDTA(LN(x)), then + GDFN(LN(x)); the width is the input's channel count.

    `names` are the official attribute names of (norm1, attn, norm2, ffn): MoCE-IR's
    encoder block is this block with `norms.0`, `mixer`, `norms.1`, `ffn`.
    """

    num_heads: int
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    layer_norm_type: str = "WithBias"
    dtype: Dtype = jnp.float32
    names: tuple[str, str, str, str] = ("norm1", "attn", "norm2", "ffn")

    @nn.compact
    def __call__(self, x):
        dt = self.dtype
        norm1, attn, norm2, ffn = self.names
        x = x + MDTA(self.num_heads, self.use_bias, dt, name=attn)(
            RestormerLayerNorm(self.layer_norm_type, dt, name=norm1)(x))
        return x + GDFN(self.ffn_expansion_factor, self.use_bias, dt, name=ffn)(
            RestormerLayerNorm(self.layer_norm_type, dt, name=norm2)(x))


class OverlapPatchEmbed(nn.Module):
    """3x3 conv embedding (the official Restormer builds it without bias whatever `bias` says)."""

    embed_dim: int = 48
    use_bias: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return Conv2d(self.embed_dim, 3, padding=1, use_bias=self.use_bias, dtype=self.dtype, name="proj")(x)


class Downsample(nn.Module):
    """3x3 conv to half the channels, then pixel-unshuffle: (H, W, C) -> (H/2, W/2, 2C)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv2d(x.shape[-1] // 2, 3, padding=1, use_bias=False, dtype=self.dtype, name="body_0")(x)
        return pixel_unshuffle(x, 2)


class Upsample(nn.Module):
    """3x3 conv to twice the channels, then pixel-shuffle: (H, W, C) -> (2H, 2W, C/2)."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv2d(x.shape[-1] * 2, 3, padding=1, use_bias=False, dtype=self.dtype, name="body_0")(x)
        return pixel_shuffle(x, 2)


class Restormer(nn.Module):
    """The official Restormer; `dual_pixel_task` adds the refinement skip conv and drops the input residual."""

    inp_channels: int = 3
    out_channels: int = 3
    dim: int = 48
    num_blocks: Sequence[int] = (4, 6, 6, 8)
    num_refinement_blocks: int = 4
    heads: Sequence[int] = (1, 2, 4, 8)
    ffn_expansion_factor: float = 2.66
    use_bias: bool = False
    layer_norm_type: str = "WithBias"  # or "BiasFree" (the denoising models)
    dual_pixel_task: bool = False  # dual-pixel defocus deblurring; set inp_channels=6
    dtype: Dtype = jnp.float32

    def _check(self, x):
        if len(self.num_blocks) != 4 or len(self.heads) != 4:
            raise ValueError(f"num_blocks and heads need 4 levels each, got {self.num_blocks} and {self.heads}")
        if self.layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"layer_norm_type must be one of {LAYER_NORM_TYPES}, got {self.layer_norm_type!r}")
        if x.ndim != 4 or x.shape[-1] != self.inp_channels:
            raise ValueError(f"Restormer expects NHWC input with {self.inp_channels} channels, got shape {x.shape}")
        if x.shape[1] % 8 or x.shape[2] % 8:
            raise ValueError(f"Restormer needs H and W divisible by 8 (three 2x downsamplings), got "
                             f"{x.shape[1]}x{x.shape[2]}; pad the input (registry pad_multiple=8)")

    @nn.compact
    def __call__(self, inp, train: bool = False):
        self._check(inp)
        dt, dim = self.dtype, self.dim
        inp = inp.astype(dt)

        def stage(x, num, heads, prefix):
            for i in range(num):
                x = TransformerBlock(heads, self.ffn_expansion_factor, self.use_bias, self.layer_norm_type, dt,
                                     name=f"{prefix}_{i}")(x)
            return x

        def reduce(x, features, name):
            return Conv2d(features, 1, use_bias=self.use_bias, dtype=dt, name=name)(x)

        embedded = OverlapPatchEmbed(dim, dtype=dt, name="patch_embed")(inp)
        enc1 = stage(embedded, self.num_blocks[0], self.heads[0], "encoder_level1")
        enc2 = stage(Downsample(dt, name="down1_2")(enc1), self.num_blocks[1], self.heads[1], "encoder_level2")
        enc3 = stage(Downsample(dt, name="down2_3")(enc2), self.num_blocks[2], self.heads[2], "encoder_level3")
        latent = stage(Downsample(dt, name="down3_4")(enc3), self.num_blocks[3], self.heads[3], "latent")

        x = jnp.concatenate([Upsample(dt, name="up4_3")(latent), enc3], axis=-1)
        x = stage(reduce(x, 4 * dim, "reduce_chan_level3"), self.num_blocks[2], self.heads[2], "decoder_level3")
        x = jnp.concatenate([Upsample(dt, name="up3_2")(x), enc2], axis=-1)
        x = stage(reduce(x, 2 * dim, "reduce_chan_level2"), self.num_blocks[1], self.heads[1], "decoder_level2")
        # Level 1 keeps 2*dim channels after the concatenation (no 1x1 reduction).
        x = jnp.concatenate([Upsample(dt, name="up2_1")(x), enc1], axis=-1)
        x = stage(x, self.num_blocks[0], self.heads[0], "decoder_level1")
        x = stage(x, self.num_refinement_blocks, self.heads[0], "refinement")

        if self.dual_pixel_task:
            x = x + reduce(embedded, 2 * dim, "skip_conv")
        out = Conv2d(self.out_channels, 3, padding=1, use_bias=self.use_bias, dtype=dt, name="output")(x)
        if not self.dual_pixel_task:
            out = out + inp
        return out.astype(jnp.float32)


def _restormer_kwargs(official: dict) -> dict:
    """Official constructor kwargs -> `build_restormer` kwargs."""
    kwargs = dict(official)
    renames = {"bias": "use_bias", "LayerNorm_type": "layer_norm_type"}
    for old, new in renames.items():
        if old in kwargs:
            kwargs[new] = kwargs.pop(old)
    return kwargs


def build_restormer(**kwargs) -> Restormer:
    for key in ("num_blocks", "heads"):
        if key in kwargs:
            kwargs[key] = tuple(int(v) for v in kwargs[key])
    return Restormer(**kwargs)


_REPO = "swz30/Restormer"
_FILE = "basicsr/models/archs/restormer_arch.py"

registry.register_model(registry.ModelEntry(
    name="restormer",
    builder=build_restormer,
    official=((_REPO, "Restormer"),),
    translate_kwargs=_restormer_kwargs,
    pad_multiple=8,
    min_size=8,
    official_file=_FILE,
    description="Restormer (CVPR 2022), 26.1M params; dual_pixel_task=True with inp_channels=6 for DPDD.",
    # The last transformer block of each encoder level and of the latent.
    encoder_taps=lambda m: tuple(f"{name}_{num - 1}" for name, num in zip(
        ("encoder_level1", "encoder_level2", "encoder_level3", "latent"), m.num_blocks)),
))
