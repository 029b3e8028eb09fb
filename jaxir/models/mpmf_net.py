"""MPMF-Net: multi-axis prompt and multi-dimension fusion network for all-in-one weather removal.

Chen, Wen, et al. "Multi-Axis Prompt and Multi-Dimension Fusion Network for All-in-One
Weather-Degraded Image Restoration", AAAI 2025. Official code: chdwyb/MPMF-Net,
model.py and INR.py.

A DehazeFormer-style U-Net (window attention with revised LayerNorm (RLN), whose
std/mean re-enter through 1x1 convs as rescale/rebias; DW-conv blocks; reflect padding)
with
- MPLB, multi-axis prompt learning: learned prompts over (H, W), (C, H) and (C, W),
  bilinearly resized (align_corners) to the features, filtered depthwise, multiplied in;
- MFIB, multi-dimension fusion of decoder and skip features: cross attention along H,
  along W and across channels, each re-scaled by the RLN statistics;
- a coarse-scale degradation-free branch: the input nearest-downsampled by 4, encoded,
  decoded by an implicit neural representation (LIIF-style: 3x3 feature unfolding,
  positional encoding of the coordinates, cell decoding, local ensemble) and upsampled
  by 4 as extra input channels. The model returns (restored, coarse INR output).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.models.attention import dot_product_attention, merge_heads
from jaxir.models.blocks import (PRECISION, Conv2d, Linear, interpolate_nearest, pixel_shuffle,
                                 resize_bilinear_align_corners)

Dtype = Any
INR_HIDDEN = (256, 256, 256)
INR_FREQUENCIES = 4  # L in INR.py
BUFFERS = "buffers"  # non-trainable constants of the official state dict


class RLN(nn.Module):
    """Revised LayerNorm over (C, H, W); returns (normalised, meta1(std), meta2(mean))."""

    eps: float = 1e-5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        dim = x.shape[-1]
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=(1, 2, 3), keepdims=True)
        std = jnp.sqrt(jnp.mean(jnp.square(x32 - mean), axis=(1, 2, 3), keepdims=True) + self.eps)
        weight = self.param("weight", nn.initializers.ones, (dim,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (dim,), jnp.float32)
        out = ((x32 - mean) / std * weight + bias).astype(self.dtype)
        rescale = Conv2d(dim, 1, dtype=self.dtype, name="meta1")(std)
        rebias = Conv2d(dim, 1, dtype=self.dtype, name="meta2")(mean)
        return out, rescale, rebias


class Mlp(nn.Module):
    hidden: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = nn.relu(Conv2d(self.hidden, 1, dtype=self.dtype, name="mlp_0")(x))
        return Conv2d(x.shape[-1], 1, dtype=self.dtype, name="mlp_2")(y)


def relative_positions(window_size: int) -> np.ndarray:
    """(N, N, 2) signed log relative offsets between the window's pixels (DehazeFormer)."""
    coords = np.stack(np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0).astype(np.float32)
    return (np.sign(rel) * np.log1p(np.abs(rel))).astype(np.float32)


class WindowAttention(nn.Module):
    """Attention inside a window, with a bias from an MLP of the log relative positions."""

    num_heads: int
    window_size: int
    dtype: Dtype = jnp.float32

    # The official relative positions are a state-dict buffer (a constant, kept as given).
    TORCH_PARAMS = {"relative_positions": (BUFFERS, "relative_positions", None)}

    @nn.compact
    def __call__(self, qkv):
        b, n, c3 = qkv.shape
        dim = c3 // 3
        head_dim = dim // self.num_heads
        qkv = qkv.reshape(b, n, 3, self.num_heads, head_dim).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        positions = self.variable(BUFFERS, "relative_positions",
                                  lambda: jnp.asarray(relative_positions(self.window_size))).value
        bias = Linear(256, dtype=self.dtype, name="meta_0")(positions)
        bias = Linear(self.num_heads, dtype=self.dtype, name="meta_2")(nn.relu(bias))
        logits = jnp.einsum("bhnd,bhmd->bhnm", q * head_dim ** -0.5, k, precision=PRECISION,
                            preferred_element_type=jnp.float32)
        weights = jax.nn.softmax(logits + bias.transpose(2, 0, 1)[None].astype(jnp.float32), axis=-1)
        out = jnp.einsum("bhnm,bhmd->bhnd", weights.astype(v.dtype), v, precision=PRECISION)
        return merge_heads(out)


