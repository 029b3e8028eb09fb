"""ConvIR: revitalising convolutional networks for image restoration.

Cui, Ren, Cao, Knoll. "Revitalizing Convolutional Network for Image Restoration",
IEEE TPAMI 2024. Official code: c-yn/ConvIR, one copy per task:
Motion_Deblurring, Dehazing/ITS, Dehazing/OTS, Image_desnowing (all with
DeepPoolLayer dilations [7, 9, 11]) and Image_deraining (dilations [3, 7, 9]),
each `models/ConvIR.py` + `models/layers.py`.

The MIMO-UNet skeleton (multi-input pyramid, three outputs coarse to fine) with
GELU convs, a concat-merge FAM, an InstanceNorm'd SCM and no AFF. The last
ResBlock of every encoder/decoder stage carries the multi-scale module
(`DeepPoolLayer`): the features are average-pooled by 8, 4 and 2; at each scale,
coarse to fine, a 3x3 conv and a multi-shape kernel (`MultiShapeKernel`) run on
the pooled map plus the upsampled result of the coarser scale, and every scale's
result is upsampled back and added to the input. The multi-shape kernel sums a
dilated square attention (`dynamic_filter`: a per-image 3x3 filter, predicted
from the global average, applied depthwise per channel group, splitting the
signal into modulated low- and high-frequency parts) and a dilated rectangle
attention (`cubic_attention`: the same with 1x3 then 3x1 strip filters).

Sizes: ConvIR-S/B/L have 4/8/16 ResBlocks per stage (`num_res`); the dehazing and
desnowing constructors name them `version` small/base/large.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxir import registry
from jaxir.models.blocks import (PRECISION, BatchNorm2d, Conv2d, avg_pool, global_avg_pool, oihw_to_hwio,
                                 resize_bilinear_align_corners)
from jaxir.models.mimo_blocks import BasicConv, check_image_input, input_pyramid

Dtype = Any

POOL_SIZES = (8, 4, 2)
DILATIONS_MOTION = (7, 9, 11)  # Motion_Deblurring, Dehazing (ITS, OTS), Image_desnowing
DILATIONS_DERAIN = (3, 7, 9)  # Image_deraining
VERSIONS = {"small": 4, "base": 8, "large": 16}
# Every encoder/decoder scale (1, 1/2, 1/4) has a DeepPoolLayer, hence 4 * 8 = 32.
PAD_MULTIPLE = 4 * POOL_SIZES[0]


def min_input_size(dilations: Sequence[int]) -> int:
    """Smallest input side (a multiple of 32) the model takes.

    At the 1/4 scale, the branch pooled by p reflection-pads its map of H / (4 p)
    rows by the dilation d, which PyTorch allows only when d < H / (4 p).
    """
    need = max(4 * p * (d + 1) for p, d in zip(POOL_SIZES, dilations))
    return need + (-need) % PAD_MULTIPLE


def _check_reflect_pad(x, pad: int, axes: Sequence[int], where: str) -> None:
    for axis in axes:
        if pad >= x.shape[axis]:
            raise ValueError(
                f"{where}: reflection padding of {pad} needs a feature map larger than {pad} on each side, "
                f"got {x.shape[1]}x{x.shape[2]}; the input image is too small"
            )


def _check_channels(channels: int, features: int, group: int, where: str) -> None:
    if channels != features:
        raise ValueError(f"{where}: built for {features} channels, got {channels}")
    if channels % group:
        raise ValueError(f"{where}: {channels} channels not divisible by group={group}")


def _group_filters(filters, channels: int, group: int, taps: int):
    """(N, group * taps) predicted filters -> (N, taps, channels): channel j uses group j // (channels / group)."""
    n = filters.shape[0]
    filters = jnp.tanh(filters.reshape(n, group, taps))
    return jnp.repeat(filters, channels // group, axis=1).transpose(0, 2, 1)


def _frequency_mix(name_scope: nn.Module, filtered, identity, low_mean):
    """Shared tail of both attentions: modulated low-pass part plus amplified identity.

    out_low = (filtered * (1 + inside_all) - inside_all * mean) * lamb_l;  out_high = identity * (1 + lamb_h).
    """
    c = identity.shape[-1]
    inside_all = name_scope.param("inside_all", nn.initializers.zeros, (c,), jnp.float32).astype(filtered.dtype)
    lamb_l = name_scope.param("lamb_l", nn.initializers.zeros, (c,), jnp.float32).astype(filtered.dtype)
    lamb_h = name_scope.param("lamb_h", nn.initializers.zeros, (c,), jnp.float32).astype(filtered.dtype)
    out_low = (filtered * (inside_all + 1.0) - inside_all * low_mean) * lamb_l
    return out_low + identity * (lamb_h + 1.0)


class FilterPredictor(nn.Module):
    """The dynamic filter's bias-free 1x1 conv, with the official kaiming_normal(fan_out, relu) init.

    It only ever sees the (N, 1, 1, C) global average, so it is a matrix product.
    """

    features: int
    dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "kernel", oihw_to_hwio)}

    @nn.compact
    def __call__(self, x):
        # HWIO: flax's fan_out (features * 1 * 1) equals PyTorch's (out_channels * kh * kw).
        init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
        kernel = self.param("kernel", init, (1, 1, x.shape[-1], self.features))
        return jnp.einsum("nhwc,co->nhwo", x.astype(self.dtype), kernel[0, 0].astype(self.dtype),
                          precision=PRECISION)


