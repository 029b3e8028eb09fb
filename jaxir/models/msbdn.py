"""MSBDN-DFF: multi-scale boosted dehazing network with dense feature fusion.

Dong, Pan, Xiang, Hu, Zhang, Wang, Yang. "Multi-Scale Boosted Dehazing Network
with Dense Feature Fusion", CVPR 2020.
Official code: BookerDeWitt/MSBDN-DFF, networks/MSBDN-DFF-v1-1.py (`Net`) and
networks/base_networks.py (`Encoder_MDCBlock1`, `Decoder_MDCBlock1`, mode 'iter2').

A strided-conv encoder (reflection-padded convs, PReLU residual blocks) whose every
level fuses all earlier levels by back-projection (DFF: project the current feature
to each earlier scale with transposed convs, take the difference, project back
with strided convs, add); residual blocks at the 1/16 bottleneck; a transposed-conv
decoder (the 3x3 stride-2 deconv gives 2H+1, resized bilinearly to the skip) with
the same dense fusion across the decoder's earlier levels. ADMS uses it as its
second backbone.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.convert.state_dict import ConvertHooks
from jaxir.models.blocks import Conv2d, ConvTranspose2d, PReLU, interpolate_bilinear

Dtype = Any


class ConvLayer(nn.Module):
    """Reflection padding of k // 2, then a conv (the official `ConvLayer`)."""

    features: int
    kernel_size: int
    stride: int = 1
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return Conv2d(self.features, self.kernel_size, self.stride, padding=self.kernel_size // 2,
                      padding_mode="reflect", dtype=self.dtype, name="conv2d")(x)


class ResidualBlock(nn.Module):
    """x + 0.1 * conv2(PReLU(conv1(x)))."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        out = PReLU(name="relu")(ConvLayer(c, 3, dtype=self.dtype, name="conv1")(x))
        return ConvLayer(c, 3, dtype=self.dtype, name="conv2")(out) * 0.1 + x


class ConvBlock(nn.Module):
    """4x4 stride-2 conv (padding 1) + PReLU: one scale down."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return PReLU(name="act")(Conv2d(self.features, 4, 2, padding=1, dtype=self.dtype, name="conv")(x))


