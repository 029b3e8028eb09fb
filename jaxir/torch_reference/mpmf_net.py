"""MPMF-Net in PyTorch, state-dict compatible with the official MPMFNet.

Source: chdwyb/MPMF-Net, model.py and INR.py, commit a9c511f9019f90050bc1f31504f0bc7f8f9b724d (class
MPMFNet). Rewritten for jaxir; see jaxir/models/mpmf_net.py for the model. Returns (restored, coarse INR
output) as the official. The INR's local ensemble is computed as the official computes it: four MLP
passes (one per corner), although the four inputs coincide (the JAX port runs the MLP once). The
official's weight initialisation (truncated normals) is not reproduced: weights are loaded.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

INR_HIDDEN = (256, 256, 256)
INR_FREQUENCIES = 4


class RLN(nn.Module):
    """Revised LayerNorm over (C, H, W); also returns 1x1 convs of the std (rescale) and mean (rebias)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)

    def forward(self, x):
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        return (x - mean) / std * self.weight + self.bias, self.meta1(std), self.meta2(mean)


def log_relative_positions(window_size: int) -> torch.Tensor:
    """(N, N, 2) sign(d) * log(1 + |d|) of the row/column offsets between a window's pixels."""
    rows, cols = torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).float()
    return torch.sign(rel) * torch.log1p(rel.abs())


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.dim, self.num_heads = dim, num_heads
        self.register_buffer("relative_positions", log_relative_positions(window_size))
        self.meta = nn.Sequential(nn.Linear(2, 256), nn.ReLU(True), nn.Linear(256, num_heads))

    def forward(self, qkv):
        b, n, _ = qkv.shape
        head_dim = self.dim // self.num_heads
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        bias = self.meta(self.relative_positions).permute(2, 0, 1)
        attn = ((q * head_dim ** -0.5) @ k.transpose(-2, -1) + bias[None]).softmax(-1)
        return (attn @ v).transpose(1, 2).reshape(b, n, self.dim)