class DynamicFilter(nn.Module):
    """Dilated square attention (official `dynamic_filter`), reflection-padded by the dilation."""

    features: int
    kernel_size: int = 3
    dilation: int = 1
    group: int = 8
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        n, h, w, c = x.shape
        k, d = self.kernel_size, self.dilation
        _check_channels(c, self.features, self.group, self.name)
        pad = d * (k - 1) // 2
        _check_reflect_pad(x, pad, (1, 2), f"ConvIR square attention (dilation {d})")
        filters = FilterPredictor(self.group * k * k, self.dtype, name="conv")(global_avg_pool(x))
        filters = BatchNorm2d(dtype=self.dtype, name="bn")(filters, train)
        filters = _group_filters(filters.reshape(n, -1), c, self.group, k * k)
        padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
        # Tap (i, j) of the official F.unfold is filter index i * k + j.
        filtered = sum(
            padded[:, i * d:i * d + h, j * d:j * d + w] * filters[:, None, None, i * k + j]
            for i in range(k) for j in range(k)
        )
        return _frequency_mix(self, filtered, x, global_avg_pool(x))


class StripAttention(nn.Module):
    """Dilated strip attention (official `spatial_strip_att`): 1 x k taps if horizontal, else k x 1."""

    features: int
    kernel_size: int = 3
    dilation: int = 1
    group: int = 2
    horizontal: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        n, c = x.shape[0], x.shape[-1]
        k, d = self.kernel_size, self.dilation
        _check_channels(c, self.features, self.group, self.name)
        pad = d * (k - 1) // 2
        axis = 2 if self.horizontal else 1
        _check_reflect_pad(x, pad, (axis,), f"ConvIR strip attention (dilation {d})")
        filters = Conv2d(self.group * k, 1, use_bias=False, dtype=self.dtype, name="conv")(global_avg_pool(x))
        filters = _group_filters(filters.reshape(n, -1), c, self.group, k)
        pad_width = [(0, 0)] * 4
        pad_width[axis] = (pad, pad)
        padded = jnp.pad(x, pad_width, mode="reflect")
        size = x.shape[axis]
        filtered = sum(
            jax.lax.slice_in_dim(padded, t * d, t * d + size, axis=axis) * filters[:, None, None, t]
            for t in range(k)
        )
        # The official gap pools along the strip's direction only: (None, 1) or (1, None).
        return _frequency_mix(self, filtered, x, jnp.mean(x, axis=axis, keepdims=True))


class CubicAttention(nn.Module):
    """Dilated rectangle attention (official `cubic_attention`): horizontal then vertical strips."""

    features: int
    group: int = 8
    dilation: int = 1
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        c = self.features
        out = StripAttention(c, self.kernel_size, self.dilation, self.group, True, self.dtype,
                             name="H_spatial_att")(x)
        out = StripAttention(c, self.kernel_size, self.dilation, self.group, False, self.dtype,
                             name="W_spatial_att")(out)
        gamma = self.param("gamma", nn.initializers.zeros, (c,), jnp.float32).astype(out.dtype)
        beta = self.param("beta", nn.initializers.ones, (c,), jnp.float32).astype(out.dtype)
        return gamma * out + x * beta


class MultiShapeKernel(nn.Module):
    """Rectangle (strip) attention + square attention, both dilated."""

    features: int
    kernel_size: int = 3
    dilation: int = 1
    group: int = 8
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        c, k, d, g = self.features, self.kernel_size, self.dilation, self.group
        strip = CubicAttention(c, g, d, k, self.dtype, name="strip_att")(x)
        square = DynamicFilter(c, k, d, g, self.dtype, name="square_att")(x, train)
        return strip + square


