"""MaIR (MaIRUNet and MaIR) in PyTorch, state-dict compatible with XLearning-SCU/2025-CVPR-MaIR
(commit 2fb433ee95de8d93c921196278a1819d8a24f9cd): realDenoising/basicsr/models/archs/mairunet_arch.py
(`MaIRUNet`: deblurring, real denoising, dehazing), basicsr/archs/mair_arch.py (`MaIR`: SR, colour
denoising) and shift_scanf_util.py (the scan orders). Written for jaxir.

The selective scan is the sequential recurrence (`jaxir.torch_reference.selective_scan`), in place
of mamba_ssm's CUDA `selective_scan_fn`. The nested S-shaped scan orders are derived here from their
definition (stripe j of the grid is read bottom to top when j is odd, its odd rows right to left), not
from jaxir's port, which follows the official in-place construction.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.restormer import OverlapPatchEmbed, Resample
from jaxir.torch_reference.selective_scan import selective_scan_ref

RGB_MEAN = (0.4488, 0.4371, 0.4040)


# --- scan orders ---------------------------------------------------------------

def _stripe_order(index: torch.Tensor, scan_len: int, shift: int) -> torch.Tensor:
    """(H, W) index grid -> the flat nested-S reading order."""
    h, w = index.shape
    bounds = ([0, shift] if shift else [0]) + list(range(shift + scan_len, w, scan_len)) + [w]
    pieces = []
    for j, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        stripe = index[:, a:b]
        if j % 2:
            stripe = stripe.flip(0)
        rows = [stripe[p].flip(0) if p % 2 else stripe[p] for p in range(h)]
        pieces.append(torch.cat(rows))
    return torch.cat(pieces)


def scan_orders(h: int, w: int, scan_len: int, shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(order, inverse), each (4, H*W): the image, rotated 180 degrees, transposed, transposed and rotated."""
    index = torch.arange(h * w).view(h, w)
    grids = (index, index.flip(0, 1), index.t(), index.t().flip(0, 1))
    order = torch.stack([_stripe_order(g, scan_len, shift) for g in grids])
    return order, torch.argsort(order, dim=-1)


# --- blocks --------------------------------------------------------------------