class DeconvBlock(nn.Module):
    """4x4 stride-2 transposed conv (padding 1) + PReLU: one scale up."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return PReLU(name="act")(ConvTranspose2d(self.features, 4, 2, padding=1, dtype=self.dtype, name="deconv")(x))


class DenseFusion(nn.Module):
    """Dense feature fusion by back-projection (`Encoder_MDCBlock1` / `Decoder_MDCBlock1`, mode 'iter2').

    For each earlier feature f_i (ordered as the official list), project the running
    fusion to f_i's scale, subtract f_i, project the difference back and add it.
    `encoder`: earlier features are larger (projection up with deconvs, back with convs);
    decoder: they are smaller (down with convs, back up with deconvs).
    """

    num_filter: int
    num_ft: int
    encoder: bool
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, earlier):
        n, dt = self.num_ft - 1, self.dtype
        widths = [self.num_filter // 2 ** i if self.encoder else self.num_filter * 2 ** i for i in range(n + 1)]
        there = DeconvBlock if self.encoder else ConvBlock
        back = ConvBlock if self.encoder else DeconvBlock
        there_name, back_name = ("up_convs", "down_convs") if self.encoder else ("down_convs", "up_convs")
        there_convs = [there(widths[i + 1], dt, name=f"{there_name}_{i}") for i in range(n)]
        back_convs = [back(widths[i], dt, name=f"{back_name}_{i}") for i in range(n)]
        fusion = x
        for i, feature in enumerate(earlier):
            ft = fusion
            for j in range(n - i):
                ft = there_convs[j](ft)
            ft = ft - feature
            for j in range(n - i):
                ft = back_convs[n - i - j - 1](ft)
            fusion = fusion + ft
        return fusion


class RDB(nn.Module):
    """Residual dense block: 4 (3x3 conv + ReLU, concatenated) layers, a 1x1 conv back, plus the input."""

    num_layers: int
    growth: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        y = x
        for i in range(self.num_layers):
            conv = Conv2d(self.growth, 3, padding=1, use_bias=False, dtype=self.dtype, name=f"dense_layers_{i}")
            y = jnp.concatenate([y, nn.relu(conv(y))], axis=-1)
        return Conv2d(x.shape[-1], 1, use_bias=False, dtype=self.dtype, name="conv_1x1")(y) + x


class MSBDN(nn.Module):
    """The official `Net` of MSBDN-DFF v1-1; `rdff=True` is `Net` of networks/MSBDN-RDFF.py.

    RDFF (the 28.7M model ADMS uses) fuses only the first half of the channels of
    each level densely and passes the second half through a residual dense block.
    `res_blocks` residual blocks at the bottleneck.
    """

    res_blocks: int = 18
    rdff: bool = False
    dtype: Dtype = jnp.float32
    img_channel: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.ndim != 4 or x.shape[-1] != self.img_channel:
            raise ValueError(f"MSBDN expects NHWC input with {self.img_channel} channels, got shape {x.shape}")
        if x.shape[1] % 16 or x.shape[2] % 16:
            raise ValueError(f"MSBDN needs H and W divisible by 16 (four 2x downsamplings), got "
                             f"{x.shape[1]}x{x.shape[2]}; pad the input (registry pad_multiple=16)")
        dt, rdff = self.dtype, self.rdff
        x = x.astype(dt)

        def dense(h, name):
            y = h
            for i in range(3):
                y = ResidualBlock(dt, name=f"{name}_{i}")(y)
            return y

        def half(h):
            c = h.shape[-1] // 2
            return (h[..., :c], h[..., c:]) if rdff else (h, None)

        def fuse(h, num_ft, encoder, memory, fusion_name, rdb_name):
            """Dense fusion of (the first half of) h; RDFF's residual dense block on the second half."""
            first, second = half(h)
            first = DenseFusion(first.shape[-1], num_ft, encoder, dt, name=fusion_name)(first, memory)
            if not rdff:
                return first, first
            second = RDB(4, second.shape[-1], dt, name=rdb_name)(second)
            return jnp.concatenate([first, second], axis=-1), first

        res1x = ConvLayer(16, 11, dtype=dt, name="conv_input")(x)
        memory = [half(res1x)[0]]
        x = dense(res1x, "dense0") + res1x
        levels = []
        h = x
        for level, width in enumerate((32, 64, 128), start=1):
            h = ConvLayer(width, 3, 2, dtype=dt, name=f"conv{2 ** level}x")(h)
            h, fused = fuse(h, level + 1, True, memory, f"fusion{level}", f"conv{level}")
            memory.append(fused)
            h = dense(h, f"dense{level}") + h
            levels.append(h)
        res2x, res4x, res8x = levels
        res16x = ConvLayer(256, 3, 2, dtype=dt, name="conv16x")(res8x)
        res16x, _ = fuse(res16x, 5, True, memory, "fusion4", "conv4")

        in_ft = res16x * 2
        y = in_ft
        for i in range(self.res_blocks):
            y = ResidualBlock(dt, name=f"dehaze_{i}")(y)
        h = y + in_ft - res16x
        memory_up = [half(h)[0]]
        skips = (res8x, res4x, res2x, x)
        for k, (width, skip) in enumerate(zip((128, 64, 32, 16), skips)):
            scale = 16 // 2 ** k
            up = _Upsample(width, dt, name=f"convd{scale}x")(h)
            up = interpolate_bilinear(up, size=skip.shape[1:3])
            h = up + skip
            h = dense(h, f"dense_{4 - k}") + h - up
            h, fused = fuse(h, k + 2, False, memory_up, f"fusion_{4 - k}", f"conv_{4 - k}")
            memory_up.append(fused)
        out = ConvLayer(3, 3, dtype=dt, name="conv_output")(h)
        return out.astype(jnp.float32)


class _Upsample(nn.Module):
    """The official `UpsampleConvLayer`: a 3x3 stride-2 transposed conv (2H+1 output)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return ConvTranspose2d(self.features, 3, 2, dtype=self.dtype, name="conv2d")(x)


def build_msbdn(**kwargs) -> MSBDN:
    return MSBDN(**kwargs)


_REPO = "BookerDeWitt/MSBDN-DFF"
# The bottleneck blocks are `dehaze.res{i}` (Sequential.add_module names) in the official state dict.
# RDFF's `make_dense` wrappers hold a single `conv`; jaxir names the conv after the wrapper.
_HOOKS = ConvertHooks(renames=((r"^dehaze\.res(\d+)\.", r"dehaze.\1."),
                               (r"\.dense_layers\.(\d+)\.conv\.", r".dense_layers.\1.")))

registry.register_model(registry.ModelEntry(
    name="msbdn",
    builder=build_msbdn,
    official=((_REPO, "Net"),),
    convert_hooks=_HOOKS,
    pad_multiple=16,
    min_size=16,
    official_file="networks/MSBDN-DFF-v1-1.py",
    description="MSBDN-DFF (CVPR 2020) dehazing network, 31.4M params; ADMS's second backbone.",
))