class DeepPoolLayer(nn.Module):
    """The multi-scale module: pooled branches (8, 4, 2), coarse to fine, each fed the coarser one upsampled."""

    features: int
    out_features: int
    dilations: Sequence[int] = DILATIONS_MOTION
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        c, dt = self.features, self.dtype
        size = x.shape[1:3]
        total = x
        y_up = None
        for i, (pool, dilation) in enumerate(zip(POOL_SIZES, self.dilations)):
            y = avg_pool(x, pool)
            if y_up is not None:
                y = y + y_up
            y = Conv2d(c, 3, padding=1, use_bias=False, dtype=dt, name=f"convs_{i}")(y)
            y = MultiShapeKernel(c, 3, dilation, 8, dt, name=f"dynas_{i}")(y, train)
            total = total + resize_bilinear_align_corners(y, size)
            if i < len(POOL_SIZES) - 1:
                y_up = resize_bilinear_align_corners(y, (2 * y.shape[1], 2 * y.shape[2]))
        total = nn.gelu(total, approximate=False)
        return Conv2d(self.out_features, 3, padding=1, use_bias=False, dtype=dt, name="conv_sum")(total)


class ResBlock(nn.Module):
    """ConvIR's ResBlock: `main` = [GELU conv3x3, DeepPoolLayer or Identity, conv3x3] plus the input."""

    features: int
    use_filter: bool = False
    dilations: Sequence[int] = DILATIONS_MOTION
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        c, dt = self.features, self.dtype
        y = BasicConv(c, 3, activation="gelu", dtype=dt, name="main_0")(x)
        if self.use_filter:
            y = DeepPoolLayer(c, c, tuple(self.dilations), dt, name="main_1")(y, train)
        y = BasicConv(c, 3, activation=None, dtype=dt, name="main_2")(y)
        return y + x


class ResStage(nn.Module):
    """Official EBlock/DBlock: num_res - 1 plain ResBlocks, then one with the multi-scale module."""

    features: int
    num_res: int
    dilations: Sequence[int] = DILATIONS_MOTION
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.num_res):
            last = i == self.num_res - 1
            x = ResBlock(self.features, last, tuple(self.dilations), self.dtype, name=f"layers_{i}")(x, train)
        return x


class InstanceNorm2d(nn.Module):
    """`nn.InstanceNorm2d(affine=True)` (no running stats): per image and channel over H, W."""

    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "scale", None), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=(1, 2), keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon)
        y = y * self.param("scale", nn.initializers.ones, (c,)) + self.param("bias", nn.initializers.zeros, (c,))
        return y.astype(self.dtype)


class SCM(nn.Module):
    """ConvIR's shallow convolutional module (no input concat, InstanceNorm at the end)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image):
        c, dt = self.features, self.dtype
        x = BasicConv(c // 4, 3, activation="gelu", dtype=dt, name="main_0")(image)
        x = BasicConv(c // 2, 1, activation="gelu", dtype=dt, name="main_1")(x)
        x = BasicConv(c // 2, 3, activation="gelu", dtype=dt, name="main_2")(x)
        x = BasicConv(c, 1, activation=None, dtype=dt, name="main_3")(x)
        return InstanceNorm2d(dtype=dt, name="main_4")(x)


class FAM(nn.Module):
    """ConvIR's feature merge: conv3x3 of the concatenated features."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x1, x2):
        x = jnp.concatenate([x1, x2], axis=-1)
        return BasicConv(self.features, 3, activation=None, dtype=self.dtype, name="merge")(x)


