"""Building blocks of the MIMO-UNet family (MIMO-UNet, MIMO-UNet+, ConvIR, XYDeblur).

All three official code bases start from the same `models/layers.py`: a
`BasicConv` (conv or transposed conv, optional BatchNorm, optional activation;
ReLU in MIMO-UNet/XYDeblur, GELU in ConvIR) and a two-conv `ResBlock`. MIMO-UNet
and ConvIR further share the multi-input pyramid (nearest-neighbour halving of
the input) and the coarse-to-fine three-output layout.

Submodule names follow the official attributes (`main_0` is `main.0`, ...), so
the generic state-dict converter needs no rules for them.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir.models.blocks import BatchNorm2d, Conv2d, ConvTranspose2d, gelu, interpolate_nearest

Dtype = Any

ACTIVATIONS = {"relu": nn.relu, "gelu": gelu}


def _activation(name: str | None):
    if name is None:
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or None, got {name!r}")
    return ACTIVATIONS[name]


class BasicConv(nn.Module):
    """Official `BasicConv`: `main` = [conv | transposed conv, BatchNorm2d if norm, activation if any].

    A plain conv pads by kernel_size // 2; a transposed one by kernel_size // 2 - 1
    (kernel 4, stride 2 doubles the size). With norm the conv has no bias, as in
    the official code.
    """

    features: int
    kernel_size: int
    stride: int = 1
    use_bias: bool = True
    norm: bool = False
    activation: str | None = "relu"  # official `relu=True`; 'gelu' in ConvIR, None for `relu=False`
    transpose: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        act = _activation(self.activation)
        bias = self.use_bias and not self.norm
        k = self.kernel_size
        if self.transpose:
            x = ConvTranspose2d(self.features, k, stride=self.stride, padding=k // 2 - 1, use_bias=bias,
                                dtype=self.dtype, name="main_0")(x)
        else:
            x = Conv2d(self.features, k, stride=self.stride, padding=k // 2, use_bias=bias,
                       dtype=self.dtype, name="main_0")(x)
        if self.norm:
            x = BatchNorm2d(dtype=self.dtype, name="main_1")(x, train)
        return x if act is None else act(x)


class ResBlock(nn.Module):
    """Official MIMO-UNet/XYDeblur `ResBlock`: x + conv3x3(act(conv3x3(x))) (`main_0`, `main_1`)."""

    features: int
    norm: bool = False
    activation: str = "relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if x.shape[-1] != self.features:
            raise ValueError(f"{self.name}: ResBlock of {self.features} channels got {x.shape[-1]}")
        y = BasicConv(self.features, 3, norm=self.norm, activation=self.activation, dtype=self.dtype,
                      name="main_0")(x, train)
        y = BasicConv(self.features, 3, norm=self.norm, activation=None, dtype=self.dtype, name="main_1")(y, train)
        return y + x


class ResStack(nn.Module):
    """MIMO-UNet's `EBlock`/`DBlock`: `num_res` ResBlocks in the Sequential `layers`."""

    features: int
    num_res: int = 8
    norm: bool = False
    activation: str = "relu"
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        for i in range(self.num_res):
            x = ResBlock(self.features, self.norm, self.activation, self.dtype, name=f"layers_{i}")(x, train)
        return x


def halve_nearest(x):
    """`F.interpolate(x, scale_factor=0.5)` (mode 'nearest'): keeps the even rows and columns."""
    return interpolate_nearest(x, 0.5)


def double_nearest(x):
    """`F.interpolate(x, scale_factor=2)` (mode 'nearest')."""
    return interpolate_nearest(x, 2.0)


def input_pyramid(x):
    """The multi-input images of MIMO-UNet/ConvIR: full, 1/2 and 1/4 size, nearest-neighbour."""
    x_2 = halve_nearest(x)
    return x, x_2, halve_nearest(x_2)


def check_image_input(x, model: str, channels: int, multiple: int, min_size: int = 1) -> None:
    """Raise a ValueError naming what is wrong with an NHWC input the network cannot take."""
    if x.ndim != 4:
        raise ValueError(f"{model} expects an NHWC batch (4 dims), got shape {tuple(x.shape)}")
    h, w, c = x.shape[1:]
    if c != channels:
        raise ValueError(f"{model} expects {channels} input channels, got {c} (shape {tuple(x.shape)})")
    if h % multiple or w % multiple:
        raise ValueError(
            f"{model} needs height and width divisible by {multiple}, got {h}x{w}; "
            f"pad the input (registry pad_multiple={multiple})"
        )
    if h < min_size or w < min_size:
        raise ValueError(f"{model} needs height and width of at least {min_size}, got {h}x{w}")
