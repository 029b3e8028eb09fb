"""ConvIR in PyTorch, state-dict compatible with c-yn/ConvIR (Motion_Deblurring/models/ConvIR.py and the
task variants, which differ only in the DeepPoolLayer dilations)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.mimo_unet import BasicConv, ResBlock, ResStage, halve

DILATIONS_MOTION = (7, 9, 11)
DILATIONS_DERAIN = (3, 7, 9)
VERSIONS = {"small": 4, "base": 8, "large": 16}
POOL_SIZES = (8, 4, 2)


def apply_dynamic_taps(x, taps, kernel: tuple[int, int], dilation: int, pad: tuple[int, int, int, int]):
    """Per-sample, per-channel-group filtering: `taps` (n, groups, kh*kw) weight the reflect-padded neighbours."""
    n, c, h, w = x.shape
    groups, taps_per_group = taps.shape[1], taps.shape[2]
    patches = F.unfold(F.pad(x, pad, mode="reflect"), kernel, dilation=dilation)
    patches = patches.reshape(n, groups, c // groups, taps_per_group, h * w)
    return (patches * taps[:, :, None, :, None]).sum(3).reshape(n, c, h, w)


class FrequencyMix(nn.Module):
    """Shared tail of the dynamic filters: re-weights the low-pass part and the identity per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.inside_all = nn.Parameter(torch.zeros(channels, 1, 1))
        self.lamb_l = nn.Parameter(torch.zeros(channels))
        self.lamb_h = nn.Parameter(torch.zeros(channels))

    def mix(self, x, low, mean):
        low = (low * (self.inside_all + 1.0) - self.inside_all * mean) * self.lamb_l[:, None, None]
        return low + x * (self.lamb_h[:, None, None] + 1.0)