class ConvIR(nn.Module):
    """ConvIR (S/B/L: num_res 4/8/16).

    Input NHWC RGB with height and width divisible by 32 and at least
    `min_input_size(dilations)` (256 for [7, 9, 11], 128 for [3, 7, 9]). Returns
    three images, coarse to fine (1/4, 1/2, full size), each the network output
    plus the input at that scale.
    """

    num_res: int = 16
    base_channel: int = 32
    dilations: Sequence[int] = DILATIONS_MOTION
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        dil = tuple(self.dilations)
        if len(dil) != len(POOL_SIZES):
            raise ValueError(f"ConvIR needs {len(POOL_SIZES)} dilations (one per pooled branch), got {dil}")
        if self.num_res < 1:
            raise ValueError(f"ConvIR needs num_res >= 1, got {self.num_res}")
        if self.base_channel % 8:
            raise ValueError(f"ConvIR's attention groups need base_channel divisible by 8, got {self.base_channel}")
        check_image_input(x, "ConvIR", channels=3, multiple=PAD_MULTIPLE, min_size=min_input_size(dil))
        c, n, dt = self.base_channel, self.num_res, self.dtype

        def stage(features, name):
            return ResStage(features, n, dil, dt, name=name)

        x, x_2, x_4 = input_pyramid(x.astype(dt))
        z2 = SCM(c * 2, dt, name="SCM2")(x_2)
        z4 = SCM(c * 4, dt, name="SCM1")(x_4)

        x_ = BasicConv(c, 3, activation="gelu", dtype=dt, name="feat_extract_0")(x)
        res1 = stage(c, "Encoder_0")(x_, train)
        z = BasicConv(c * 2, 3, stride=2, activation="gelu", dtype=dt, name="feat_extract_1")(res1)
        z = FAM(c * 2, dt, name="FAM2")(z, z2)
        res2 = stage(c * 2, "Encoder_1")(z, train)
        z = BasicConv(c * 4, 3, stride=2, activation="gelu", dtype=dt, name="feat_extract_2")(res2)
        z = FAM(c * 4, dt, name="FAM1")(z, z4)
        z = stage(c * 4, "Encoder_2")(z, train)

        z = stage(c * 4, "Decoder_0")(z, train)
        out_4 = BasicConv(3, 3, activation=None, dtype=dt, name="ConvsOut_0")(z) + x_4
        z = BasicConv(c * 2, 4, stride=2, transpose=True, activation="gelu", dtype=dt, name="feat_extract_3")(z)

        z = BasicConv(c * 2, 1, activation="gelu", dtype=dt, name="Convs_0")(jnp.concatenate([z, res2], axis=-1))
        z = stage(c * 2, "Decoder_1")(z, train)
        out_2 = BasicConv(3, 3, activation=None, dtype=dt, name="ConvsOut_1")(z) + x_2
        z = BasicConv(c, 4, stride=2, transpose=True, activation="gelu", dtype=dt, name="feat_extract_4")(z)

        z = BasicConv(c, 1, activation="gelu", dtype=dt, name="Convs_1")(jnp.concatenate([z, res1], axis=-1))
        z = stage(c, "Decoder_2")(z, train)
        out = BasicConv(3, 3, activation=None, dtype=dt, name="feat_extract_5")(z) + x
        return tuple(o.astype(jnp.float32) for o in (out_4, out_2, out))


def _num_res_for(version: str) -> int:
    if version not in VERSIONS:
        raise ValueError(f"ConvIR version must be one of {sorted(VERSIONS)}, got {version!r}")
    return VERSIONS[version]


def _builder(default_dilations: tuple[int, ...]):
    def build(version: str | None = None, **kwargs) -> ConvIR:
        if version is not None:
            if "num_res" in kwargs:
                raise ValueError("give ConvIR either version or num_res, not both")
            kwargs["num_res"] = _num_res_for(version)
        kwargs["dilations"] = tuple(kwargs.get("dilations", default_dilations))
        return ConvIR(**kwargs)

    return build


build_convir = _builder(DILATIONS_MOTION)
build_convir_derain = _builder(DILATIONS_DERAIN)


def _official_kwargs(official: dict) -> dict:
    """Constructor kwargs of any official ConvIR file -> jaxir's.

    Motion/deraining take num_res; dehazing/desnowing take version (small/base/
    large); Dehazing/ITS also takes `data`, whose dilation branch always yields
    [7, 9, 11] (its `or` chain of non-empty strings is always true).
    """
    kwargs = dict(official)
    if "dilation" in kwargs:
        kwargs["dilations"] = tuple(kwargs.pop("dilation"))
    if kwargs.pop("data", None) is not None:
        kwargs.setdefault("dilations", DILATIONS_MOTION)
    return kwargs


_REPO = "c-yn/ConvIR"

registry.register_model(registry.ModelEntry(
    name="convir",
    builder=build_convir,
    official=((_REPO, "ConvIR"),),
    translate_kwargs=_official_kwargs,
    pad_multiple=PAD_MULTIPLE,
    min_size=min_input_size(DILATIONS_MOTION),
    official_file=("Motion_Deblurring/models/ConvIR.py", "Dehazing/ITS/models/ConvIR.py", "Dehazing/OTS/models/ConvIR.py",
                   "Image_desnowing/models/ConvIR.py"),
    description="ConvIR (TPAMI 2024) for motion deblurring, dehazing and desnowing; num_res 4/8/16 = S/B/L.",
))
registry.register_model(registry.ModelEntry(
    name="convir_derain",
    builder=build_convir_derain,
    official=((_REPO, "ConvIR"),),
    translate_kwargs=_official_kwargs,
    pad_multiple=PAD_MULTIPLE,
    min_size=min_input_size(DILATIONS_DERAIN),
    official_file="Image_deraining/models/ConvIR.py",
    description="ConvIR (TPAMI 2024) for deraining: DeepPoolLayer dilations [3, 7, 9].",
))