class ShuffleAttn(nn.Module):
    """Pool, channel shuffle, grouped 1x1 conv (one group per channel of the four directions), sigmoid."""

    def __init__(self, channels: int, group: int):
        super().__init__()
        self.group = group
        self.gating = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1, groups=group),
                                    nn.Sigmoid())

    def forward(self, x):  # NCHW
        b, c, h, w = x.shape
        x = x.reshape(b, c // self.group, self.group, h, w).transpose(1, 2).reshape(b, c, h, w)
        g = self.gating(x)
        return g.reshape(b, self.group, c // self.group, 1, 1).transpose(1, 2).reshape(b, c, 1, 1)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class NSSMamba(nn.Module):
    """The official LoSh2D / VMM: in_proj, depthwise conv + SiLU, four nested-S selective scans, SSA,
    sum of the directions, LayerNorm, SiLU(z) gate, out_proj."""

    def __init__(self, dim: int, d_state: int, ssm_ratio: float, d_conv: int = 3):
        super().__init__()
        d = int(ssm_ratio * dim)
        r = math.ceil(dim / 16)
        self.d, self.n, self.r = d, d_state, r
        self.in_proj = nn.Linear(dim, 2 * d, bias=False)
        self.conv2d = nn.Conv2d(d, d, d_conv, padding=(d_conv - 1) // 2, groups=d)
        self.x_proj_weight = nn.Parameter(torch.randn(4, r + 2 * d_state, d) * d ** -0.5)
        self.dt_projs_weight = nn.Parameter(torch.empty(4, d, r).uniform_(-r ** -0.5, r ** -0.5))
        dt = torch.exp(torch.rand(4, d) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_logs = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(4 * d, 1))
        self.Ds = nn.Parameter(torch.ones(4 * d))
        self.out_norm = nn.LayerNorm(d)
        self.out_proj = nn.Linear(d, dim, bias=False)
        self.gating = ShuffleAttn(4 * d, d)

    def forward(self, x, orders):  # NHWC
        order, inverse = orders
        b, h, w, _ = x.shape
        length = h * w
        x, z = self.in_proj(x).chunk(2, dim=-1)
        x = F.silu(self.conv2d(x.permute(0, 3, 1, 2))).reshape(b, self.d, length)
        xs = torch.stack([x[..., order[k]] for k in range(4)], dim=1)  # (B, 4, D, L)
        dbl = torch.einsum("bkdl,kcd->bkcl", xs, self.x_proj_weight)
        dts, bs, cs = torch.split(dbl, [self.r, self.n, self.n], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_projs_weight)
        y = selective_scan_ref(xs.reshape(b, -1, length), dts.reshape(b, -1, length), -torch.exp(self.A_logs),
                               bs, cs, self.Ds, delta_bias=self.dt_projs_bias.reshape(-1), delta_softplus=True)
        y = y.view(b, 4, self.d, length)
        y = torch.cat([y[:, k][..., inverse[k]] for k in range(4)], dim=1).view(b, 4 * self.d, h, w)
        y = (y * self.gating(y)).view(b, 4, self.d, h, w).sum(1).permute(0, 2, 3, 1)
        return self.out_proj(self.out_norm(y) * F.silu(z))


class Block(nn.Module):
    """VSSBlock / RMB: x*skip_scale + NSSMamba(LN(x)); x*skip_scale2 + MLP(LN(x)). `mlp_name` is `mlp` in the
    U-Net, `conv_blk` in MaIR."""

    def __init__(self, dim: int, d_state: int, ssm_ratio: float, mlp_ratio: float, shifted: bool = False,
                 mlp_name: str = "mlp"):
        super().__init__()
        self.shifted, self.mlp_name = shifted, mlp_name
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = NSSMamba(dim, d_state, ssm_ratio)
        self.skip_scale = nn.Parameter(torch.ones(dim))
        setattr(self, mlp_name, Mlp(dim, int(dim * mlp_ratio)))
        self.ln_2 = nn.LayerNorm(dim)
        self.skip_scale2 = nn.Parameter(torch.ones(dim))

    def forward(self, x, orders):  # NHWC; orders: (plain, shifted) (order, inverse) pairs
        x = x * self.skip_scale + self.self_attention(self.ln_1(x), orders[1] if self.shifted else orders[0])
        return x * self.skip_scale2 + getattr(self, self.mlp_name)(self.ln_2(x))


def _orders(h: int, w: int, scan_len: int, device):
    return tuple(tuple(t.to(device) for t in scan_orders(h, w, scan_len, s)) for s in (0, scan_len // 2))


# --- MaIRUNet ------------------------------------------------------------------

class MaIRUNet(nn.Module):
    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), ssm_ratio=1.5,
                 num_refinement_blocks=4, use_bias=False, dual_pixel_task=False, flp_ratio=2.0, mlp_ratio=2.0,
                 scan_len=8, **_):
        super().__init__()
        self.scan_len, self.dual_pixel_task = scan_len, dual_pixel_task

        def stage(width, count, d_state, ratio):
            return nn.ModuleList([Block(width, d_state, ssm_ratio, ratio) for _ in range(count)])

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.encoder_level1 = stage(dim, num_blocks[0], 4, flp_ratio)
        self.down1_2 = Resample(dim, up=False)
        self.encoder_level2 = stage(2 * dim, num_blocks[1], 8, mlp_ratio)
        self.down2_3 = Resample(2 * dim, up=False)
        self.encoder_level3 = stage(4 * dim, num_blocks[2], 16, mlp_ratio)
        self.down3_4 = Resample(4 * dim, up=False)
        self.latent = stage(8 * dim, num_blocks[3], 32, mlp_ratio)
        self.up4_3 = Resample(8 * dim, up=True)
        self.reduce_chan_level3 = nn.Conv2d(8 * dim, 4 * dim, 1, bias=use_bias)
        self.decoder_level3 = stage(4 * dim, num_blocks[2], 16, mlp_ratio)
        self.up3_2 = Resample(4 * dim, up=True)
        self.reduce_chan_level2 = nn.Conv2d(4 * dim, 2 * dim, 1, bias=use_bias)
        self.decoder_level2 = stage(2 * dim, num_blocks[1], 8, mlp_ratio)
        self.up2_1 = Resample(2 * dim, up=True)
        # Level 1 keeps 2*dim channels after the concatenation, with level 2's state size.
        self.decoder_level1 = stage(2 * dim, num_blocks[0], 8, mlp_ratio)
        self.refinement = stage(2 * dim, num_refinement_blocks, 8, mlp_ratio)
        if dual_pixel_task:
            self.skip_conv = nn.Conv2d(dim, 2 * dim, 1, bias=use_bias)
        self.output = nn.Conv2d(2 * dim, out_channels, 3, padding=1, bias=use_bias)

    def forward(self, inp):
        h, w = inp.shape[-2:]
        orders = [_orders(h >> i, w >> i, self.scan_len, inp.device) for i in range(4)]

        def run(blocks, x, level):  # NCHW in and out, blocks run NHWC
            x = x.permute(0, 2, 3, 1)
            for blk in blocks:
                x = blk(x, orders[level])
            return x.permute(0, 3, 1, 2)

        embedded = self.patch_embed(inp)
        enc1 = run(self.encoder_level1, embedded, 0)
        enc2 = run(self.encoder_level2, self.down1_2(enc1), 1)
        enc3 = run(self.encoder_level3, self.down2_3(enc2), 2)
        latent = run(self.latent, self.down3_4(enc3), 3)
        x = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], 1))
        x = run(self.decoder_level3, x, 2)
        x = self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1))
        x = run(self.decoder_level2, x, 1)
        x = run(self.decoder_level1, torch.cat([self.up2_1(x), enc1], 1), 0)
        x = run(self.refinement, x, 0)
        if self.dual_pixel_task:
            return self.output(x + self.skip_conv(embedded))
        return self.output(x) + inp


