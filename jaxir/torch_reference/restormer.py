"""Restormer in PyTorch, state-dict compatible with swz30/Restormer (basicsr/models/archs/restormer_arch.py)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_TYPES = ("WithBias", "BiasFree")


class NormBody(nn.Module):
    """Layer norm over channels of an NCHW map (biased variance, eps 1e-5); BiasFree does not centre."""

    def __init__(self, channels: int, with_bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None

    def forward(self, x):
        var = x.var(1, keepdim=True, unbiased=False)
        w = self.weight[:, None, None]
        if self.bias is None:
            return x / torch.sqrt(var + 1e-5) * w
        return (x - x.mean(1, keepdim=True)) / torch.sqrt(var + 1e-5) * w + self.bias[:, None, None]


class LayerNorm(nn.Module):
    def __init__(self, channels: int, layer_norm_type: str):
        super().__init__()
        self.body = NormBody(channels, with_bias=layer_norm_type != "BiasFree")

    def forward(self, x):
        return self.body(x)


class Attention(nn.Module):
    """MDTA: attention across channels (per head), q and k L2-normalised over pixels, learned temperature."""

    def __init__(self, dim: int, num_heads: int, bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = (t.reshape(b, self.num_heads, c // self.num_heads, h * w)
                   for t in self.qkv_dwconv(self.qkv(x)).chunk(3, 1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = ((q @ k.transpose(-2, -1)) * self.temperature).softmax(-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class FeedForward(nn.Module):
    """GDFN: depthwise-conv'd expansion split in two, GELU(one) * other."""

    def __init__(self, dim: int, ffn_expansion_factor: float, bias: bool):
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x):
        gate, value = self.dwconv(self.project_in(x)).chunk(2, 1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, ffn_expansion_factor: float, bias: bool, layer_norm_type: str):
        super().__init__()
        self.norm1 = LayerNorm(dim, layer_norm_type)
        self.attn = Attention(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, layer_norm_type)
        self.ffn = FeedForward(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)

    def forward(self, x):
        return self.proj(x)


class Resample(nn.Module):
    """3x3 conv then pixel-unshuffle (down: half the channels, x4 by unshuffle) or pixel-shuffle (up)."""

    def __init__(self, channels: int, up: bool):
        super().__init__()
        out = 2 * channels if up else channels // 2
        shuffle = nn.PixelShuffle(2) if up else nn.PixelUnshuffle(2)
        self.body = nn.Sequential(nn.Conv2d(channels, out, 3, padding=1, bias=False), shuffle)

    def forward(self, x):
        return self.body(x)


class Restormer(nn.Module):
    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, use_bias=False, layer_norm_type="WithBias",
                 dual_pixel_task=False):
        super().__init__()
        if layer_norm_type not in LAYER_NORM_TYPES:
            raise ValueError(f"layer_norm_type must be one of {LAYER_NORM_TYPES}, got {layer_norm_type!r}")
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ValueError(f"num_blocks and heads need 4 entries (3 levels + latent), got {num_blocks}, {heads}")

        def stage(width, count, num_heads):
            return nn.Sequential(*[TransformerBlock(width, num_heads, ffn_expansion_factor, use_bias, layer_norm_type)
                                   for _ in range(count)])

        d1, d2, d3, d4 = dim, 2 * dim, 4 * dim, 8 * dim
        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = stage(d1, num_blocks[0], heads[0])
        self.down1_2 = Resample(d1, up=False)
        self.encoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.down2_3 = Resample(d2, up=False)
        self.encoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.down3_4 = Resample(d3, up=False)
        self.latent = stage(d4, num_blocks[3], heads[3])
        self.up4_3 = Resample(d4, up=True)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, 1, bias=use_bias)
        self.decoder_level3 = stage(d3, num_blocks[2], heads[2])
        self.up3_2 = Resample(d3, up=True)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, 1, bias=use_bias)
        self.decoder_level2 = stage(d2, num_blocks[1], heads[1])
        self.up2_1 = Resample(d2, up=True)
        # Level 1 decodes at twice the width (skip concatenated, not reduced).
        self.decoder_level1 = stage(d2, num_blocks[0], heads[0])
        self.refinement = stage(d2, num_refinement_blocks, heads[0])
        self.dual_pixel_task = dual_pixel_task
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(d1, d2, 1, bias=use_bias)
        self.output = nn.Conv2d(d2, out_channels, 3, padding=1, bias=use_bias)

    def forward(self, inp):
        embedded = self.patch_embed(inp)
        enc1 = self.encoder_level1(embedded)
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self.latent(self.down3_4(enc3))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], 1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self.refinement(self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1)))
        if self.dual_pixel_task:
            return self.output(x + self.skip_conv(embedded))
        return self.output(x) + inp


def build_restormer(inp_channels: int = 3, out_channels: int = 3, dim: int = 48,
                    num_blocks: Sequence[int] = (4, 6, 6, 8), num_refinement_blocks: int = 4,
                    heads: Sequence[int] = (1, 2, 4, 8), ffn_expansion_factor: float = 2.66, use_bias: bool = False,
                    layer_norm_type: str = "WithBias", dual_pixel_task: bool = False) -> Restormer:
    return Restormer(inp_channels, out_channels, dim, tuple(num_blocks), num_refinement_blocks, tuple(heads),
                     ffn_expansion_factor, use_bias, layer_norm_type, dual_pixel_task)