class Attention(nn.Module):
    """Window attention on [QK(x), V(x)] (reflect-padded, shifted windows) plus a conv branch on V."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, use_attn: bool,
                 conv_type: str | None):
        super().__init__()
        if conv_type not in ("Conv", "DWConv", None):
            raise ValueError(f"conv_type must be 'Conv', 'DWConv' or None, got {conv_type!r}")
        self.window_size, self.shift_size = window_size, shift_size
        self.use_attn, self.conv_type = use_attn, conv_type
        if conv_type == "Conv":
            self.conv = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, padding_mode="reflect"), nn.ReLU(True),
                                      nn.Conv2d(dim, dim, 3, padding=1, padding_mode="reflect"))
        elif conv_type == "DWConv":
            self.conv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode="reflect")
        if conv_type == "DWConv" or use_attn:
            self.V = nn.Conv2d(dim, dim, 1)
            self.proj = nn.Conv2d(dim, dim, 1)
        if use_attn:
            self.QK = nn.Conv2d(dim, 2 * dim, 1)
            self.attn = WindowAttention(dim, window_size, num_heads)

    def _pad(self, x):
        ws, s = self.window_size, self.shift_size
        mod_h, mod_w = (-x.shape[2]) % ws, (-x.shape[3]) % ws
        if s > 0:
            return F.pad(x, (s, (ws - s + mod_w) % ws, s, (ws - s + mod_h) % ws), mode="reflect")
        return F.pad(x, (0, mod_w, 0, mod_h), mode="reflect")

    def forward(self, x):
        b, c, h, w = x.shape
        if not self.use_attn:
            return self.conv(x) if self.conv_type == "Conv" else self.proj(self.conv(self.V(x)))
        v = self.V(x)
        qkv = self._pad(torch.cat([self.QK(x), v], 1))
        ws, ht, wt = self.window_size, qkv.shape[2], qkv.shape[3]
        windows = qkv.reshape(b, 3 * c, ht // ws, ws, wt // ws, ws).permute(0, 2, 4, 3, 5, 1).reshape(-1, ws * ws,
                                                                                                        3 * c)
        out = self.attn(windows).reshape(b, ht // ws, wt // ws, ws, ws, c).permute(0, 5, 1, 3, 2, 4)
        s = self.shift_size
        out = out.reshape(b, c, ht, wt)[:, :, s:s + h, s:s + w]
        if self.conv_type in ("Conv", "DWConv"):
            out = self.conv(v) + out
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(True), nn.Conv2d(hidden, dim, 1))

    def forward(self, x):
        return self.mlp(x)


class TransformerBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, window_size, shift_size, use_attn, conv_type):
        super().__init__()
        self.use_attn = use_attn
        self.norm1 = RLN(dim) if use_attn else nn.Identity()
        self.attn = Attention(dim, num_heads, window_size, shift_size, use_attn, conv_type)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        if self.use_attn:
            y, rescale, rebias = self.norm1(x)
            x = x + self.attn(y) * rescale + rebias
        else:
            x = x + self.attn(x)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    def __init__(self, dim, depth, num_heads, mlp_ratio, window_size, attn_ratio, conv_type):
        super().__init__()
        attn_depth = attn_ratio * depth  # attention in the last blocks (attn_loc='last', the only one used)
        self.blocks = nn.ModuleList([
            TransformerBlock(dim, num_heads, mlp_ratio, window_size, 0 if i % 2 == 0 else window_size // 2,
                             i >= depth - attn_depth, conv_type) for i in range(depth)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim, kernel_size=None):
        super().__init__()
        k = kernel_size or patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, k, stride=patch_size, padding=(k - patch_size + 1) // 2,
                              padding_mode="reflect")

    def forward(self, x):
        return self.proj(x)


class PatchUnEmbed(nn.Module):
    def __init__(self, patch_size, out_chans, embed_dim, kernel_size=None):
        super().__init__()
        k = kernel_size or 1
        self.proj = nn.Sequential(nn.Conv2d(embed_dim, out_chans * patch_size ** 2, k, padding=k // 2,
                                            padding_mode="reflect"), nn.PixelShuffle(patch_size))

    def forward(self, x):
        return self.proj(x)


class MFIB(nn.Module):
    """Cross attention of decoder (u) and skip (d) features along H, along W and across channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale_h, self.scale_w, self.scale_c = (nn.Parameter(torch.ones(1)) for _ in range(3))
        self.norm_u, self.norm_d = RLN(dim), RLN(dim)
        self.pconv_qkv_u = nn.Conv2d(dim, 2 * dim, 1)
        self.pconv_qkv_d = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, x_u, x_d):
        d_norm, rescale_d, bias_d = self.norm_d(x_d)
        u_norm, rescale_u, bias_u = self.norm_u(x_u)
        q, v_u = self.pconv_qkv_u(u_norm).chunk(2, 1)
        k, v_d = self.pconv_qkv_d(d_norm).chunk(2, 1)
        (q_h, q_w, q_c), (k_h, k_w, k_c) = q.chunk(3, 1), k.chunk(3, 1)
        (vu_h, vu_w, vu_c), (vd_h, vd_w, vd_c) = v_u.chunk(3, 1), v_d.chunk(3, 1)
        # H: per column, one softmax over key rows; its transpose carries u back to d.
        attn_h = (torch.einsum("bciw,bcjw->bwij", q_h, k_h) * self.scale_h).softmax(-1)
        d2u_h = torch.einsum("bwij,bcjw->bciw", attn_h, vd_h)
        u2d_h = torch.einsum("bwij,bciw->bcjw", attn_h, vu_h)
        # W: per row; softmax over keys one way, over queries the other.
        logits_w = torch.einsum("bchi,bchj->bhij", q_w, k_w) * self.scale_w
        d2u_w = torch.einsum("bhij,bchj->bchi", logits_w.softmax(-1), vd_w)
        u2d_w = torch.einsum("bhij,bchi->bchj", logits_w.softmax(-2), vu_w)
        # Channels: the same attention both ways.
        b, c, h, w = q_c.shape
        attn_c = (q_c.reshape(b, c, h * w) @ k_c.reshape(b, c, h * w).transpose(1, 2) * self.scale_c).softmax(-1)
        d2u_c = (attn_c @ vd_c.reshape(b, c, h * w)).reshape(b, c, h, w)
        u2d_c = (attn_c @ vu_c.reshape(b, c, h * w)).reshape(b, c, h, w)
        x_u = torch.cat([d2u_h, d2u_w, d2u_c], 1) * rescale_u + bias_u + x_u
        x_d = torch.cat([u2d_h, u2d_w, u2d_c], 1) * rescale_d + bias_d + x_d
        return x_u + x_d


