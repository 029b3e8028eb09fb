"""PyTorch ADM U-Net equivalent to guided-diffusion's `UNetModel` (as ChongWang1024/RDMD ships it) and
to openai/consistency_models' `cm/unet.py` (qkv split before heads, 2-D 1x1 attention convs), written
for jaxir with the official module names, so the official state dicts load with strict=True.
Takes the jaxir builder kwargs (`jaxir.models.adm_unet.ADMUNet` fields).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1) if dim % 2 else emb


def norm(channels):
    return nn.GroupNorm(32, channels)


class Upsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.use_conv = use_conv
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels or channels, 3, padding=1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.use_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, use_conv, out_channels=None):
        super().__init__()
        self.op = nn.Conv2d(channels, out_channels or channels, 3, stride=2, padding=1) if use_conv \
            else nn.AvgPool2d(2, 2)

    def forward(self, x):
        return self.op(x)


class ResBlock(nn.Module):
    def __init__(self, channels, emb_channels, dropout, out_channels=None, scale_shift=False, up=False, down=False):
        super().__init__()
        out = out_channels or channels
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(norm(channels), nn.SiLU(), nn.Conv2d(channels, out, 3, padding=1))
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out if scale_shift else out))
        self.out_layers = nn.Sequential(norm(out), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(out, out, 3, padding=1))
        self.skip_connection = nn.Identity() if out == channels else nn.Conv2d(channels, out, 1)

    def forward(self, x, emb):
        if self.updown:
            h = self.in_layers[:-1](x)
            h, x = self.h_upd(h), self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        e = self.emb_layers(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_layers[1:](self.out_layers[0](h) * (1 + scale) + shift)
        else:
            h = self.out_layers(h + e)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, channels, num_heads, num_head_channels, qkv_first, conv2d):
        super().__init__()
        self.heads = num_heads if num_head_channels == -1 else channels // num_head_channels
        self.qkv_first = qkv_first
        self.norm = norm(channels)
        conv = nn.Conv2d if conv2d else nn.Conv1d
        self.qkv = conv(channels, 3 * channels, 1)
        self.proj_out = conv(channels, channels, 1)
        self.conv2d = conv2d

    def forward(self, x):
        b, c, h, w = x.shape
        n = self.norm(x)
        qkv = self.qkv(n).reshape(b, 3 * c, h * w) if self.conv2d else self.qkv(n.reshape(b, c, -1))
        d = c // self.heads
        if self.qkv_first:
            q, k, v = (t.reshape(b * self.heads, d, -1) for t in qkv.chunk(3, dim=1))
        else:
            q, k, v = qkv.reshape(b * self.heads, 3 * d, -1).split(d, dim=1)
        if self.conv2d:
            # consistency_models' non-flash QKVAttentionLegacy (the golden's) computes in float16.
            q, k, v = q.half(), k.half(), v.half()
            scale = 1 / math.sqrt(math.sqrt(d))
            weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
            a = torch.einsum("bts,bcs->bct", weight, v).float().reshape(b, c, -1)
        else:
            weight = torch.softmax(torch.einsum("bct,bcs->bts", q, k) / math.sqrt(d), dim=-1)
            a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1)
        out = self.proj_out(a.reshape(b, c, h, w)) if self.conv2d else self.proj_out(a).reshape(b, c, h, w)
        return x + out


class Sequential(nn.ModuleList):
    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    def __init__(self, in_channels=3, model_channels=128, out_channels=6, num_res_blocks=2,
                 attention_resolutions=(16,), dropout=0.0, channel_mult=(1, 2, 4, 8), conv_resample=True,
                 num_classes=None, num_heads=1, num_head_channels=-1, num_heads_upsample=-1,
                 use_scale_shift_norm=False, resblock_updown=False, qkv_order="heads_first", conv2d_attention=False):
        super().__init__()
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample
        self.model_channels = model_channels
        emb = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.num_classes = num_classes
        if num_classes is not None:
            self.label_emb = nn.Embedding(num_classes, emb)
        attn = lambda ch, heads: AttentionBlock(ch, heads, num_head_channels, qkv_order == "qkv_first",
                                                conv2d_attention)
        res = lambda cin, cout, **kw: ResBlock(cin, emb, dropout, cout, use_scale_shift_norm, **kw)
        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([Sequential([nn.Conv2d(in_channels, ch, 3, padding=1)])])
        chans, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_resolutions:
                    layers.append(attn(ch, num_heads))
                self.input_blocks.append(Sequential(layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(Sequential([res(ch, ch, down=True) if resblock_updown
                                                     else Downsample(ch, conv_resample)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = Sequential([res(ch, ch), attn(ch, num_heads), res(ch, ch)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [res(ch + chans.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_resolutions:
                    layers.append(attn(ch, heads_up))
                if level and i == num_res_blocks:
                    layers.append(res(ch, ch, up=True) if resblock_updown else Upsample(ch, conv_resample))
                    ds //= 2
                self.output_blocks.append(Sequential(layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, out_channels, 3, padding=1))

    def forward(self, x, timesteps, y=None):
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        if self.num_classes is not None:
            emb = emb + self.label_emb(y)
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


def build_adm_unet(**kwargs):
    kwargs.pop("dtype", None)
    return ADMUNet(**kwargs)


def build_cm_unet(**kwargs):
    kwargs.pop("dtype", None)
    kwargs.setdefault("qkv_order", "qkv_first")
    return ADMUNet(conv2d_attention=True, **kwargs)
