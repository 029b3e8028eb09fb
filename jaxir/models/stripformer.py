"""Stripformer.

Tsai, Peng, Lin, Tsai, Lin. "Stripformer: a Strip Transformer for Fast Image
Deblurring", ECCV 2022.
Official code: pp00704831/Stripformer-ECCV-2022-, models/Stripformer.py.

A convolutional encoder (two stride-2 stages) feeds twelve alternating
intra-strip / inter-strip attention blocks; a decoder with six more strip blocks
at half resolution returns to full size, and the input is added to the result
(no clamp). Intra-strip attention splits the channels in halves: one half
attends among the pixels of each row (horizontal strip), the other among the
pixels of each column. Inter-strip attention takes whole rows (and columns) as
tokens, each flattened to (C/2) * W features. Each block ends with a PEG
(depthwise 3x3 conv + identity) position encoding.

The official training and test scripts feed images shifted to [-0.5, 0.5] and add
0.5 back to the output; `input_offset=0.5` does that around the network so jaxir's
[0, 1] images reproduce the paper's model (0.0, the default, is the bare class).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.attention import dot_product_attention, merge_heads, split_heads
from jaxir.models.blocks import PRECISION, Conv2d, ConvTranspose2d, LayerNorm, Linear, gelu

Dtype = Any


def leaky_relu(x):
    return nn.leaky_relu(x, negative_slope=0.2)


def multi_head_attention(q, k, v, num_heads: int):
    """The official `Attention`: (B, N, D) tokens, heads cut from D, scaled by 1/sqrt(D/heads)."""
    q, k, v = (split_heads(t, num_heads) for t in (q, k, v))
    return merge_heads(dot_product_attention(q, k, v, 1.0 / math.sqrt(q.shape[-1])))


class Mlp(nn.Module):
    """fc1 (4x) -> exact GELU -> fc2, with the official Xavier-uniform / N(0, 1e-6) init."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        dense = dict(kernel_init=nn.initializers.xavier_uniform(), bias_init=nn.initializers.normal(1e-6),
                     dtype=self.dtype, param_dtype=jnp.float32, precision=PRECISION)
        x = nn.Dense(4 * c, name="fc1", **dense)(x)
        return nn.Dense(c, name="fc2", **dense)(gelu(x))


