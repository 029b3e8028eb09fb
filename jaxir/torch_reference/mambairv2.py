"""MambaIRv2 (and MambaIRv2Light) in PyTorch, state-dict compatible with csguoh/MambaIR
(basicsr/archs/mambairv2_arch.py, mambairv2light_arch.py), written for jaxir.

Deterministic as jaxir's port: tokens are routed by argmax (the official draws hard
Gumbel-softmax noise even in eval) and sorted stably; the selective scan is the
sequential reference (`jaxir.torch_reference.selective_scan`). With those two
choices patched into the official code the two agree to 1e-6 on the golden weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.selective_scan import selective_scan_ref

RGB_MEAN = (0.4488, 0.4371, 0.4040)


def window_partition(x, w):
    b, h, wd, c = x.shape
    return x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, c)


def window_reverse(windows, w, h, wd):
    b = windows.shape[0] // ((h // w) * (wd // w))
    return windows.view(b, h // w, wd // w, w, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, h, wd, -1)


def relative_position_index(w):
    coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def shifted_mask(h, wd, w):
    s = w // 2
    img = torch.zeros(1, h, wd, 1)
    bounds = (slice(0, -w), slice(-w, -s), slice(-s, None))
    for i, hs in enumerate(bounds):
        for j, ws in enumerate(bounds):
            img[:, hs, ws, :] = 3 * i + j
    m = window_partition(img, w).view(-1, w * w)
    diff = m[:, None, :] - m[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class WindowAttention(nn.Module):
    def __init__(self, dim, window, heads):
        super().__init__()
        self.window, self.heads = window, heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.proj = nn.Linear(dim, dim)

    def forward(self, qkv, mask=None):
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[relative_position_index(self.window).view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1)[None]
        if mask is not None:
            nw = mask.shape[0]
            attn = (attn.view(b // nw, nw, self.heads, n, n) + mask[None, :, None]).view(-1, self.heads, n, n)
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class DWConv(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.depthwise_conv = nn.Sequential(nn.Conv2d(c, c, k, 1, (k - 1) // 2, groups=c), nn.GELU())

    def forward(self, x):  # NHWC
        return self.depthwise_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ConvFFN(nn.Module):
    def __init__(self, dim, hidden, k):
        super().__init__()
        self.fc1, self.dwconv, self.fc2 = nn.Linear(dim, hidden), DWConv(hidden, k), nn.Linear(hidden, dim)

    def forward(self, x):
        x = F.gelu(self.fc1(x))
        return self.fc2(x + self.dwconv(x))


class Gate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.conv = nn.LayerNorm(c), nn.Conv2d(c, c, 5, 1, 2, groups=c)

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=-1)
        return x1 * self.conv(self.norm(x2).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class GatedMLP(nn.Module):
    def __init__(self, dim, hidden, k=None):
        super().__init__()
        self.fc1, self.sg, self.fc2 = nn.Linear(dim, hidden), Gate(hidden // 2), nn.Linear(hidden // 2, dim)

    def forward(self, x):
        return self.fc2(self.sg(F.gelu(self.fc1(x))))


class SelectiveScan(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        r = math.ceil(d / 16)
        self.r, self.n = r, n
        self.x_proj_weight = nn.Parameter(torch.randn(1, r + 2 * n, d) * d ** -0.5)
        self.dt_projs_weight = nn.Parameter(torch.randn(1, d, r) * r ** -0.5)
        self.dt_projs_bias = nn.Parameter(torch.zeros(1, d))
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, n + 1).float()).repeat(d, 1))
        self.Ds = nn.Parameter(torch.ones(d))

    def forward(self, x, prompt):  # x (B, L, D), prompt (B, L, N) in token order
        xs = x.transpose(1, 2)[:, None]
        dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, bs, cs = torch.split(dbl, [self.r, self.n, self.n], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        y = selective_scan_ref(xs[:, 0], dts[:, 0], -torch.exp(self.A_logs), bs, cs + prompt.transpose(1, 2)[:, None],
                               self.Ds, delta_bias=self.dt_projs_bias.view(-1), delta_softplus=True)
        return y.transpose(1, 2)


class ASSM(nn.Module):
    def __init__(self, dim, d_state, num_tokens, inner_rank, mlp_ratio):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.selectiveScan = SelectiveScan(hidden, d_state)
        self.out_norm, self.out_proj = nn.LayerNorm(hidden), nn.Linear(hidden, dim)
        self.in_proj = nn.Sequential(nn.Conv2d(dim, hidden, 1))
        self.CPE = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden))
        self.embeddingB = nn.Embedding(num_tokens, inner_rank)
        self.route = nn.Sequential(nn.Linear(dim, dim // 3), nn.GELU(), nn.Linear(dim // 3, num_tokens),
                                   nn.LogSoftmax(dim=-1))

    def forward(self, x, token_weight):  # NHWC
        b, h, w, c = x.shape
        tokens = x.reshape(b, h * w, c)
        index = self.route(tokens).argmax(-1)
        prompt = (self.embeddingB.weight @ token_weight)[index]
        order = torch.sort(index, dim=-1, stable=True)[1]
        y = self.in_proj(x.permute(0, 3, 1, 2))
        y = (y * torch.sigmoid(self.CPE(y))).flatten(2).transpose(1, 2)
        y = torch.gather(y, 1, order[..., None].expand_as(y))
        y = self.out_proj(self.out_norm(self.selectiveScan(y, prompt)))
        out = torch.empty_like(y).scatter_(1, order[..., None].expand_as(y), y)
        return out.view(b, h, w, c)


class AttentiveLayer(nn.Module):
    def __init__(self, dim, d_state, heads, window, shift, inner_rank, num_tokens, k, mlp_ratio, gated):
        super().__init__()
        self.window, self.shift = window, shift
        for i in range(1, 5):
            setattr(self, f"norm{i}", nn.LayerNorm(dim))
        self.scale1 = nn.Parameter(1e-4 * torch.ones(dim))
        self.scale2 = nn.Parameter(1e-4 * torch.ones(dim))
        self.wqkv = nn.Linear(dim, 3 * dim)
        self.win_mhsa = WindowAttention(dim, window, heads)
        self.assm = ASSM(dim, d_state, num_tokens, inner_rank, mlp_ratio)
        ffn = GatedMLP if gated else ConvFFN
        self.convffn1 = ffn(dim, int(dim * mlp_ratio), k)
        self.convffn2 = ffn(dim, int(dim * mlp_ratio), k)
        self.embeddingA = nn.Embedding(inner_rank, d_state)

    def forward(self, x):  # NHWC
        b, h, w, c = x.shape
        shortcut = x
        qkv = self.wqkv(self.norm1(x))
        mask = None
        if self.shift:
            qkv = torch.roll(qkv, (-self.shift, -self.shift), (1, 2))
            mask = shifted_mask(h, w, self.window)
        win = window_partition(qkv, self.window).view(-1, self.window ** 2, 3 * c)
        attn = window_reverse(self.win_mhsa(win, mask).view(-1, self.window, self.window, c), self.window, h, w)
        if self.shift:
            attn = torch.roll(attn, (self.shift, self.shift), (1, 2))
        x_win = attn + shortcut
        x_win = self.convffn1(self.norm2(x_win)) + x_win
        x = shortcut * self.scale1 + x_win
        shortcut = x
        x_aca = self.assm(self.norm3(x), self.embeddingA.weight) + x
        x = x_aca + self.convffn2(self.norm4(x_aca))
        return shortcut * self.scale2 + x


class ResidualGroup(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)


class ASSB(nn.Module):
    def __init__(self, dim, depth, **kw):
        super().__init__()
        window = kw["window"]
        self.residual_group = ResidualGroup(
            [AttentiveLayer(dim, shift=0 if i % 2 == 0 else window // 2, **kw) for i in range(depth)])
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x):
        y = x
        for layer in self.residual_group.layers:
            y = layer(y)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class PatchNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class MambaIRv2(nn.Module):
    def __init__(self, upscale=2, in_chans=3, embed_dim=48, d_state=8, depths=(6, 6, 6, 6), num_heads=(4, 4, 4, 4),
                 window_size=16, inner_rank=32, num_tokens=64, convffn_kernel_size=5, mlp_ratio=2.0, img_range=1.0,
                 upsampler="", gated_mlp=False, **_):
        super().__init__()
        self.upscale, self.upsampler, self.img_range, self.window = upscale, upsampler, img_range, window_size
        self.register_buffer("mean", torch.tensor(RGB_MEAN if in_chans == 3 else (0.0,) * in_chans).view(1, -1, 1, 1),
                             persistent=False)
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchNorm(embed_dim)
        kw = dict(d_state=d_state, window=window_size, inner_rank=inner_rank, num_tokens=num_tokens,
                  k=convffn_kernel_size, mlp_ratio=mlp_ratio, gated=gated_mlp)
        self.layers = nn.ModuleList([ASSB(embed_dim, d, heads=h, **kw) for d, h in zip(depths, num_heads)])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, 64, 3, 1, 1), nn.LeakyReLU(inplace=True))
            m = []
            if upscale & (upscale - 1) == 0:
                for _ in range(int(math.log2(upscale))):
                    m += [nn.Conv2d(64, 256, 3, 1, 1), nn.PixelShuffle(2)]
            else:
                m += [nn.Conv2d(64, 9 * 64, 3, 1, 1), nn.PixelShuffle(3)]
            self.upsample = nn.Sequential(*m)
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, upscale ** 2 * in_chans, 3, 1, 1),
                                          nn.PixelShuffle(upscale))
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)

    def forward(self, x):
        h0, w0 = x.shape[-2:]
        h, w = -(-h0 // self.window) * self.window, -(-w0 // self.window) * self.window
        x = torch.cat([x, torch.flip(x, [2])], 2)[:, :, :h]
        x = torch.cat([x, torch.flip(x, [3])], 3)[:, :, :, :w]
        x = (x - self.mean) * self.img_range
        first = self.conv_first(x)
        f = self.patch_embed.norm(first.permute(0, 2, 3, 1))
        for layer in self.layers:
            f = layer(f)
        res = self.conv_after_body(self.norm(f).permute(0, 3, 1, 2)) + first
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(res)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(res)
        else:
            out = x + self.conv_last(res)
        out = out / self.img_range + self.mean
        scale = self.upscale if self.upsampler else 1
        return out[..., :h0 * scale, :w0 * scale]


def build_mambairv2(**kwargs):
    return MambaIRv2(**kwargs)


def build_mambairv2_light(**kwargs):
    return MambaIRv2(**{**kwargs, "gated_mlp": True})
