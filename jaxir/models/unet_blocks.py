"""Diffusion U-Net blocks of the ADM family (openai/guided-diffusion `unet.py`, `nn.py`).

Shared by the ADM U-Net (`adm_unet.py`, also the consistency-model U-Net) and
meant for the latent-diffusion U-Net, which uses the same residual block,
attention, up/downsampling and sinusoidal timestep embedding. Submodules are
named after the official attributes (`in_layers_0` for `in_layers.0`), so the
generic converter maps the official state dicts.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir.models.attention import dot_product_attention, merge_heads
from jaxir.models.blocks import PRECISION, Conv2d, Dtype, Linear, avg_pool, interpolate_nearest


def timestep_embedding(timesteps, dim: int, max_period: float = 10000.0):
    """guided-diffusion `timestep_embedding`: [cos(t f), sin(t f)], f_i = max_period^(-i / (dim // 2)).

    `timesteps` (N,) may be fractional (continuous noise levels, 250 log σ of the
    consistency models); an odd `dim` gets a zero last column, as the official code.
    """
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    args = jnp.asarray(timesteps, jnp.float32)[:, None] * freqs[None]
    embedding = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
    if dim % 2:
        embedding = jnp.concatenate([embedding, jnp.zeros_like(embedding[:, :1])], axis=-1)
    return embedding


class GroupNorm32(nn.Module):
    """`GroupNorm32(32, C)` of guided-diffusion: torch GroupNorm computed in float32, cast back."""

    num_groups: int = 32
    epsilon: float = 1e-5
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "scale", None), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        if c % self.num_groups:
            raise ValueError(f"{self.name}: {c} channels are not divisible into {self.num_groups} groups")
        x32 = x.astype(jnp.float32)
        grouped = x32.reshape(*x.shape[:-1], self.num_groups, c // self.num_groups)
        axes = tuple(range(1, x.ndim - 1)) + (x.ndim,)
        mean = jnp.mean(grouped, axis=axes, keepdims=True)
        var = jnp.mean(jnp.square(grouped - mean), axis=axes, keepdims=True)
        y = ((grouped - mean) * jax.lax.rsqrt(var + self.epsilon)).reshape(x.shape)
        y = y * self.param("scale", nn.initializers.ones, (c,), self.param_dtype)
        y = y + self.param("bias", nn.initializers.zeros, (c,), self.param_dtype)
        return y.astype(x.dtype)


def _pointwise_kernel(w: np.ndarray) -> np.ndarray:
    """Conv1d (O, I, 1) or Conv2d (O, I, 1, 1) weights -> (I, O)."""
    return np.transpose(w.reshape(w.shape[0], w.shape[1]))


class Pointwise(nn.Module):
    """A 1x1 convolution over the channel axis (guided-diffusion's `conv_nd(1, C, C', 1)`; 2-D in consistency models)."""

    features: int
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "kernel", _pointwise_kernel), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        bound = 1.0 / math.sqrt(fan_in)  # PyTorch's default conv init for a 1x1 kernel
        kernel = self.param("kernel", _uniform(bound), (fan_in, self.features), self.param_dtype)
        bias = self.param("bias", _uniform(bound), (self.features,), self.param_dtype)
        y = jnp.matmul(x.astype(self.dtype), kernel.astype(self.dtype), precision=PRECISION)
        return y + bias.astype(self.dtype)


def _uniform(bound: float):
    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)
    return init


class Upsample(nn.Module):
    """Nearest 2x upsampling, then an optional 3x3 conv (`conv`)."""

    use_conv: bool
    out_channels: int | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = interpolate_nearest(x, 2)
        if self.use_conv:
            x = Conv2d(self.out_channels or x.shape[-1], 3, padding=1, dtype=self.dtype, name="conv")(x)
        return x


class Downsample(nn.Module):
    """A stride-2 3x3 conv (`op`) or, without conv, 2x2 average pooling."""

    use_conv: bool
    out_channels: int | None = None
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        if self.use_conv:
            return Conv2d(self.out_channels or x.shape[-1], 3, stride=2, padding=1, dtype=self.dtype, name="op")(x)
        if self.out_channels not in (None, x.shape[-1]):
            raise ValueError("Downsample without conv keeps the channel count")
        return avg_pool(x, 2)


class ResBlock(nn.Module):
    """guided-diffusion `ResBlock`: GN-SiLU-conv, timestep embedding added (or FiLM scale-shift
    after the second norm when `use_scale_shift_norm`), GN-SiLU-dropout-conv, skip connection;
    `up`/`down` resample both branches between the first activation and conv."""

    out_channels: int | None = None
    dropout: float = 0.0
    use_conv: bool = False
    use_scale_shift_norm: bool = False
    up: bool = False
    down: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, emb, train: bool = False):
        channels = x.shape[-1]
        out_channels = self.out_channels or channels
        dt = self.dtype
        h = nn.silu(GroupNorm32(name="in_layers_0")(x))
        if self.up:
            h, x = interpolate_nearest(h, 2), interpolate_nearest(x, 2)
        elif self.down:
            h, x = avg_pool(h, 2), avg_pool(x, 2)
        h = Conv2d(out_channels, 3, padding=1, dtype=dt, name="in_layers_2")(h)
        emb_out = Linear(2 * out_channels if self.use_scale_shift_norm else out_channels, dtype=dt,
                         name="emb_layers_1")(nn.silu(emb)).astype(h.dtype)[:, None, None, :]
        if self.use_scale_shift_norm:
            scale, shift = jnp.split(emb_out, 2, axis=-1)
            h = GroupNorm32(name="out_layers_0")(h) * (1 + scale) + shift
        else:
            h = GroupNorm32(name="out_layers_0")(h + emb_out)
        h = nn.Dropout(self.dropout, deterministic=not train)(nn.silu(h))
        h = Conv2d(out_channels, 3, padding=1, dtype=dt, name="out_layers_3")(h)
        if out_channels != channels:
            kernel = 3 if self.use_conv else 1
            x = Conv2d(out_channels, kernel, padding=kernel // 2, dtype=dt, name="skip_connection")(x)
        return x + h


class AttentionBlock(nn.Module):
    """guided-diffusion `AttentionBlock`: GroupNorm, 1x1 qkv, multi-head softmax(q k^T / sqrt(d)) v, 1x1 proj_out, residual.

    `qkv_order` is how the 3C qkv channels split: 'heads_first' (`QKVAttentionLegacy`,
    guided-diffusion's default: channel = head*3d + {q,k,v}*d + i) or 'qkv_first'
    (`QKVAttention` with use_new_attention_order, and the consistency models' flash
    attention: channel = {q,k,v}*C + head*d + i).
    """

    num_heads: int = 1
    num_head_channels: int = -1
    qkv_order: str = "heads_first"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        b, height, width, c = x.shape
        if self.num_head_channels == -1:
            heads = self.num_heads
        else:
            if c % self.num_head_channels:
                raise ValueError(f"{c} channels are not divisible by num_head_channels {self.num_head_channels}")
            heads = c // self.num_head_channels
        d = c // heads
        tokens = x.reshape(b, height * width, c)
        qkv = Pointwise(3 * c, dtype=self.dtype, name="qkv")(GroupNorm32(name="norm")(tokens))
        if self.qkv_order == "heads_first":
            qkv = qkv.reshape(b, -1, heads, 3, d).transpose(3, 0, 2, 1, 4)
        elif self.qkv_order == "qkv_first":
            qkv = qkv.reshape(b, -1, 3, heads, d).transpose(2, 0, 3, 1, 4)
        else:
            raise ValueError(f"qkv_order must be 'heads_first' or 'qkv_first', got {self.qkv_order!r}")
        h = merge_heads(dot_product_attention(qkv[0], qkv[1], qkv[2], 1.0 / math.sqrt(d)))
        h = Pointwise(c, dtype=self.dtype, name="proj_out")(h)
        return (tokens + h).reshape(x.shape)