class MPLB(nn.Module):
    """Learned (H, W), (C, H) and (C, W) prompts, resized to the features, filtered, multiply a third each."""

    def __init__(self, dim: int, size: tuple[int, int]):
        super().__init__()
        pd = dim // 3
        self.hw = nn.Parameter(torch.ones(1, pd, *size))
        self.conv_hw = nn.Conv2d(pd, pd, 3, padding=1, groups=pd, bias=False)
        self.ch = nn.Parameter(torch.ones(1, 1, pd, size[0]))
        self.conv_ch = nn.Conv1d(pd, pd, 3, padding=1, groups=pd, bias=False)
        self.cw = nn.Parameter(torch.ones(1, 1, pd, size[1]))
        self.conv_cw = nn.Conv1d(pd, pd, 3, padding=1, groups=pd, bias=False)
        self.conv_4 = nn.Conv2d(dim, dim, 1)

    def forward(self, x):
        x1, x2, x3 = x.chunk(3, 1)
        c, h, w = x1.shape[1:]
        resize = lambda p, size: F.interpolate(p, size=size, mode="bilinear", align_corners=True)  # noqa: E731
        x1 = x1 * self.conv_hw(resize(self.hw, (h, w)))
        x2 = x2 * self.conv_ch(resize(self.ch, (x2.shape[1], h))[0])[:, :, :, None]  # factor[c, h]
        x3 = x3 * self.conv_cw(resize(self.cw, (x3.shape[1], w))[0])[:, :, None, :]  # factor[c, w]
        return self.conv_4(torch.cat([x1, x2, x3], 1)) + x


def make_coord(h: int, w: int) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1], (H, W, 2) as (row, column)."""
    seqs = [-1 + 1 / n + (2 / n) * torch.arange(n).float() for n in (h, w)]
    return torch.stack(torch.meshgrid(*seqs, indexing="ij"), dim=-1)


def positional_encoding(x, frequencies: int = INR_FREQUENCIES):
    """[sin, cos](x * 2^l * pi): (..., D) -> (..., D * 2 * L) ordered (D, sin/cos, L)."""
    spectrum = x[..., None] * (2 ** torch.arange(frequencies, dtype=torch.float32) * math.pi)
    return torch.stack([spectrum.sin(), spectrum.cos()], dim=-2).reshape(*x.shape[:-1], -1)


class ImNet(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: Sequence[int]):
        super().__init__()
        layers, last = [], in_dim
        for width in hidden:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        self.layers = nn.Sequential(*layers, nn.Linear(last, out_dim))

    def forward(self, x):
        return self.layers(x)


class INR(nn.Module):
    """LIIF-style decoding (3x3 unfolded features, encoded relative coordinates, cell size, local ensemble)
    at the features' own resolution."""

    def __init__(self, dim: int):
        super().__init__()
        self.imnet = ImNet(9 * dim + 2 + 4 * INR_FREQUENCIES + 2, 3, INR_HIDDEN)

    def forward(self, feat):
        b, c, h, w = feat.shape
        q_feat = F.unfold(feat, 3, padding=1).transpose(1, 2)  # (B, HW, 9C)
        with_encoding = lambda t: torch.cat([t, positional_encoding(t)], -1)  # noqa: E731
        query = with_encoding(make_coord(h, w).reshape(-1, 2))  # the output grid
        centres = with_encoding(make_coord(h, w).reshape(-1, 2))  # the feature cells (the same grid here)
        # The official shifts a copy of the query coordinates per corner but decodes from the unshifted
        # ones: every corner sees the same query, so each corner's relative coordinate is the same.
        rel = (query - centres).expand(b, -1, -1).clone()
        rel[:, :, 0] *= h
        rel[:, :, 1] *= w
        cell = torch.ones(b, h * w, 2)
        cell[:, :, 0] *= 2 / h
        cell[:, :, 1] *= 2 / w
        cell[:, :, 0] *= h
        cell[:, :, 1] *= w
        inp = torch.cat([q_feat, rel, cell], -1)
        preds, areas = [], []
        for _ in range(4):  # corners (-1,-1), (-1,1), (1,-1), (1,1)
            preds.append(self.imnet(inp))
            areas.append((rel[:, :, 0] * rel[:, :, 1]).abs() + 1e-9)
        total = torch.stack(areas).sum(0)
        areas = areas[::-1]  # the official swaps corners 0<->3 and 1<->2
        out = sum(pred * (area / total)[..., None] for pred, area in zip(preds, areas))
        return out.transpose(1, 2).reshape(b, -1, h, w)


