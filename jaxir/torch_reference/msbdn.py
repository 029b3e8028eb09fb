"""MSBDN-DFF and MSBDN-RDFF in PyTorch, state-dict compatible with BookerDeWitt/MSBDN-DFF
(networks/MSBDN-DFF-v1-1.py and networks/MSBDN-RDFF.py, `Net`; base_networks.py mode 'iter2')."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.pad = k // 2
        self.conv2d = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"))


class UpsampleConvLayer(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv2d = nn.ConvTranspose2d(cin, cout, 3, stride=2)

    def forward(self, x):
        return self.conv2d(x)


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2, self.relu = ConvLayer(c, c, 3), ConvLayer(c, c, 3), nn.PReLU()

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x))) * 0.1 + x


class Scale(nn.Module):
    """4x4 stride-2 (transposed) conv + PReLU; `conv`/`deconv` names as the official blocks."""

    def __init__(self, cin, cout, up):
        super().__init__()
        layer = nn.ConvTranspose2d(cin, cout, 4, 2, 1) if up else nn.Conv2d(cin, cout, 4, 2, 1)
        setattr(self, "deconv" if up else "conv", layer)
        self.layer_name = "deconv" if up else "conv"
        self.act = nn.PReLU()

    def forward(self, x):
        return self.act(getattr(self, self.layer_name)(x))


class Fusion(nn.Module):
    """Back-projection fusion with every earlier feature (encoder: earlier ones larger)."""

    def __init__(self, c, num_ft, encoder):
        super().__init__()
        n = num_ft - 1
        widths = [c // 2 ** i if encoder else c * 2 ** i for i in range(n + 1)]
        self.n = n
        self.up_convs = nn.ModuleList()
        self.down_convs = nn.ModuleList()
        for i in range(n):
            if encoder:
                self.up_convs.append(Scale(widths[i], widths[i + 1], True))
                self.down_convs.append(Scale(widths[i + 1], widths[i], False))
            else:
                self.down_convs.append(Scale(widths[i], widths[i + 1], False))
                self.up_convs.append(Scale(widths[i + 1], widths[i], True))
        self.encoder = encoder

    def forward(self, x, earlier):
        there, back = (self.up_convs, self.down_convs) if self.encoder else (self.down_convs, self.up_convs)
        fusion = x
        for i, feature in enumerate(earlier):
            ft = fusion
            for j in range(self.n - i):
                ft = there[j](ft)
            ft = ft - feature
            for j in range(self.n - i):
                ft = back[self.n - i - j - 1](ft)
            fusion = fusion + ft
        return fusion


class DenseLayer(nn.Module):
    def __init__(self, cin, growth):
        super().__init__()
        self.conv = nn.Conv2d(cin, growth, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.cat((x, F.relu(self.conv(x))), 1)


class RDB(nn.Module):
    def __init__(self, c, layers, growth):
        super().__init__()
        self.dense_layers = nn.Sequential(*[DenseLayer(c + i * growth, growth) for i in range(layers)])
        self.conv_1x1 = nn.Conv2d(c + layers * growth, c, 1, bias=False)

    def forward(self, x):
        return self.conv_1x1(self.dense_layers(x)) + x


def _stage(c):
    return nn.Sequential(*[ResidualBlock(c) for _ in range(3)])


class MSBDN(nn.Module):
    def __init__(self, res_blocks: int = 18, rdff: bool = False):
        super().__init__()
        self.rdff = rdff
        div = 2 if rdff else 1
        self.conv_input = ConvLayer(3, 16, 11)
        self.dense0 = _stage(16)
        for level, c in enumerate((32, 64, 128, 256), start=1):
            setattr(self, f"conv{2 ** level}x", ConvLayer(c // 2, c, 3, 2))
            if rdff:
                setattr(self, f"conv{level}", RDB(c // 2, 4, c // 2))
            setattr(self, f"fusion{level}", Fusion(c // div, level + 1, True))
            if level < 4:
                setattr(self, f"dense{level}", _stage(c))
        self.dehaze = nn.Sequential()
        for i in range(res_blocks):
            self.dehaze.add_module(f"res{i}", ResidualBlock(256))
        for k, c in enumerate((128, 64, 32, 16)):
            level = 4 - k
            setattr(self, f"convd{2 ** level}x", UpsampleConvLayer(2 * c, c))
            setattr(self, f"dense_{level}", _stage(c))
            if rdff:
                setattr(self, f"conv_{level}", RDB(c // 2, 4, c // 2))
            setattr(self, f"fusion_{level}", Fusion(c // div, k + 2, False))
        self.conv_output = ConvLayer(16, 3, 3)

    def _fuse(self, h, fusion, rdb, memory):
        if not self.rdff:
            h = fusion(h, memory)
            return h, h
        a, b = h.chunk(2, dim=1)
        a = fusion(a, memory)
        return torch.cat((a, rdb(b)), 1), a

    def _half(self, h):
        return h.chunk(2, dim=1)[0] if self.rdff else h

    def forward(self, x):
        res1x = self.conv_input(x)
        memory = [self._half(res1x)]
        x = self.dense0(res1x) + res1x
        h, skips = x, []
        for level in (1, 2, 3):
            h = getattr(self, f"conv{2 ** level}x")(h)
            h, fused = self._fuse(h, getattr(self, f"fusion{level}"), getattr(self, f"conv{level}", None), memory)
            memory.append(fused)
            h = getattr(self, f"dense{level}")(h) + h
            skips.append(h)
        res16x = self.conv16x(h)
        res16x, _ = self._fuse(res16x, self.fusion4, getattr(self, "conv4", None), memory)
        in_ft = res16x * 2
        h = self.dehaze(in_ft) + in_ft - res16x
        memory_up = [self._half(h)]
        for k, skip in enumerate(reversed([x] + skips)):
            level = 4 - k
            up = getattr(self, f"convd{2 ** level}x")(h)
            up = F.interpolate(up, skip.shape[2:], mode="bilinear", align_corners=False)
            h = up + skip
            h = getattr(self, f"dense_{level}")(h) + h - up
            h, fused = self._fuse(h, getattr(self, f"fusion_{level}"), getattr(self, f"conv_{level}", None), memory_up)
            memory_up.append(fused)
        return self.conv_output(h)


def build_msbdn(res_blocks: int = 18, rdff: bool = False, **_):
    return MSBDN(res_blocks, rdff)