def _window_partition(x, ws: int):
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _window_reverse(windows, ws: int, h: int, w: int):
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class Attention(nn.Module):
    """DehazeFormer's token mixer: window attention on [QK, V] plus (DWConv) a 5x5 depthwise conv of V."""

    num_heads: int
    window_size: int
    shift_size: int
    use_attn: bool
    conv_type: str | None = "DWConv"
    dtype: Dtype = jnp.float32

    def _reflect_pad(self, x, shift: bool):
        ws, s = self.window_size, self.shift_size
        h, w = x.shape[1:3]
        mod_h, mod_w = (ws - h % ws) % ws, (ws - w % ws) % ws
        if shift:
            pad = ((s, (ws - s + mod_h) % ws), (s, (ws - s + mod_w) % ws))
        else:
            pad = ((0, mod_h), (0, mod_w))
        return jnp.pad(x, ((0, 0), *pad, (0, 0)), mode="reflect")

    @nn.compact
    def __call__(self, x):
        b, h, w, dim = x.shape
        dt = self.dtype
        if self.conv_type not in ("Conv", "DWConv", None):
            raise ValueError(f"conv_type must be 'Conv', 'DWConv' or None, got {self.conv_type!r}")
        if self.conv_type == "Conv":
            def conv(y):
                y = Conv2d(dim, 3, padding=1, padding_mode="reflect", dtype=dt, name="conv_0")(y)
                return Conv2d(dim, 3, padding=1, padding_mode="reflect", dtype=dt, name="conv_2")(nn.relu(y))
        elif self.conv_type == "DWConv":
            def conv(y):
                return Conv2d(dim, 5, padding=2, groups=dim, padding_mode="reflect", dtype=dt, name="conv")(y)
        if self.conv_type == "DWConv" or self.use_attn:
            v = Conv2d(dim, 1, dtype=dt, name="V")(x)
            proj = Conv2d(dim, 1, dtype=dt, name="proj")
        if not self.use_attn:
            return conv(x) if self.conv_type == "Conv" else proj(conv(v))
        qkv = jnp.concatenate([Conv2d(2 * dim, 1, dtype=dt, name="QK")(x), v], axis=-1)
        shifted = self._reflect_pad(qkv, self.shift_size > 0)
        ht, wt = shifted.shape[1:3]
        windows = WindowAttention(self.num_heads, self.window_size, dt, name="attn")(
            _window_partition(shifted, self.window_size))
        s = self.shift_size
        attn_out = _window_reverse(windows, self.window_size, ht, wt)[:, s:s + h, s:s + w]
        if self.conv_type in ("Conv", "DWConv"):
            return proj(conv(v) + attn_out)
        return proj(attn_out)


class TransformerBlock(nn.Module):
    num_heads: int
    mlp_ratio: float
    window_size: int
    shift_size: int
    use_attn: bool
    conv_type: str | None = "DWConv"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        identity = x
        if self.use_attn:
            x, rescale, rebias = RLN(dtype=self.dtype, name="norm1")(x)
        x = Attention(self.num_heads, self.window_size, self.shift_size, self.use_attn, self.conv_type,
                      self.dtype, name="attn")(x)
        if self.use_attn:
            x = x * rescale + rebias
        x = identity + x
        return x + Mlp(int(x.shape[-1] * self.mlp_ratio), self.dtype, name="mlp")(x)


