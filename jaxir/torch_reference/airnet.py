"""AirNet in PyTorch, state-dict compatible with XLearning-SCU/2022-CVPR-AirNet (net/model.py) in eval mode.

Written for jaxir. The DCNv2 of mmcv (modulated_deform_conv2d) is written here in plain
torch: each kernel tap samples the input bilinearly (zeros outside) at its offset
position, scaled by the mask, then one matrix product with the weight.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _leaky(x):
    return F.leaky_relu(x, 0.1)


def modulated_deform_conv2d(x, offset, mask, weight, padding: int):
    """Stride 1, one group, one deformable group; offsets (dy, dx) interleaved per tap (mmcv)."""
    b, c, h, w = x.shape
    out_ch, _, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    ys = torch.arange(ho, dtype=x.dtype, device=x.device)[:, None] - padding
    xs = torch.arange(wo, dtype=x.dtype, device=x.device)[None, :] - padding
    columns = []
    flat = x.reshape(b, c, h * w)
    for k in range(kh * kw):
        i, j = divmod(k, kw)
        py = ys + i + offset[:, 2 * k]
        px = xs + j + offset[:, 2 * k + 1]
        y0, x0 = torch.floor(py), torch.floor(px)
        sampled = 0
        for dy in (0, 1):
            for dx in (0, 1):
                yi, xi = y0 + dy, x0 + dx
                weight_yx = (1 - (py - yi).abs()) * (1 - (px - xi).abs())
                inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
                index = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long().reshape(b, 1, -1).expand(-1, c, -1)
                values = torch.gather(flat, 2, index).reshape(b, c, ho, wo)
                sampled = sampled + values * (weight_yx * inside)[:, None]
        columns.append(sampled * mask[:, k:k + 1])
    columns = torch.stack(columns, 2)  # (B, C, K, Ho, Wo)
    return torch.einsum("bckhw,ock->bohw", columns, weight.reshape(out_ch, c, kh * kw))


class ResBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                      nn.LeakyReLU(0.1), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return _leaky(self.backbone(x) + self.shortcut(x))


class ResEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.E_pre = ResBlock(3, 64)
        self.E = nn.Sequential(ResBlock(64, 128, 2), ResBlock(128, 256, 2), nn.AdaptiveAvgPool2d(1))
        self.mlp = nn.Sequential(nn.Linear(256, 256), nn.LeakyReLU(0.1), nn.Linear(256, 256))

    def forward(self, x):
        inter = self.E_pre(x)
        return inter


class MoCo(nn.Module):
    def __init__(self, dim: int, queue: int):
        super().__init__()
        self.encoder_q, self.encoder_k = ResEncoder(), ResEncoder()
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))


class CBDE(nn.Module):
    def __init__(self, batch_size: int):
        super().__init__()
        self.E = MoCo(256, 256 * batch_size)

    def forward(self, x):
        return self.E.encoder_q(x)


class DCNLayer(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size).uniform_(-0.1, 0.1))
        self.conv_offset_mask = nn.Conv2d(2 * channels, 3 * kernel_size ** 2, kernel_size, padding=kernel_size // 2)
        self.padding = kernel_size // 2

    def forward(self, x, inter):
        out = self.conv_offset_mask(torch.cat([x, inter], 1))
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        return modulated_deform_conv2d(x, torch.cat([o1, o2], 1), torch.sigmoid(mask), self.weight, self.padding)


class SFTLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_gamma = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.LeakyReLU(0.1),
                                        nn.Conv2d(channels, channels, 1, bias=False))
        self.conv_beta = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), nn.LeakyReLU(0.1),
                                       nn.Conv2d(channels, channels, 1, bias=False))

    def forward(self, x, inter):
        return x * self.conv_gamma(inter) + self.conv_beta(inter)


class DGM(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.dcn, self.sft = DCNLayer(channels), SFTLayer(channels)

    def forward(self, x, inter):
        return x + self.dcn(x, inter) + self.sft(x, inter)


class DGB(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.dgm1, self.dgm2 = DGM(channels), DGM(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, inter):
        out = _leaky(self.dgm1(x, inter))
        out = _leaky(self.conv1(out))
        out = _leaky(self.dgm2(out, inter))
        return self.conv2(out) + x


class DGG(nn.Module):
    def __init__(self, channels: int, n_blocks: int):
        super().__init__()
        self.body = nn.ModuleList([DGB(channels) for _ in range(n_blocks)] + [nn.Conv2d(channels, channels, 3, padding=1)])

    def forward(self, x, inter):
        res = x
        for block in self.body[:-1]:
            res = block(res, inter)
        return self.body[-1](res) + x


class DGRN(nn.Module):
    def __init__(self, n_groups=5, n_blocks=5, n_feats=64):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.body = nn.ModuleList([DGG(n_feats, n_blocks) for _ in range(n_groups)]
                                  + [nn.Conv2d(n_feats, n_feats, 3, padding=1)])
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3, 3, padding=1))

    def forward(self, x, inter):
        x = self.head(x)
        res = x
        for group in self.body[:-1]:
            res = group(res, inter)
        return self.tail(self.body[-1](res) + x)


class AirNet(nn.Module):
    """Eval-mode forward only (restoration from the query encoder's degradation map)."""

    def __init__(self, batch_size=5, n_groups=5, n_blocks=5, n_feats=64):
        super().__init__()
        self.R = DGRN(n_groups, n_blocks, n_feats)
        self.E = CBDE(batch_size)

    def forward(self, x, x_key=None):
        return self.R(x, self.E(x))


def build_airnet(batch_size=5, in_channels=3, n_groups=5, n_blocks=5, n_feats=64, dtype=None) -> AirNet:
    return AirNet(batch_size, n_groups, n_blocks, n_feats)
