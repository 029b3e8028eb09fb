"""Stripformer in PyTorch, state-dict compatible with pp00704831/Stripformer-ECCV-2022- (models/Stripformer.py).

The strip-attention blocks and the encoder are also P2IKT's backbone (the P2IKT
reference imports them).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

IMG_CHANNELS = 3


def lrelu(x):
    return F.leaky_relu(x, 0.2)


def conv_lrelu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, transpose: bool = False):
    conv = (nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1) if transpose else
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2))
    return nn.Sequential(conv, nn.LeakyReLU(0.2))


def conv_pair(channels: int, in_channels: int | None = None, first_kernel: int = 3):
    """conv, LeakyReLU, 3x3 conv: the body of the residual units."""
    return nn.Sequential(nn.Conv2d(in_channels or channels, channels, first_kernel, padding=first_kernel // 2),
                         nn.LeakyReLU(0.2), nn.Conv2d(channels, channels, 3, padding=1))


class Encoder(nn.Module):
    """channels (c1, c2, c3): three residual units at full size (c1) and at 1/2 (c2), then c3 at 1/4.
    forward -> (features at 1/4, skip at full size, skip at 1/2)."""

    def __init__(self, channels: Sequence[int]):
        super().__init__()
        c1, c2, c3 = channels
        self.en_layer1_1 = conv_lrelu(IMG_CHANNELS, c1)
        self.en_layer1_2, self.en_layer1_3, self.en_layer1_4 = conv_pair(c1), conv_pair(c1), conv_pair(c1)
        self.en_layer2_1 = conv_lrelu(c1, c2, stride=2)
        self.en_layer2_2, self.en_layer2_3, self.en_layer2_4 = conv_pair(c2), conv_pair(c2), conv_pair(c2)
        self.en_layer3_1 = conv_lrelu(c2, c3, stride=2)

    def forward(self, x):
        x = self.en_layer1_1(x)
        for unit in (self.en_layer1_2, self.en_layer1_3, self.en_layer1_4):
            x = lrelu(unit(x) + x)
        skip_1 = x
        x = self.en_layer2_1(x)
        for unit in (self.en_layer2_2, self.en_layer2_3, self.en_layer2_4):
            x = lrelu(unit(x) + x)
        return self.en_layer3_1(x), skip_1, x


def multi_head_attention(q, k, v, heads: int):
    """softmax(q k^T / sqrt(d)) v on (B, N, D) tokens, heads cut from D."""
    b, n, dim = q.shape
    if dim % heads:
        raise ValueError(f"attention features {dim} are not divisible by {heads} heads")
    split = lambda t: t.reshape(b, n, heads, dim // heads).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    probs = (q @ k.transpose(-1, -2) / math.sqrt(dim // heads)).softmax(-1)
    return (probs @ v).transpose(1, 2).reshape(b, n, dim)


def attend_both(horizontal, vertical, heads: int):
    """Attention over two (q, k, v) token sets; one batched call when their shapes agree (square maps)."""
    if horizontal[0].shape == vertical[0].shape:
        out = multi_head_attention(*(torch.cat(pair, 0) for pair in zip(horizontal, vertical)), heads)
        return out.chunk(2, 0)
    return multi_head_attention(*horizontal, heads), multi_head_attention(*vertical, heads)


class Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class PEG(nn.Module):
    """Conditional position encoding: x + depthwise 3x3 conv(x)."""

    def __init__(self, dim: int):
        super().__init__()
        self.PEG = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x):
        return self.PEG(x) + x


class StripBlock(nn.Module):
    """Shared frame of the intra/inter strip blocks: token LayerNorm, 1x1 conv split into a horizontal and a
    vertical half, attention (the subclass's `attend`), 1x1 fuse + residual, token MLP + residual, PEG."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attention_norm = nn.LayerNorm(dim)
        self.conv_input = nn.Conv2d(dim, dim, 1)
        self.fuse_out = nn.Conv2d(dim, dim, 1)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = Mlp(dim)
        self.PEG = PEG(dim)

    def forward(self, x):
        b, c, h, w = x.shape
        normed = self.attention_norm(x.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(b, c, h, w)
        half_h, half_v = self.conv_input(normed).chunk(2, 1)
        x = self.fuse_out(torch.cat(self.attend(half_h, half_v), 1)) + x
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.ffn(self.ffn_norm(tokens))
        return self.PEG(tokens.transpose(1, 2).reshape(b, c, h, w))


class IntraStripBlock(StripBlock):
    """Official `Intra_SA`: pixels of each row (horizontal half) / column (vertical half) attend to each other."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.qkv_local_h = nn.Linear(dim // 2, 3 * (dim // 2))
        self.qkv_local_v = nn.Linear(dim // 2, 3 * (dim // 2))

    def attend(self, half_h, half_v):
        b, c, h, w = half_h.shape
        rows = self.qkv_local_h(half_h.permute(0, 2, 3, 1).reshape(b * h, w, c)).chunk(3, -1)
        cols = self.qkv_local_v(half_v.permute(0, 3, 2, 1).reshape(b * w, h, c)).chunk(3, -1)
        out_h, out_v = attend_both(rows, cols, self.heads)
        return out_h.reshape(b, h, w, c).permute(0, 3, 1, 2), out_v.reshape(b, w, h, c).permute(0, 3, 2, 1)


class InterStripBlock(StripBlock):
    """Official `Inter_SA`: whole rows (horizontal half) / columns (vertical half) are the tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__(dim, heads)
        self.conv_h = nn.Conv2d(dim // 2, 3 * (dim // 2), 1)
        self.conv_v = nn.Conv2d(dim // 2, 3 * (dim // 2), 1)

    def attend(self, half_h, half_v):
        b, c, h, w = half_h.shape
        rows = [t.permute(0, 2, 1, 3).reshape(b, h, c * w) for t in self.conv_h(half_h).chunk(3, 1)]
        cols = [t.permute(0, 3, 1, 2).reshape(b, w, c * h) for t in self.conv_v(half_v).chunk(3, 1)]
        out_h, out_v = attend_both(rows, cols, self.heads)
        return out_h.reshape(b, h, c, w).permute(0, 2, 1, 3), out_v.reshape(b, w, c, h).permute(0, 2, 3, 1)


def alternating_strip_blocks(dim: int, heads: int, count: int) -> list[nn.Module]:
    return [(IntraStripBlock if i % 2 == 0 else InterStripBlock)(dim, heads) for i in range(count)]


class Decoder(nn.Module):
    """Up to 1/2 size, six strip blocks at decoder_dim, up to full size, two residual units, 3x3 conv to RGB."""

    def __init__(self, channels: Sequence[int], decoder_dim: int, decoder_heads: int):
        super().__init__()
        c1, c2, c3 = channels
        self.de_layer3_1 = conv_lrelu(c3, decoder_dim, transpose=True)
        self.de_layer2_2 = conv_lrelu(decoder_dim + c2, decoder_dim, kernel_size=1)
        for i, block in enumerate(alternating_strip_blocks(decoder_dim, decoder_heads, 6), start=1):
            setattr(self, f"de_block_{i}", block)
        self.de_layer2_1 = conv_lrelu(decoder_dim, c1, transpose=True)
        self.de_layer1_3 = conv_pair(c1, in_channels=2 * c1, first_kernel=1)
        self.de_layer1_2 = conv_pair(c1)
        self.de_layer1_1 = conv_lrelu(c1, IMG_CHANNELS)

    def forward(self, x, skip_1, skip_2):
        x = self.de_layer2_2(torch.cat([self.de_layer3_1(x), skip_2], 1))
        for i in range(1, 7):
            x = getattr(self, f"de_block_{i}")(x)
        x = self.de_layer2_1(x)
        x = lrelu(self.de_layer1_3(torch.cat([x, skip_1], 1)) + x)
        x = lrelu(self.de_layer1_2(x) + x)
        return self.de_layer1_1(x)


class Stripformer(nn.Module):
    """Returns decoder(x - input_offset) + x. The official class is input_offset=0; its scripts feed
    [-0.5, 0.5] images and add 0.5 back, which input_offset=0.5 does around [0, 1] images."""

    def __init__(self, channels: Sequence[int] = (64, 128, 320), decoder_dim: int = 192, heads: int = 5,
                 decoder_heads: int = 3, input_offset: float = 0.0):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels needs 3 widths (full, 1/2, 1/4 resolution), got {channels}")
        self.input_offset = input_offset
        self.encoder = Encoder(channels)
        for i, block in enumerate(alternating_strip_blocks(channels[2], heads, 12), start=1):
            setattr(self, f"Trans_block_{i}", block)
        self.decoder = Decoder(channels, decoder_dim, decoder_heads)

    def forward(self, inp):
        x = inp - self.input_offset
        hx, skip_1, skip_2 = self.encoder(x)
        for i in range(1, 13):
            hx = getattr(self, f"Trans_block_{i}")(hx)
        return self.decoder(hx, skip_1, skip_2) + x + self.input_offset


def build_stripformer(channels: Sequence[int] = (64, 128, 320), decoder_dim: int = 192, heads: int = 5,
                      decoder_heads: int = 3, input_offset: float = 0.0) -> Stripformer:
    return Stripformer(tuple(int(c) for c in channels), decoder_dim, heads, decoder_heads, input_offset)