def attention_flags(depth: int, attn_ratio: float, attn_loc: str = "last") -> list[bool]:
    """Which blocks of a layer use attention (the official float arithmetic)."""
    attn_depth = attn_ratio * depth
    if attn_loc == "last":
        return [i >= depth - attn_depth for i in range(depth)]
    if attn_loc == "first":
        return [i < attn_depth for i in range(depth)]
    if attn_loc == "middle":
        return [(depth - attn_depth) // 2 <= i < (depth + attn_depth) // 2 for i in range(depth)]
    raise ValueError(f"attn_loc must be last, first or middle, got {attn_loc!r}")


class BasicLayer(nn.Module):
    depth: int
    num_heads: int
    mlp_ratio: float
    window_size: int
    attn_ratio: float
    conv_type: str | None = "DWConv"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i, use_attn in enumerate(attention_flags(self.depth, self.attn_ratio)):
            x = TransformerBlock(self.num_heads, self.mlp_ratio, self.window_size,
                                 0 if i % 2 == 0 else self.window_size // 2, use_attn, self.conv_type,
                                 self.dtype, name=f"blocks_{i}")(x)
        return x


class PatchEmbed(nn.Module):
    features: int
    patch_size: int
    kernel_size: int | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size or self.patch_size
        return Conv2d(self.features, k, self.patch_size, (k - self.patch_size + 1) // 2, padding_mode="reflect",
                      dtype=self.dtype, name="proj")(x)


class PatchUnEmbed(nn.Module):
    out_chans: int
    patch_size: int
    kernel_size: int | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size or 1
        y = Conv2d(self.out_chans * self.patch_size ** 2, k, padding=k // 2, padding_mode="reflect",
                   dtype=self.dtype, name="proj_0")(x)
        return pixel_shuffle(y, self.patch_size)


class MFIB(nn.Module):
    """Multi-dimension feature interaction between the decoder (u) and skip (d) features."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x_u, x_d):
        dim, dt = x_u.shape[-1], self.dtype
        scales = [self.param(f"scale_{a}", nn.initializers.ones, (1,), jnp.float32) for a in "hwc"]
        x_d_norm, rescale_d, bias_d = RLN(dtype=dt, name="norm_d")(x_d)
        x_u_norm, rescale_u, bias_u = RLN(dtype=dt, name="norm_u")(x_u)
        q_u, v_u = jnp.split(Conv2d(2 * dim, 1, dtype=dt, name="pconv_qkv_u")(x_u_norm), 2, axis=-1)
        k_d, v_d = jnp.split(Conv2d(2 * dim, 1, dtype=dt, name="pconv_qkv_d")(x_d_norm), 2, axis=-1)
        (q_h, q_w, q_c), (k_h, k_w, k_c) = jnp.split(q_u, 3, axis=-1), jnp.split(k_d, 3, axis=-1)
        (vu_h, vu_w, vu_c), (vd_h, vd_w, vd_c) = jnp.split(v_u, 3, axis=-1), jnp.split(v_d, 3, axis=-1)

        def ein(spec, a, b):
            return jnp.einsum(spec, a, b, precision=PRECISION)

        # Along H (per column): one softmax, its transpose carries u to d.
        attn_h = jax.nn.softmax(ein("biwc,bjwc->bwij", q_h, k_h) * scales[0], axis=-1)
        d2u_h = ein("bwij,bjwc->biwc", attn_h, vd_h)
        u2d_h = ein("bwij,biwc->bjwc", attn_h, vu_h)
        # Along W (per row): softmax over the key axis one way, over the query axis the other.
        logits_w = ein("bhic,bhjc->bhij", q_w, k_w) * scales[1]
        d2u_w = ein("bhij,bhjc->bhic", jax.nn.softmax(logits_w, axis=-1), vd_w)
        u2d_w = ein("bhij,bhic->bhjc", jax.nn.softmax(logits_w, axis=-2), vu_w)
        # Across channels: the same softmax for both directions.
        attn_c = jax.nn.softmax(ein("bhwc,bhwd->bcd", q_c, k_c) * scales[2], axis=-1)
        d2u_c = ein("bcd,bhwd->bhwc", attn_c, vd_c)
        u2d_c = ein("bcd,bhwd->bhwc", attn_c, vu_c)
        x_u = jnp.concatenate([d2u_h, d2u_w, d2u_c], -1) * rescale_u + bias_u + x_u
        x_d = jnp.concatenate([u2d_h, u2d_w, u2d_c], -1) * rescale_d + bias_d + x_d
        return x_u + x_d


class DepthwiseConv1d(nn.Module):
    """`nn.Conv1d(C, C, 3, padding=1, groups=C, bias=False)` on (C, L), weight in the official (C, 1, 3)."""

    @nn.compact
    def __call__(self, x):
        c, length = x.shape
        bound = 1.0 / math.sqrt(3)
        weight = self.param("weight", lambda k, s: jax.random.uniform(k, s, jnp.float32, -bound, bound), (c, 1, 3))
        padded = jnp.pad(x, ((0, 0), (1, 1)))
        return sum(padded[:, i:i + length] * weight[:, 0, i:i + 1].astype(x.dtype) for i in range(3))


class MPLB(nn.Module):
    """Multi-axis prompt learning: learned (H, W), (C, H) and (C, W) prompts gate a third of the channels each."""

    size: tuple[int, int]
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, h, w, dim = x.shape
        pd = dim // 3
        s0, s1 = self.size
        hw = self.param("hw", nn.initializers.ones, (1, pd, s0, s1), jnp.float32)
        ch = self.param("ch", nn.initializers.ones, (1, 1, pd, s0), jnp.float32)
        cw = self.param("cw", nn.initializers.ones, (1, 1, pd, s1), jnp.float32)
        x1, x2, x3 = jnp.split(x, 3, axis=-1)
        prompt_hw = resize_bilinear_align_corners(hw.transpose(0, 2, 3, 1), (h, w))
        prompt_hw = Conv2d(pd, 3, padding=1, groups=pd, use_bias=False, dtype=self.dtype, name="conv_hw")(prompt_hw)
        # (1, 1, C, S) prompts: only the spatial axis is resized (C keeps its size), align_corners.
        prompt_ch = resize_bilinear_align_corners(ch.transpose(0, 2, 3, 1), (pd, h))[0, :, :, 0]  # (C, H)
        prompt_cw = resize_bilinear_align_corners(cw.transpose(0, 2, 3, 1), (pd, w))[0, :, :, 0]  # (C, W)
        prompt_ch = DepthwiseConv1d(name="conv_ch")(prompt_ch)
        prompt_cw = DepthwiseConv1d(name="conv_cw")(prompt_cw)
        x1 = x1 * prompt_hw.astype(x.dtype)
        x2 = x2 * prompt_ch.T[None, :, None, :].astype(x.dtype)  # factor[c, h]
        x3 = x3 * prompt_cw.T[None, None, :, :].astype(x.dtype)  # factor[c, w]
        return Conv2d(dim, 1, dtype=self.dtype, name="conv_4")(jnp.concatenate([x1, x2, x3], -1)) + x


def make_coord(h: int, w: int) -> np.ndarray:
    """Pixel-centre coordinates in [-1, 1], (H, W, 2) as (row, column)."""
    def seq(n):
        r = 1.0 / n
        return (-1 + r + 2 * r * np.arange(n, dtype=np.float32)).astype(np.float32)

    return np.stack(np.meshgrid(seq(h), seq(w), indexing="ij"), axis=-1).astype(np.float32)


def positional_encoding(x, frequencies: int = INR_FREQUENCIES):
    """[sin, cos](x * 2^l * pi) per coordinate: (..., D) -> (..., D * 2 * L), ordered (D, sin/cos, L)."""
    freq = (2.0 ** jnp.arange(frequencies, dtype=jnp.float32)) * np.float32(np.pi)
    spectrum = x[..., None] * freq
    enc = jnp.stack([jnp.sin(spectrum), jnp.cos(spectrum)], axis=-2)
    return enc.reshape(*x.shape[:-1], -1)


class _ImNet(nn.Module):
    hidden: tuple[int, ...]
    out_channels: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, y):
        for i, features in enumerate(self.hidden):
            y = nn.relu(Linear(features, dtype=self.dtype, name=f"layers_{2 * i}")(y))
        return Linear(self.out_channels, dtype=self.dtype, name=f"layers_{2 * len(self.hidden)}")(y)


class INR(nn.Module):
    """LIIF-style decoder of the coarse features into RGB at the features' own resolution.

    The MLP reads the 3x3-unfolded feature, the relative coordinate (with its
    positional encoding) scaled by the feature size, and the cell size. The official
    local ensemble shifts a copy of the query coordinates per corner but decodes
    from the unshifted ones, so its four predictions are identical: one MLP pass,
    weighted by the ensemble's (swapped) normalised areas, is the same result.
    """

    hidden: Sequence[int] = INR_HIDDEN
    out_channels: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, feat):
        b, h, w, c = feat.shape
        # F.unfold(3, padding=1): channel c * 9 + tap, taps row-major.
        padded = jnp.pad(feat, ((0, 0), (1, 1), (1, 1), (0, 0)))
        taps = [padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)]
        unfolded = jnp.stack(taps, axis=-1).reshape(b, h, w, c * 9)
        # Query coordinates (the output grid) and feature-cell centres, each with its encoding;
        # the output has the features' size, so the two grids coincide.
        query = jnp.asarray(make_coord(h, w))
        query = jnp.concatenate([query, positional_encoding(query)], -1)
        centres = jnp.asarray(make_coord(h, w))
        centres = jnp.concatenate([centres, positional_encoding(centres)], -1)
        rel_coord = (query - centres).at[..., 0].multiply(h).at[..., 1].multiply(w)
        rel_cell = jnp.broadcast_to(jnp.asarray([2.0 / h * h, 2.0 / w * w], jnp.float32), (h, w, 2))
        extra = jnp.concatenate([rel_coord, rel_cell], -1)
        y = jnp.concatenate([unfolded, jnp.broadcast_to(extra, (b, h, w, extra.shape[-1])).astype(unfolded.dtype)], -1)
        pred = _ImNet(tuple(self.hidden), self.out_channels, self.dtype, name="imnet")(y)
        # Local ensemble: four equal corner areas, each weighted by its (swapped) share of the total.
        area = jnp.abs(rel_coord[..., 0] * rel_coord[..., 1]) + 1e-9
        weight = sum(area / (area + area + area + area) for _ in range(4))
        return pred * weight[None, ..., None].astype(pred.dtype)


class MPMFNet(nn.Module):
    # Outputs in the official order (restored, auxiliary): evaluation and inference take the first.
    RESTORED_OUTPUT = 0

    in_chans: int = 3
    out_chans: int = 3
    window_size: int = 8
    embed_dims: Sequence[int] = (24, 48, 96, 48, 24)
    mlp_ratios: Sequence[float] = (2.0, 4.0, 4.0, 2.0, 2.0)
    depths: Sequence[int] = (8, 16, 17, 9, 9, 8)
    num_heads: Sequence[int] = (2, 4, 6, 1, 1)
    attn_ratio: Sequence[float] = (1 / 4, 1 / 2, 3 / 4, 0, 0)
    conv_type: Sequence[str] = ("DWConv",) * 5
    dtype: Dtype = jnp.float32

    def _layer(self, level, depth, dim=None, conv_level=None, name=None):
        return BasicLayer(depth, self.num_heads[level], self.mlp_ratios[level], self.window_size,
                          self.attn_ratio[level], self.conv_type[level if conv_level is None else conv_level],
                          self.dtype, name=name)

    @nn.compact
    def __call__(self, x, train: bool = False):
        dims, depths, dt = self.embed_dims, self.depths, self.dtype
        if dims[1] != dims[3] or dims[0] != dims[4]:
            raise ValueError(f"embed_dims {dims}: skip fusion needs dims[1] == dims[3] and dims[0] == dims[4]")
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(f"MPMF-Net needs H and W multiples of 4, got {x.shape[1:3]}")
        inp = x
        # Coarse-scale INR branch on the 4x nearest-downsampled input.
        x_inr = interpolate_nearest(x, 0.25)
        x_inr = PatchEmbed(dims[0], 1, 3, dt, name="patch_embed_inr")(x_inr)
        x_inr = self._layer(0, depths[0], name="layer_inr")(x_inr)
        x_inr = INR(dtype=dt, name="inr")(x_inr)
        x = jnp.concatenate([x.astype(dt), interpolate_nearest(x_inr, 4)], -1)

        x = PatchEmbed(dims[0], 1, 3, dt, name="patch_embed")(x)
        x = skip1 = self._layer(0, depths[0], name="layer1")(x)
        x = PatchEmbed(dims[1], 2, None, dt, name="patch_merge1")(x)
        x = skip2 = self._layer(1, depths[1], name="layer2")(x)
        x = PatchEmbed(dims[2], 2, None, dt, name="patch_merge2")(x)
        x = self._layer(2, depths[2] - 1, name="layer3")(x)
        x = jnp.concatenate([x, MPLB((16, 16), dt, name="layer3_prompts")(x)], -1)
        x = self._layer(2, 1, name="layer3_mixer")(x)
        x = Conv2d(dims[2], 1, dtype=dt, name="layer3_reduce_channel")(x)
        x = PatchUnEmbed(dims[3], 2, None, dt, name="patch_split1")(x)
        x = MFIB(dt, name="fusion1")(x, Conv2d(dims[1], 1, dtype=dt, name="skip2")(skip2))
        x = self._layer(3, depths[3] - 1, name="layer4")(x)
        x = jnp.concatenate([x, MPLB((32, 32), dt, name="layer4_prompts")(x)], -1)
        x = self._layer(3, 1, conv_level=2, name="layer4_last")(x)
        x = Conv2d(dims[3], 1, dtype=dt, name="layer4_reduce_channel")(x)
        x = PatchUnEmbed(dims[4], 2, None, dt, name="patch_split2")(x)
        x = MFIB(dt, name="fusion2")(x, Conv2d(dims[0], 1, dtype=dt, name="skip1")(skip1))
        x = self._layer(4, depths[4] - 1, name="layer5")(x)
        x = jnp.concatenate([x, MPLB((64, 64), dt, name="layer5_prompts")(x)], -1)
        x = self._layer(4, 1, name="layer5_last")(x)
        x = Conv2d(dims[4], 1, dtype=dt, name="layer5_reduce_channel")(x)
        x = self._layer(4, depths[5], name="refinement")(x)
        x = PatchUnEmbed(self.out_chans, 1, 3, dt, name="patch_unembed")(x)
        return x + inp.astype(dt), x_inr


_LIST_KWARGS = ("embed_dims", "mlp_ratios", "depths", "num_heads", "attn_ratio", "conv_type")


def _translate(kwargs):
    out = {}
    for key, value in kwargs.items():
        if key == "norm_layer":
            continue  # always RLN in the official configurations
        out[key] = tuple(value) if key in _LIST_KWARGS else value
    return out


registry.register_model(registry.ModelEntry(
    name="mpmf_net",
    builder=MPMFNet,
    official=(("chdwyb/MPMF-Net", "MPMFNet"),),
    translate_kwargs=_translate,
    pad_multiple=4,
    min_size=32,
    official_file="model.py",
    description="MPMF-Net (AAAI 2025): multi-axis prompts, multi-dimension fusion, coarse INR branch",
))
