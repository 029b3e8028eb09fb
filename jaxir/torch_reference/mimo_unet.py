"""MIMO-UNet and MIMO-UNet+ in PyTorch, state-dict compatible with chosj95/MIMO-UNet (models/MIMOUNet.py).

`BasicConv` and `ResBlock` follow the layout shared by the MIMO family's
`models/layers.py`, so the ConvIR reference reuses them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicConv(nn.Module):
    """`main` = [conv, activation]; a transposed conv (kernel 4, stride 2) doubles the size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 activation: type[nn.Module] | None = nn.ReLU, transpose: bool = False):
        super().__init__()
        if transpose:
            conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2 - 1)
        else:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
        self.main = nn.Sequential(conv, *([activation()] if activation else []))

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Module):
    """x + conv(act(conv(x))), with an optional middle module (ConvIR's DeepPoolLayer) between the convs."""

    def __init__(self, channels: int, activation: type[nn.Module] = nn.ReLU, middle: nn.Module | None = None):
        super().__init__()
        layers = [BasicConv(channels, channels, 3, activation=activation)]
        if middle is not None:
            layers.append(middle)
        layers.append(BasicConv(channels, channels, 3, activation=None))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.main(x)


class ResStage(nn.Module):
    """The official EBlock/DBlock: residual blocks under `layers`."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.layers = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layers(x)


def halve(x):
    return F.interpolate(x, scale_factor=0.5)  # nearest, as the official pyramid


def double(x):
    return F.interpolate(x, scale_factor=2)


class AFF(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(BasicConv(in_channels, out_channels, 1),
                                  BasicConv(out_channels, out_channels, 3, activation=None))

    def forward(self, x1, x2, x4):
        return self.conv(torch.cat([x1, x2, x4], 1))


class SCM(nn.Module):
    """Features of a downscaled image, concatenated with the image, then a 1x1 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(BasicConv(3, channels // 4, 3), BasicConv(channels // 4, channels // 2, 1),
                                  BasicConv(channels // 2, channels // 2, 3), BasicConv(channels // 2, channels - 3, 1))
        self.conv = BasicConv(channels, channels, 1, activation=None)

    def forward(self, x):
        return self.conv(torch.cat([x, self.main(x)], 1))


class FAM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.merge = BasicConv(channels, channels, 3, activation=None)

    def forward(self, x1, x2):
        return x1 + self.merge(x1 * x2)


class MIMOUNet(nn.Module):
    """Returns (1/4, 1/2, full) restorations; `skip_dropout` > 0 is MIMO-UNet+'s Dropout2d on the fused skips."""

    def __init__(self, num_res: int = 8, base_channel: int = 32, skip_dropout: float = 0.0):
        super().__init__()
        c = base_channel
        stage = lambda ch: ResStage([ResBlock(ch) for _ in range(num_res)])
        self.Encoder = nn.ModuleList([stage(c), stage(2 * c), stage(4 * c)])
        self.feat_extract = nn.ModuleList([
            BasicConv(3, c, 3), BasicConv(c, 2 * c, 3, stride=2), BasicConv(2 * c, 4 * c, 3, stride=2),
            BasicConv(4 * c, 2 * c, 4, stride=2, transpose=True), BasicConv(2 * c, c, 4, stride=2, transpose=True),
            BasicConv(c, 3, 3, activation=None)])
        self.Decoder = nn.ModuleList([stage(4 * c), stage(2 * c), stage(c)])
        self.Convs = nn.ModuleList([BasicConv(4 * c, 2 * c, 1), BasicConv(2 * c, c, 1)])
        self.ConvsOut = nn.ModuleList([BasicConv(4 * c, 3, 3, activation=None),
                                       BasicConv(2 * c, 3, 3, activation=None)])
        self.AFFs = nn.ModuleList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.FAM1, self.SCM1 = FAM(4 * c), SCM(4 * c)
        self.FAM2, self.SCM2 = FAM(2 * c), SCM(2 * c)
        self.drop1, self.drop2 = nn.Dropout2d(skip_dropout), nn.Dropout2d(skip_dropout)

    def forward(self, x):
        x_2 = halve(x)
        x_4 = halve(x_2)
        res1 = self.Encoder[0](self.feat_extract[0](x))
        res2 = self.Encoder[1](self.FAM2(self.feat_extract[1](res1), self.SCM2(x_2)))
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), self.SCM1(x_4)))

        z42 = double(z)
        fused2 = self.drop2(self.AFFs[1](halve(res1), res2, z42))
        fused1 = self.drop1(self.AFFs[0](res1, double(res2), double(z42)))

        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.Decoder[1](self.Convs[0](torch.cat([self.feat_extract[3](z), fused2], 1)))
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.Decoder[2](self.Convs[1](torch.cat([self.feat_extract[4](z), fused1], 1)))
        return out_4, out_2, self.feat_extract[5](z) + x


def build_mimo_unet(num_res: int = 8, base_channel: int = 32, skip_dropout: float = 0.0) -> MIMOUNet:
    return MIMOUNet(num_res, base_channel, skip_dropout)


def build_mimo_unet_plus(num_res: int = 20, base_channel: int = 32, skip_dropout: float = 0.1) -> MIMOUNet:
    return MIMOUNet(num_res, base_channel, skip_dropout)
