"""MIMO-UNet and MIMO-UNet+.

Cho, Ji, Hong, Jung, Ko. "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021. Official code: chosj95/MIMO-UNet, models/MIMOUNet.py
(classes MIMOUNet, MIMOUNetPlus).

A three-level U-Net that takes the image at 1, 1/2 and 1/4 size (shallow
convolutional modules SCM feed the smaller ones in through feature attention
modules FAM), fuses the encoder features of all scales for each skip
(asymmetric feature fusion AFF) and returns a restored image at every scale,
coarse to fine. MIMO-UNet+ is the same network with 20 residual blocks per stage
and Dropout2d(0.1) on the two fused skips while training.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import Dropout2d
from jaxir.models.mimo_blocks import (
    BasicConv,
    ResStack,
    check_image_input,
    double_nearest,
    halve_nearest,
    input_pyramid,
)

Dtype = Any


class AFF(nn.Module):
    """Asymmetric feature fusion: concat the three scales' features, 1x1 conv + ReLU, 3x3 conv."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x1, x2, x4):
        x = jnp.concatenate([x1, x2, x4], axis=-1)
        x = BasicConv(self.features, 1, activation="relu", dtype=self.dtype, name="conv_0")(x)
        return BasicConv(self.features, 3, activation=None, dtype=self.dtype, name="conv_1")(x)


class SCM(nn.Module):
    """Shallow convolutional module: features of a downscaled input image, concatenated with it."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, image):
        c, dt = self.features, self.dtype
        x = BasicConv(c // 4, 3, dtype=dt, name="main_0")(image)
        x = BasicConv(c // 2, 1, dtype=dt, name="main_1")(x)
        x = BasicConv(c // 2, 3, dtype=dt, name="main_2")(x)
        x = BasicConv(c - image.shape[-1], 1, dtype=dt, name="main_3")(x)
        x = jnp.concatenate([image.astype(x.dtype), x], axis=-1)
        return BasicConv(c, 1, activation=None, dtype=dt, name="conv")(x)


class FAM(nn.Module):
    """Feature attention module: x1 + conv3x3(x1 * x2)."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x1, x2):
        return x1 + BasicConv(self.features, 3, activation=None, dtype=self.dtype, name="merge")(x1 * x2)


class MIMOUNet(nn.Module):
    """MIMO-UNet (`skip_dropout=0`) or MIMO-UNet+ (`num_res=20, skip_dropout=0.1`).

    Input NHWC RGB, height and width divisible by 4. Returns three images, coarse
    to fine: (1/4, 1/2, full size), each the network output plus the input at
    that scale. `skip_dropout` needs `rngs={'dropout': key}` when train=True.
    """

    num_res: int = 8
    base_channel: int = 32
    skip_dropout: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        check_image_input(x, type(self).__name__, channels=3, multiple=4)
        c, n, dt = self.base_channel, self.num_res, self.dtype
        x, x_2, x_4 = input_pyramid(x.astype(dt))
        z2 = SCM(c * 2, dt, name="SCM2")(x_2)
        z4 = SCM(c * 4, dt, name="SCM1")(x_4)

        x_ = BasicConv(c, 3, dtype=dt, name="feat_extract_0")(x)
        res1 = ResStack(c, n, dtype=dt, name="Encoder_0")(x_)
        z = BasicConv(c * 2, 3, stride=2, dtype=dt, name="feat_extract_1")(res1)
        z = FAM(c * 2, dt, name="FAM2")(z, z2)
        res2 = ResStack(c * 2, n, dtype=dt, name="Encoder_1")(z)
        z = BasicConv(c * 4, 3, stride=2, dtype=dt, name="feat_extract_2")(res2)
        z = FAM(c * 4, dt, name="FAM1")(z, z4)
        z = ResStack(c * 4, n, dtype=dt, name="Encoder_2")(z)

        z12 = halve_nearest(res1)
        z21 = double_nearest(res2)
        z42 = double_nearest(z)
        z41 = double_nearest(z42)
        res2 = AFF(c * 2, dt, name="AFFs_1")(z12, res2, z42)
        res1 = AFF(c, dt, name="AFFs_0")(res1, z21, z41)
        if self.skip_dropout > 0:
            res2 = Dropout2d(self.skip_dropout, name="drop2")(res2, train)
            res1 = Dropout2d(self.skip_dropout, name="drop1")(res1, train)

        z = ResStack(c * 4, n, dtype=dt, name="Decoder_0")(z)
        out_4 = BasicConv(3, 3, activation=None, dtype=dt, name="ConvsOut_0")(z) + x_4
        z = BasicConv(c * 2, 4, stride=2, transpose=True, dtype=dt, name="feat_extract_3")(z)

        z = BasicConv(c * 2, 1, dtype=dt, name="Convs_0")(jnp.concatenate([z, res2], axis=-1))
        z = ResStack(c * 2, n, dtype=dt, name="Decoder_1")(z)
        out_2 = BasicConv(3, 3, activation=None, dtype=dt, name="ConvsOut_1")(z) + x_2
        z = BasicConv(c, 4, stride=2, transpose=True, dtype=dt, name="feat_extract_4")(z)

        z = BasicConv(c, 1, dtype=dt, name="Convs_1")(jnp.concatenate([z, res1], axis=-1))
        z = ResStack(c, n, dtype=dt, name="Decoder_2")(z)
        out = BasicConv(3, 3, activation=None, dtype=dt, name="feat_extract_5")(z) + x
        return tuple(o.astype(jnp.float32) for o in (out_4, out_2, out))


def build_mimo_unet(**kwargs) -> MIMOUNet:
    return MIMOUNet(**kwargs)


def build_mimo_unet_plus(**kwargs) -> MIMOUNet:
    kwargs.setdefault("num_res", 20)
    kwargs.setdefault("skip_dropout", 0.1)
    return MIMOUNet(**kwargs)


_REPO = "chosj95/MIMO-UNet"
_FILE = "models/MIMOUNet.py"

registry.register_model(registry.ModelEntry(
    name="mimo_unet",
    builder=build_mimo_unet,
    official=((_REPO, "MIMOUNet"),),
    pad_multiple=4,
    min_size=4,
    official_file=_FILE,
    description="MIMO-UNet (ICCV 2021), 6.8M params; three outputs coarse to fine.",
))
registry.register_model(registry.ModelEntry(
    name="mimo_unet_plus",
    builder=build_mimo_unet_plus,
    official=((_REPO, "MIMOUNetPlus"),),
    pad_multiple=4,
    min_size=4,
    official_file=_FILE,
    description="MIMO-UNet+ (ICCV 2021), 16.1M params: 20 res blocks per stage, Dropout2d(0.1) on the skips.",
))