class DynamicFilter(FrequencyMix):
    """Official `dynamic_filter`: a k x k dilated filter per channel group, predicted from the global mean."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, group: int = 8):
        super().__init__(channels)
        self.kernel_size, self.dilation, self.group = kernel_size, dilation, group
        self.conv = nn.Conv2d(channels, group * kernel_size ** 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(group * kernel_size ** 2)

    def forward(self, x):
        mean = x.mean((2, 3), keepdim=True)
        taps = torch.tanh(self.bn(self.conv(mean))).reshape(x.shape[0], self.group, -1)
        p = self.dilation * (self.kernel_size - 1) // 2
        k = self.kernel_size
        return self.mix(x, apply_dynamic_taps(x, taps, (k, k), self.dilation, (p, p, p, p)), mean)


class StripFilter(FrequencyMix):
    """Official `spatial_strip_att`: a 1 x k (horizontal) or k x 1 (vertical) predicted filter."""

    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, group: int = 2,
                 horizontal: bool = True):
        super().__init__(channels)
        self.kernel_size, self.dilation, self.group, self.horizontal = kernel_size, dilation, group, horizontal
        self.conv = nn.Conv2d(channels, group * kernel_size, 1, bias=False)

    def forward(self, x):
        taps = torch.tanh(self.conv(x.mean((2, 3), keepdim=True))).reshape(x.shape[0], self.group, -1)
        p = self.dilation * (self.kernel_size - 1) // 2
        if self.horizontal:
            kernel, pad, strip_mean = (1, self.kernel_size), (p, p, 0, 0), x.mean(3, keepdim=True)
        else:
            kernel, pad, strip_mean = (self.kernel_size, 1), (0, 0, p, p), x.mean(2, keepdim=True)
        return self.mix(x, apply_dynamic_taps(x, taps, kernel, self.dilation, pad), strip_mean)


class CubicAttention(nn.Module):
    def __init__(self, channels: int, group: int, dilation: int, kernel_size: int):
        super().__init__()
        self.H_spatial_att = StripFilter(channels, kernel_size, dilation, group, horizontal=True)
        self.W_spatial_att = StripFilter(channels, kernel_size, dilation, group, horizontal=False)
        self.gamma = nn.Parameter(torch.zeros(channels, 1, 1))
        self.beta = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return self.gamma * self.W_spatial_att(self.H_spatial_att(x)) + self.beta * x


class MultiShapeKernel(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, dilation: int = 1, group: int = 8):
        super().__init__()
        self.square_att = DynamicFilter(channels, kernel_size, dilation, group)
        self.strip_att = CubicAttention(channels, group, dilation, kernel_size)

    def forward(self, x):
        return self.strip_att(x) + self.square_att(x)


class DeepPoolLayer(nn.Module):
    """Filters at 1/8, 1/4, 1/2 size, each fed the previous (coarser) result, all added back at full size."""

    def __init__(self, channels: int, out_channels: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, channels, 3, padding=1, bias=False) for _ in POOL_SIZES])
        self.dynas = nn.ModuleList([MultiShapeKernel(channels, 3, d) for d in dilations])
        self.conv_sum = nn.Conv2d(channels, out_channels, 3, padding=1, bias=False)

    def forward(self, x):
        total, coarser = x, None
        for i, (pool_size, conv, dyna) in enumerate(zip(POOL_SIZES, self.convs, self.dynas)):
            pooled = F.avg_pool2d(x, pool_size)
            y = dyna(conv(pooled if coarser is None else pooled + coarser))
            total = total + F.interpolate(y, x.shape[2:], mode="bilinear", align_corners=True)
            if i + 1 < len(POOL_SIZES):
                coarser = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True)
        return self.conv_sum(F.gelu(total))


class SCM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        quarter, half = channels // 4, channels // 2
        self.main = nn.Sequential(
            BasicConv(3, quarter, 3, activation=nn.GELU), BasicConv(quarter, half, 1, activation=nn.GELU),
            BasicConv(half, half, 3, activation=nn.GELU), BasicConv(half, channels, 1, activation=None),
            nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x):
        return self.main(x)


class FAM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.merge = BasicConv(2 * channels, channels, 3, activation=None)

    def forward(self, x1, x2):
        return self.merge(torch.cat([x1, x2], 1))


class ConvIR(nn.Module):
    """Returns (1/4, 1/2, full) restorations. Sides must be multiples of 32, at least 256 (pooled reflect pads)."""

    def __init__(self, num_res: int = 16, base_channel: int = 32, dilations: Sequence[int] = DILATIONS_MOTION):
        super().__init__()
        if len(dilations) != len(POOL_SIZES):
            raise ValueError(f"ConvIR needs {len(POOL_SIZES)} dilations, one per pooled scale; got {dilations!r}")
        c = base_channel

        def stage(ch):
            # The official keeps an Identity in the middle slot, so the second conv is `main.2` everywhere.
            blocks = [ResBlock(ch, nn.GELU, nn.Identity()) for _ in range(num_res - 1)]
            return ResStage(blocks + [ResBlock(ch, nn.GELU, DeepPoolLayer(ch, ch, dilations))])

        gelu = nn.GELU
        self.Encoder = nn.ModuleList([stage(c), stage(2 * c), stage(4 * c)])
        self.feat_extract = nn.ModuleList([
            BasicConv(3, c, 3, activation=gelu), BasicConv(c, 2 * c, 3, stride=2, activation=gelu),
            BasicConv(2 * c, 4 * c, 3, stride=2, activation=gelu),
            BasicConv(4 * c, 2 * c, 4, stride=2, activation=gelu, transpose=True),
            BasicConv(2 * c, c, 4, stride=2, activation=gelu, transpose=True),
            BasicConv(c, 3, 3, activation=None)])
        self.Decoder = nn.ModuleList([stage(4 * c), stage(2 * c), stage(c)])
        self.Convs = nn.ModuleList([BasicConv(4 * c, 2 * c, 1, activation=gelu),
                                    BasicConv(2 * c, c, 1, activation=gelu)])
        self.ConvsOut = nn.ModuleList([BasicConv(4 * c, 3, 3, activation=None),
                                       BasicConv(2 * c, 3, 3, activation=None)])
        self.FAM1, self.SCM1 = FAM(4 * c), SCM(4 * c)
        self.FAM2, self.SCM2 = FAM(2 * c), SCM(2 * c)

    def forward(self, x):
        x_2 = halve(x)
        x_4 = halve(x_2)
        res1 = self.Encoder[0](self.feat_extract[0](x))
        res2 = self.Encoder[1](self.FAM2(self.feat_extract[1](res1), self.SCM2(x_2)))
        z = self.Encoder[2](self.FAM1(self.feat_extract[2](res2), self.SCM1(x_4)))
        z = self.Decoder[0](z)
        out_4 = self.ConvsOut[0](z) + x_4
        z = self.Decoder[1](self.Convs[0](torch.cat([self.feat_extract[3](z), res2], 1)))
        out_2 = self.ConvsOut[1](z) + x_2
        z = self.Decoder[2](self.Convs[1](torch.cat([self.feat_extract[4](z), res1], 1)))
        return out_4, out_2, self.feat_extract[5](z) + x


def _builder(default_dilations: tuple[int, ...]):
    def build(version: str | None = None, num_res: int | None = None, base_channel: int = 32,
              dilations: Sequence[int] = default_dilations) -> ConvIR:
        if version is not None:
            if num_res is not None:
                raise ValueError("give ConvIR either version or num_res, not both")
            if version not in VERSIONS:
                raise ValueError(f"ConvIR version must be one of {sorted(VERSIONS)}, got {version!r}")
            num_res = VERSIONS[version]
        return ConvIR(16 if num_res is None else num_res, base_channel, tuple(dilations))

    return build


build_convir = _builder(DILATIONS_MOTION)
build_convir_derain = _builder(DILATIONS_DERAIN)
