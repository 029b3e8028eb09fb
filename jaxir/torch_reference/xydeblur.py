"""XYDeblur in PyTorch, state-dict compatible with Seowon-Ji/XYDeblur (models/XYDeblur.py)."""
from __future__ import annotations

import torch
from torch import nn

from jaxir.torch_reference.mimo_unet import BasicConv, ResBlock, ResStage

IMG_CHANNELS = 3


def rotate(x):
    """90 degrees one way (NCHW), as the official rotates the features for the second decoding."""
    return x.transpose(2, 3).flip(2)


def unrotate(x):
    return x.transpose(2, 3).flip(3)


class XYDeblur(nn.Module):
    """One encoder, one decoder applied to the features and to their rotation; returns
    (decoded, rotated-back decoding, their sum plus the input)."""

    def __init__(self, base_channel: int = 32, num_res_enc: int = 6, num_res_dec: int = 6):
        super().__init__()
        c = base_channel

        def encoder(cin, cout, stride):
            return ResStage([BasicConv(cin, cout, 3, stride=stride)] + [ResBlock(cout) for _ in range(num_res_enc)])

        def decoder(ch, upsample: bool):
            blocks = [ResBlock(ch) for _ in range(num_res_dec)]
            if upsample:
                blocks.append(BasicConv(ch, ch // 2, 4, stride=2, transpose=True))
            return ResStage(blocks)

        self.Encoder1 = encoder(IMG_CHANNELS, c, 1)
        self.Encoder2 = encoder(c, 2 * c, 2)
        self.Encoder3 = encoder(2 * c, 4 * c, 2)
        self.Convs1_1 = BasicConv(4 * c, 2 * c, 1)
        self.Convs1_2 = BasicConv(2 * c, c, 1)
        self.Decoder1_1 = decoder(4 * c, upsample=True)
        self.Decoder1_2 = decoder(2 * c, upsample=True)
        self.Decoder1_3 = decoder(c, upsample=False)
        self.Decoder1_4 = BasicConv(c, IMG_CHANNELS, 3, activation=None)

    def decode(self, deep, skip2, skip1):
        x = self.Convs1_1(torch.cat([self.Decoder1_1(deep), skip2], 1))
        x = self.Convs1_2(torch.cat([self.Decoder1_2(x), skip1], 1))
        return self.Decoder1_4(self.Decoder1_3(x))

    def forward(self, x):
        e1 = self.Encoder1(x)
        e2 = self.Encoder2(e1)
        deep = self.Encoder3(e2)
        out_x = self.decode(deep, e2, e1)
        out_y = unrotate(self.decode(rotate(deep), rotate(e2), rotate(e1)))
        return out_x, out_y, out_x + out_y + x


def build_xydeblur(base_channel: int = 32, num_res_enc: int = 6, num_res_dec: int = 6,
                   img_channel: int = IMG_CHANNELS) -> XYDeblur:
    if img_channel != IMG_CHANNELS:
        raise ValueError(f"XYDeblur takes {IMG_CHANNELS}-channel images, got img_channel={img_channel}")
    return XYDeblur(base_channel, num_res_enc, num_res_dec)