class PEG(nn.Module):
    """Conditional position encoding: depthwise 3x3 conv plus identity."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        return Conv2d(c, 3, padding=1, groups=c, dtype=self.dtype, name="PEG")(x) + x


class _StripBlock(nn.Module):
    """Norm -> 1x1 conv -> strip attention on two channel halves -> 1x1 fuse, + input; FFN; PEG.

    Subclasses define `attend(rows, cols)`: the attention outputs (B, H, W, C/2) of
    the horizontal-strip half and the vertical-strip half.
    """

    num_heads: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        if c % 2:
            raise ValueError(f"{type(self).__name__} needs an even channel count, got {c}")
        dt = self.dtype
        y = LayerNorm(epsilon=1e-5, dtype=dt, name="attention_norm")(x)
        rows, cols = jnp.split(Conv2d(c, 1, dtype=dt, name="conv_input")(y), 2, axis=-1)
        out_rows, out_cols = self.attend(rows, cols)
        x = x + Conv2d(c, 1, dtype=dt, name="fuse_out")(jnp.concatenate([out_rows, out_cols], axis=-1))
        x = x + Mlp(dt, name="ffn")(LayerNorm(epsilon=1e-5, dtype=dt, name="ffn_norm")(x))
        return PEG(dt, name="PEG")(x)


class IntraSA(_StripBlock):
    """Intra-strip attention: the pixels of one row (or column) attend to each other."""

    def attend(self, rows, cols):
        b, h, w, half = rows.shape
        dt = self.dtype
        # Horizontal strips: (B*H, W, C/2) tokens; vertical strips: (B*W, H, C/2).
        tokens_h = rows.reshape(b * h, w, half)
        tokens_v = cols.transpose(0, 2, 1, 3).reshape(b * w, h, half)
        q_h, k_h, v_h = jnp.split(Linear(3 * half, dtype=dt, name="qkv_local_h")(tokens_h), 3, axis=-1)
        q_v, k_v, v_v = jnp.split(Linear(3 * half, dtype=dt, name="qkv_local_v")(tokens_v), 3, axis=-1)
        out_h = multi_head_attention(q_h, k_h, v_h, self.num_heads).reshape(b, h, w, half)
        out_v = multi_head_attention(q_v, k_v, v_v, self.num_heads).reshape(b, w, h, half).transpose(0, 2, 1, 3)
        return out_h, out_v


class InterSA(_StripBlock):
    """Inter-strip attention: whole rows (or columns) are tokens of (C/2) * W (or * H) features.

    A token's features are ordered channel-major (c * W + w) as the official view
    of the (C/2, W) slice, which decides how the heads cut them.
    """

    def attend(self, rows, cols):
        b, h, w, half = rows.shape
        dt = self.dtype
        q_h, k_h, v_h = jnp.split(Conv2d(3 * half, 1, dtype=dt, name="conv_h")(rows), 3, axis=-1)
        q_v, k_v, v_v = jnp.split(Conv2d(3 * half, 1, dtype=dt, name="conv_v")(cols), 3, axis=-1)
        as_rows = lambda t: t.transpose(0, 1, 3, 2).reshape(b, h, half * w)  # (B, H, C/2*W)
        as_cols = lambda t: t.transpose(0, 2, 3, 1).reshape(b, w, half * h)  # (B, W, C/2*H)
        out_h = multi_head_attention(as_rows(q_h), as_rows(k_h), as_rows(v_h), self.num_heads)
        out_v = multi_head_attention(as_cols(q_v), as_cols(k_v), as_cols(v_v), self.num_heads)
        out_h = out_h.reshape(b, h, half, w).transpose(0, 1, 3, 2)
        out_v = out_v.reshape(b, w, half, h).transpose(0, 3, 1, 2)
        return out_h, out_v


class StripEncoder(nn.Module):
    """The official `Embeddings`: residual conv stages at full, 1/2 and 1/4 resolution."""

    channels: Sequence[int] = (64, 128, 320)
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c1, c2, c3 = self.channels
        dt = self.dtype

        def conv(features, name, stride=1):
            return Conv2d(features, 3, stride=stride, padding=1, dtype=dt, name=name)

        def residual(x, features, prefix):
            y = conv(features, f"{prefix}_2")(leaky_relu(conv(features, f"{prefix}_0")(x)))
            return leaky_relu(y + x)

        x = leaky_relu(conv(c1, "en_layer1_1_0")(x))
        for i in (2, 3, 4):
            x = residual(x, c1, f"en_layer1_{i}")
        residual_1 = x
        x = leaky_relu(conv(c2, "en_layer2_1_0", stride=2)(x))
        for i in (2, 3, 4):
            x = residual(x, c2, f"en_layer2_{i}")
        residual_2 = x
        x = leaky_relu(conv(c3, "en_layer3_1_0", stride=2)(x))
        return x, residual_1, residual_2


class StripDecoder(nn.Module):
    """The official `Embeddings_output`: upsample, six strip blocks at 1/2 size, upsample, convs to RGB."""

    channels: Sequence[int] = (64, 128, 320)
    decoder_dim: int = 192
    decoder_heads: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, residual_1, residual_2):
        c1 = self.channels[0]
        dt, dim = self.dtype, self.decoder_dim

        def up(features, name):
            return ConvTranspose2d(features, 4, stride=2, padding=1, dtype=dt, name=name)

        x = leaky_relu(up(dim, "de_layer3_1_0")(x))
        x = leaky_relu(Conv2d(dim, 1, dtype=dt, name="de_layer2_2_0")(jnp.concatenate([x, residual_2], axis=-1)))
        for i in range(1, 7):
            block = IntraSA if i % 2 else InterSA
            x = block(self.decoder_heads, dt, name=f"de_block_{i}")(x)
        x = leaky_relu(up(c1, "de_layer2_1_0")(x))

        y = Conv2d(c1, 1, dtype=dt, name="de_layer1_3_0")(jnp.concatenate([x, residual_1], axis=-1))
        x = leaky_relu(Conv2d(c1, 3, padding=1, dtype=dt, name="de_layer1_3_2")(leaky_relu(y)) + x)
        y = leaky_relu(Conv2d(c1, 3, padding=1, dtype=dt, name="de_layer1_2_0")(x))
        x = leaky_relu(Conv2d(c1, 3, padding=1, dtype=dt, name="de_layer1_2_2")(y) + x)
        return leaky_relu(Conv2d(3, 3, padding=1, dtype=dt, name="de_layer1_1_0")(x))


class Stripformer(nn.Module):
    """Encoder, 12 alternating intra/inter strip blocks, decoder; output = decoder + input."""

    channels: Sequence[int] = (64, 128, 320)
    decoder_dim: int = 192
    heads: int = 5
    decoder_heads: int = 3
    input_offset: float = 0.0  # 0.5: the official scripts' [-0.5, 0.5] images around [0, 1] ones
    dtype: Dtype = jnp.float32

    def _check(self, x):
        if len(self.channels) != 3:
            raise ValueError(f"channels needs 3 widths (full, 1/2, 1/4 resolution), got {self.channels}")
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"Stripformer expects NHWC RGB input (3 channels), got shape {x.shape}")
        if x.shape[1] % 4 or x.shape[2] % 4:
            raise ValueError(f"Stripformer needs H and W divisible by 4 (two stride-2 stages), got "
                             f"{x.shape[1]}x{x.shape[2]}; pad the input (registry pad_multiple=4)")

    @nn.compact
    def __call__(self, inp, train: bool = False):
        self._check(inp)
        dt = self.dtype
        x = inp.astype(dt) - self.input_offset
        hx, residual_1, residual_2 = StripEncoder(tuple(self.channels), dt, name="encoder")(x)
        for i in range(1, 13):
            block = IntraSA if i % 2 else InterSA
            hx = block(self.heads, dt, name=f"Trans_block_{i}")(hx)
        hx = StripDecoder(tuple(self.channels), self.decoder_dim, self.decoder_heads, dt, name="decoder")(
            hx, residual_1, residual_2)
        return (hx + x + self.input_offset).astype(jnp.float32)


def build_stripformer(**kwargs) -> Stripformer:
    if "channels" in kwargs:
        kwargs["channels"] = tuple(int(v) for v in kwargs["channels"])
    return Stripformer(**kwargs)


registry.register_model(registry.ModelEntry(
    name="stripformer",
    builder=build_stripformer,
    official=(("pp00704831/Stripformer-ECCV-2022-", "Stripformer"),),
    pad_multiple=4,
    min_size=4,
    official_file="models/Stripformer.py",
    description="Stripformer (ECCV 2022), 19.7M params; input_offset=0.5 for the official [-0.5, 0.5] weights.",
))
