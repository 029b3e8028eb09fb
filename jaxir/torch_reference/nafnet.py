"""NAFNet and its Baseline in PyTorch, state-dict compatible with megvii-research/NAFNet."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelLayerNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[None, :, None, None] + self.bias[None, :, None, None]


class Block(nn.Module):
    def __init__(self, c: int, dw_expand: int, ffn_expand: int, baseline: bool):
        super().__init__()
        dw = c * dw_expand
        self.baseline = baseline
        self.norm1, self.norm2 = ChannelLayerNorm(c), ChannelLayerNorm(c)
        self.conv1 = nn.Conv2d(c, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        if baseline:
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw, dw // 2, 1), nn.ReLU(),
                                    nn.Conv2d(dw // 2, dw, 1), nn.Sigmoid())
            self.conv3 = nn.Conv2d(dw, c, 1)
            self.conv4 = nn.Conv2d(c, ffn_expand * c, 1)
            self.conv5 = nn.Conv2d(ffn_expand * c, c, 1)
        else:
            self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
            self.conv3 = nn.Conv2d(dw // 2, c, 1)
            self.conv4 = nn.Conv2d(c, ffn_expand * c, 1)
            self.conv5 = nn.Conv2d(ffn_expand * c // 2, c, 1)
        self.beta = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, c, 1, 1))

    def _gate(self, x):
        if self.baseline:
            return F.gelu(x)
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, inp):
        x = self._gate(self.conv2(self.conv1(self.norm1(inp))))
        x = x * (self.se(x) if self.baseline else self.sca(x))
        y = inp + self.conv3(x) * self.beta
        x = self.conv5(self._gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    def __init__(self, img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(),
                 dw_expand=2, ffn_expand=2, baseline=False):
        super().__init__()
        make = lambda c: Block(c, dw_expand, ffn_expand, baseline)  # noqa: E731
        self.intro = nn.Conv2d(img_channel, width, 3, padding=1)
        self.ending = nn.Conv2d(width, img_channel, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        chan = width
        for num in enc_blk_nums:
            self.encoders.append(nn.Sequential(*[make(chan) for _ in range(num)]))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, 2))
            chan *= 2
        self.middle_blks = nn.Sequential(*[make(chan) for _ in range(middle_blk_num)])
        for num in dec_blk_nums:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, chan * 2, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*[make(chan) for _ in range(num)]))
        self.multiple = 2 ** len(enc_blk_nums)

    def forward(self, inp):
        h, w = inp.shape[-2:]
        inp = F.pad(inp, (0, (-w) % self.multiple, 0, (-h) % self.multiple))
        x = self.intro(inp)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle_blks(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        return (self.ending(x) + inp)[..., :h, :w]


def build_nafnet(img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(), dw_expand=2,
                 ffn_expand=2, **unused):
    if unused.get("tlc_train_size") is not None:
        raise ValueError("the PyTorch reference has no TLC")
    return NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums, dw_expand, ffn_expand)


def build_baseline(img_channel=3, width=16, middle_blk_num=1, enc_blk_nums=(), dec_blk_nums=(), dw_expand=1,
                   ffn_expand=2, **unused):
    return NAFNet(img_channel, width, middle_blk_num, enc_blk_nums, dec_blk_nums, dw_expand, ffn_expand,
                  baseline=True)
