"""XYDeblur: one encoder, one decoder applied to the features and to their 90-degree rotation.

Ji et al., "XYDeblur: Divide and Conquer for Single Image Deblurring", CVPR 2022.
Official code: Seowon-Ji/XYDeblur, models/XYDeblur.py.

The decoder (shared weights) runs twice: on the encoder features and on the same
features rotated by 90 degrees (skips rotated too), so the two passes specialise
in the two blur directions. The second result is rotated back; the outputs are
[decoder(features), rotated-back decoder(rotated features), their sum + input].
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.mimo_blocks import BasicConv, ResBlock, check_image_input

Dtype = Any


def rotate_features(x):
    """The official `x.transpose(2, 3).flip(2)` on NCHW, for NHWC."""
    return jnp.flip(jnp.swapaxes(x, 1, 2), axis=1)


def unrotate_features(x):
    """The official `x.transpose(2, 3).flip(3)` on NCHW (inverse of `rotate_features`), for NHWC."""
    return jnp.flip(jnp.swapaxes(x, 1, 2), axis=2)


class EBlock(nn.Module):
    """`layers`: a (strided unless first) 3x3 BasicConv, then `num_res` ResBlocks."""

    features: int
    num_res: int
    first: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = BasicConv(self.features, 3, stride=1 if self.first else 2, dtype=self.dtype, name="layers_0")(x)
        for i in range(1, self.num_res + 1):
            x = ResBlock(self.features, dtype=self.dtype, name=f"layers_{i}")(x)
        return x


class DBlock(nn.Module):
    """`layers`: `num_res` ResBlocks, then (unless last) a transposed conv halving the channels."""

    features: int
    num_res: int
    last: bool = False
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i in range(self.num_res):
            x = ResBlock(self.features, dtype=self.dtype, name=f"layers_{i}")(x)
        if not self.last:
            x = BasicConv(self.features // 2, 4, stride=2, transpose=True, dtype=self.dtype,
                          name=f"layers_{self.num_res}")(x)
        return x


class XYDeblur(nn.Module):
    base_channel: int = 32
    num_res_enc: int = 6
    num_res_dec: int = 6
    dtype: Dtype = jnp.float32
    img_channel: int = 3

    def setup(self):
        c, dt = self.base_channel, self.dtype
        self.Encoder1 = EBlock(c, self.num_res_enc, first=True, dtype=dt)
        self.Encoder2 = EBlock(c * 2, self.num_res_enc, dtype=dt)
        self.Encoder3 = EBlock(c * 4, self.num_res_enc, dtype=dt)
        self.Convs1_1 = BasicConv(c * 2, 1, dtype=dt)
        self.Convs1_2 = BasicConv(c, 1, dtype=dt)
        self.Decoder1_1 = DBlock(c * 4, self.num_res_dec, dtype=dt)
        self.Decoder1_2 = DBlock(c * 2, self.num_res_dec, dtype=dt)
        self.Decoder1_3 = DBlock(c, self.num_res_dec, last=True, dtype=dt)
        self.Decoder1_4 = BasicConv(3, 3, activation=None, dtype=dt)

    def _decode(self, deep, skip2, skip1):
        x = self.Convs1_1(jnp.concatenate([self.Decoder1_1(deep), skip2], axis=-1))
        x = self.Convs1_2(jnp.concatenate([self.Decoder1_2(x), skip1], axis=-1))
        return self.Decoder1_4(self.Decoder1_3(x))

    def __call__(self, x, train: bool = False):
        check_image_input(x, "XYDeblur", channels=3, multiple=4)
        x = x.astype(self.dtype)
        e1 = self.Encoder1(x)
        e2 = self.Encoder2(e1)
        deep = self.Encoder3(e2)
        out_x = self._decode(deep, e2, e1)
        out_y = unrotate_features(self._decode(rotate_features(deep), rotate_features(e2), rotate_features(e1)))
        return tuple(o.astype(jnp.float32) for o in (out_x, out_y, out_x + out_y + x))


registry.register_model(registry.ModelEntry(
    name="xydeblur",
    builder=XYDeblur,
    official=(("Seowon-Ji/XYDeblur", "XYDeblur"),),
    pad_multiple=4,
    official_file="models/XYDeblur.py",
    description="XYDeblur (CVPR 2022): shared decoder on features and their 90-degree rotation.",
))