class MPMFNet(nn.Module):
    def __init__(self, in_chans=3, out_chans=3, window_size=8, embed_dims=(24, 48, 96, 48, 24),
                 mlp_ratios=(2.0, 4.0, 4.0, 2.0, 2.0), depths=(8, 16, 17, 9, 9, 8), num_heads=(2, 4, 6, 1, 1),
                 attn_ratio=(1 / 4, 1 / 2, 3 / 4, 0, 0), conv_type=("DWConv",) * 5):
        super().__init__()
        if embed_dims[1] != embed_dims[3] or embed_dims[0] != embed_dims[4]:
            raise ValueError(f"embed_dims {embed_dims}: need dims[1] == dims[3] and dims[0] == dims[4]")

        def layer(level, depth, dim=None, conv_level=None):
            return BasicLayer(dim or embed_dims[level], depth, num_heads[level], mlp_ratios[level], window_size,
                              attn_ratio[level], conv_type[level if conv_level is None else conv_level])

        d = embed_dims
        self.patch_embed_inr = PatchEmbed(1, in_chans, d[0], 3)
        self.layer_inr = layer(0, depths[0])
        self.inr = INR(d[0])
        self.patch_embed = PatchEmbed(1, 2 * in_chans, d[0], 3)
        self.layer1 = layer(0, depths[0])
        self.patch_merge1 = PatchEmbed(2, d[0], d[1])
        self.skip1 = nn.Conv2d(d[0], d[0], 1)
        self.layer2 = layer(1, depths[1])
        self.patch_merge2 = PatchEmbed(2, d[1], d[2])
        self.skip2 = nn.Conv2d(d[1], d[1], 1)
        self.layer3 = layer(2, depths[2] - 1)
        self.layer3_prompts = MPLB(d[2], (16, 16))
        self.layer3_mixer = layer(2, 1, 2 * d[2])
        self.layer3_reduce_channel = nn.Conv2d(2 * d[2], d[2], 1)
        self.patch_split1 = PatchUnEmbed(2, d[3], d[2])
        self.fusion1 = MFIB(d[3])
        self.layer4 = layer(3, depths[3] - 1)
        self.layer4_prompts = MPLB(d[3], (32, 32))
        self.layer4_last = layer(3, 1, 2 * d[3], conv_level=2)
        self.layer4_reduce_channel = nn.Conv2d(2 * d[3], d[3], 1)
        self.patch_split2 = PatchUnEmbed(2, d[4], d[3])
        self.fusion2 = MFIB(d[4])
        self.layer5 = layer(4, depths[4] - 1)
        self.layer5_prompts = MPLB(d[4], (64, 64))
        self.layer5_last = layer(4, 1, 2 * d[4])
        self.layer5_reduce_channel = nn.Conv2d(2 * d[4], d[4], 1)
        self.refinement = layer(4, depths[5])
        self.patch_unembed = PatchUnEmbed(1, out_chans, d[4], 3)

    def _prompted(self, x, level: int, last: str):
        x = torch.cat([x, getattr(self, f"layer{level}_prompts")(x)], 1)
        return getattr(self, f"layer{level}_reduce_channel")(getattr(self, f"layer{level}_{last}")(x))

    def forward(self, inp):
        x_inr = self.inr(self.layer_inr(self.patch_embed_inr(F.interpolate(inp, scale_factor=0.25))))
        x = self.patch_embed(torch.cat([inp, F.interpolate(x_inr, scale_factor=4)], 1))
        x = skip1 = self.layer1(x)
        x = skip2 = self.layer2(self.patch_merge1(x))
        x = self._prompted(self.layer3(self.patch_merge2(x)), 3, "mixer")
        x = self.layer4(self.fusion1(self.patch_split1(x), self.skip2(skip2)))
        x = self._prompted(x, 4, "last")
        x = self.layer5(self.fusion2(self.patch_split2(x), self.skip1(skip1)))
        x = self.refinement(self._prompted(x, 5, "last"))
        return self.patch_unembed(x) + inp, x_inr


def build_mpmf_net(in_chans: int = 3, out_chans: int = 3, window_size: int = 8,
                   embed_dims: Sequence[int] = (24, 48, 96, 48, 24),
                   mlp_ratios: Sequence[float] = (2.0, 4.0, 4.0, 2.0, 2.0),
                   depths: Sequence[int] = (8, 16, 17, 9, 9, 8), num_heads: Sequence[int] = (2, 4, 6, 1, 1),
                   attn_ratio: Sequence[float] = (1 / 4, 1 / 2, 3 / 4, 0, 0),
                   conv_type: Sequence[str] = ("DWConv",) * 5, dtype=None) -> MPMFNet:
    """The jaxir builder's kwargs (`dtype` is the JAX compute dtype: the reference runs float32)."""
    del dtype
    return MPMFNet(in_chans, out_chans, window_size, tuple(embed_dims), tuple(mlp_ratios), tuple(depths),
                   tuple(num_heads), tuple(attn_ratio), tuple(conv_type))