# --- MaIR ------------------------------------------------------------------------

class BlockList(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class RMG(nn.Module):
    """Residual Mamba group: blocks (odd ones on the shifted scan), 3x3 conv, residual."""

    def __init__(self, dim, depth, d_state, ssm_ratio, mlp_ratio):
        super().__init__()
        self.residual_group = BlockList([Block(dim, d_state, ssm_ratio, mlp_ratio, shifted=i % 2 == 1,
                                               mlp_name="conv_blk") for i in range(depth)])
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, x, orders):  # NHWC
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, orders)
        return self.conv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) + x


class PatchNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class MaIR(nn.Module):
    def __init__(self, upscale=2, in_chans=3, embed_dim=60, depths=(6, 6, 6, 6), d_state=16, ssm_ratio=1.5,
                 mlp_ratio=2.0, img_range=1.0, upsampler="pixelshuffledirect", scan_len=8, **_):
        super().__init__()
        self.upscale, self.upsampler, self.img_range, self.scan_len = upscale, upsampler or "", img_range, scan_len
        self.register_buffer("mean", torch.tensor(RGB_MEAN if in_chans == 3 else (0.0,) * in_chans).view(1, -1, 1, 1),
                             persistent=False)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchNorm(embed_dim)
        self.layers = nn.ModuleList([RMG(embed_dim, d, d_state, ssm_ratio, mlp_ratio) for d in depths])
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        if self.upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, 64, 3, 1, 1), nn.LeakyReLU(inplace=True))
            m = []
            if upscale & (upscale - 1) == 0:
                for _ in range(int(math.log2(upscale))):
                    m += [nn.Conv2d(64, 256, 3, 1, 1), nn.PixelShuffle(2)]
            else:
                m += [nn.Conv2d(64, 9 * 64, 3, 1, 1), nn.PixelShuffle(3)]
            self.upsample = nn.Sequential(*m)
            self.conv_last = nn.Conv2d(64, in_chans, 3, 1, 1)
        elif self.upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(nn.Conv2d(embed_dim, upscale ** 2 * in_chans, 3, 1, 1),
                                          nn.PixelShuffle(upscale))
        else:
            self.conv_last = nn.Conv2d(embed_dim, in_chans, 3, 1, 1)

    def forward(self, x):
        orders = _orders(x.shape[-2], x.shape[-1], self.scan_len, x.device)
        x = (x - self.mean) * self.img_range
        first = self.conv_first(x)
        f = self.patch_embed.norm(first.permute(0, 2, 3, 1))
        for layer in self.layers:
            f = layer(f, orders)
        res = self.conv_after_body(self.norm(f).permute(0, 3, 1, 2)) + first
        if self.upsampler == "pixelshuffle":
            out = self.conv_last(self.upsample(self.conv_before_upsample(res)))
        elif self.upsampler == "pixelshuffledirect":
            out = self.upsample(res)
        else:
            out = x + self.conv_last(res)
        return out / self.img_range + self.mean


def build_mair_unet(**kwargs):
    return MaIRUNet(**kwargs)


def build_mair(**kwargs):
    return MaIR(**kwargs)
