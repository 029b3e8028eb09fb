"""P2IKT in PyTorch, state-dict compatible with TPZZZ/P2IKT (model/P2IKT.py, P2IKT_model).

Unlike the official code this runs on any device: the fixed inverse-Gaussian
kernel bank is computed with numpy and kept as a non-persistent buffer (the
official keeps it as a plain CUDA tensor attribute, so it is not in the state
dict either), and the per-sample adaptive kernels run as one grouped conv.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jaxir.torch_reference.stripformer import Encoder, alternating_strip_blocks, conv_lrelu, conv_pair, lrelu

IMG_CHANNELS = 3  # hard-coded throughout the official network
BACKBONE_WIDTH = 64
TRANSFORMER_WIDTH = 160
HEADS = 4
WIENER_NOISE = 0.01


def inverse_gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """|ifft2(conj(K) / (|K|^2 + 0.01))| of a normalised size x size Gaussian K (a Wiener inverse)."""
    offsets = np.arange(size) - size // 2
    # The official normalises and takes the outer product in float32, then transforms in float64.
    gauss = np.exp(-(offsets.astype(np.float64) ** 2) / (2 * sigma ** 2)).astype(np.float32)
    gauss = torch.from_numpy(gauss)
    kernel = torch.outer(gauss / gauss.sum(), gauss / gauss.sum()).numpy()
    spectrum = np.fft.fft2(kernel)
    return np.abs(np.fft.ifft2(np.conj(spectrum) / (np.abs(spectrum) ** 2 + WIENER_NOISE)))


def inverse_gaussian_bank(num_kernels: int, max_size: int, channels: int = IMG_CHANNELS) -> torch.Tensor:
    """(channels * (num_kernels + 1), 1, max_size, max_size): identity then num_kernels inverse kernels
    (sigma 0.25 * (i + 1), size 3 growing by 2 after every second kernel from the third), centred in
    max_size, each repeated `channels` times in a row."""
    bank = np.zeros((num_kernels + 1, max_size, max_size), np.float32)
    centre = max_size // 2
    bank[0, centre, centre] = 1.0
    size = 3
    for i in range(num_kernels):
        offset = (max_size - size) // 2
        bank[i + 1, offset:offset + size, offset:offset + size] = inverse_gaussian_kernel(size, 0.25 * (i + 1))
        if i >= 2 and i % 2 == 0 and size < max_size:
            size += 2
    return torch.from_numpy(np.repeat(bank[:, None], channels, axis=0))


class BasicConv1(nn.Module):
    """The official `BasicConv1` as P2IKT uses it: a 'same' 3x3 conv under `main`."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1))

    def forward(self, x):
        return self.main(x)


class Predictor(nn.Module):
    """Predicts a (3, k, k) kernel per image; the softmax runs over the k*k channel axis (the official
    `nn.Softmax()` without dim picks dim 1 for 4-D input)."""

    def __init__(self, num_kernels: int, width: int = 128):
        super().__init__()
        taps = num_kernels * num_kernels
        self.num_kernels = num_kernels
        self.ConvNet = nn.Sequential(
            nn.Conv2d(IMG_CHANNELS, width, 11, padding=2), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d((3, 3)),
            nn.Conv2d(width, taps, 1, bias=False), nn.LeakyReLU(0.2), nn.AdaptiveAvgPool2d((3, 1)),
            nn.Conv2d(taps, taps, 1, bias=False), nn.Softmax(dim=1))

    def forward(self, x):
        # (B, k*k, 3, 1) read in memory order as (B, 3, k, k), as the official view does.
        return self.ConvNet(x).reshape(-1, IMG_CHANNELS, self.num_kernels, self.num_kernels)


class GCM(nn.Module):
    """Fixed inverse-Gaussian filtering plus one predicted kernel per image, fused; and a 3x3 auxiliary output."""

    def __init__(self, num_kernels: int, max_kernel_size: int):
        super().__init__()
        bank_channels = (num_kernels + 1) * IMG_CHANNELS
        self.register_buffer("weight", inverse_gaussian_bank(num_kernels, max_kernel_size), persistent=False)
        self.padding = (num_kernels - 1) // 2
        self.adaption_conv = Predictor(num_kernels)
        self.transform_conv = BasicConv1(IMG_CHANNELS, bank_channels)
        self.fuse_conv = BasicConv1(2 * bank_channels, bank_channels)
        self.Convsout = BasicConv1(IMG_CHANNELS, IMG_CHANNELS)

    def forward(self, x):
        n, c, h, w = x.shape
        fixed = F.conv2d(x, self.weight, padding=self.padding, groups=c)
        kernels = self.adaption_conv(x)
        # Each image's (3, k, k) kernel makes one output channel, broadcast to all channels.
        adaptive = F.conv2d(x.reshape(1, n * c, h, w), kernels, padding=self.padding, groups=n)
        adaptive = adaptive.reshape(n, 1, h, w).expand(n, c, h, w)
        return self.fuse_conv(torch.cat([fixed, self.transform_conv(adaptive)], 1)), self.Convsout(x)


class Decoder(nn.Module):
    """The official `Embeddings_output`: residual units at 1/2 and full size, 64 channels out."""

    def __init__(self):
        super().__init__()
        c = BACKBONE_WIDTH
        self.de_layer3_1 = conv_lrelu(TRANSFORMER_WIDTH, c, transpose=True)
        self.de_layer2_2 = conv_lrelu(2 * c, c, kernel_size=1)
        self.de_block_1, self.de_block_2, self.de_block_3, self.de_block_4 = (conv_pair(c) for _ in range(4))
        self.de_layer2_1 = conv_lrelu(c, c, transpose=True)
        self.de_layer1_1 = conv_pair(c, in_channels=2 * c, first_kernel=1)
        self.de_layer1_2, self.de_layer1_3, self.de_layer1_4 = conv_pair(c), conv_pair(c), conv_pair(c)

    def forward(self, x, skip_1, skip_2):
        x = self.de_layer2_2(torch.cat([self.de_layer3_1(x), skip_2], 1))
        for unit in (self.de_block_1, self.de_block_2, self.de_block_3, self.de_block_4):
            x = lrelu(unit(x) + x)
        x = self.de_layer2_1(x)
        x = lrelu(self.de_layer1_1(torch.cat([x, skip_1], 1)) + x)
        for unit in (self.de_layer1_2, self.de_layer1_3, self.de_layer1_4):
            x = lrelu(unit(x) + x)
        return x


class Backbone(nn.Module):
    """The feature backbone: encoder, three intra/inter strip-attention pairs at 1/4 size, decoder."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder((BACKBONE_WIDTH, BACKBONE_WIDTH, TRANSFORMER_WIDTH))
        for i, block in enumerate(alternating_strip_blocks(TRANSFORMER_WIDTH, HEADS, 6), start=1):
            setattr(self, f"Trans_block_{i}", block)
        self.decoder = Decoder()

    def forward(self, x):
        x, skip_1, skip_2 = self.encoder(x)
        for i in range(1, 7):
            x = getattr(self, f"Trans_block_{i}")(x)
        return self.decoder(x, skip_1, skip_2)


class ConvBNReLU(nn.Module):

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                                  nn.ReLU())

    def forward(self, x):
        return self.conv(x)


class ConvLSTMCell(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 5):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=(kernel_size - 1) // 2)

    def forward(self, x, state):
        hidden, cell = state
        in_gate, forget_gate, out_gate, candidate = self.conv(torch.cat([x, hidden], 1)).split(self.hidden_channels, 1)
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(candidate)
        return torch.sigmoid(out_gate) * torch.tanh(cell), cell


class SqueezeAttentionBlock(nn.Module):
    """APU: per-pixel weights in (-1, 1) for the filtered images, with a ConvLSTM state at half size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels)
        self.conv_atten = ConvLSTMCell(in_channels, out_channels, 5)

    def forward(self, x, state):
        hidden, cell = self.conv_atten(F.avg_pool2d(x, 2), state)
        up = F.interpolate(hidden, scale_factor=2)  # nearest
        return torch.sigmoid(up * self.conv(x) + up) * 2 - 1, hidden, cell


class SumLayer(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, IMG_CHANNELS, 1)

    def forward(self, x):
        return self.conv(x)


def upsample(x):
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class P2IKT(nn.Module):
    """forward(x) -> (db64, db128, ax_out_256, db256): restorations at 1/4, 1/2, the full-size auxiliary
    output and the full-size restoration. Sides must be multiples of 16."""

    def __init__(self, num_gaussian_kernels: int = 5, gaussian_kernel_size: int = 5):
        super().__init__()
        n = num_gaussian_kernels
        bank_channels = (n + 1) * IMG_CHANNELS
        self.GCM = GCM(n, gaussian_kernel_size)
        self.basemodel = Backbone()
        self.APU = SqueezeAttentionBlock(BACKBONE_WIDTH, 2 * (n + 1))
        self.SumLayer = SumLayer(2 * bank_channels)
        self.SumLayer1 = nn.Conv2d(2 * IMG_CHANNELS, IMG_CHANNELS, 1)

    def step(self, blurry, previous, state):
        filtered_blurry, aux_blurry = self.GCM(blurry)
        filtered_previous, aux_previous = self.GCM(previous)
        weights, hidden, cell = self.APU(self.basemodel(blurry), state)
        # Each half of the weight maps scales one image's filtered stack, repeated over the 3 colour channels.
        reps = (1, IMG_CHANNELS, 1, 1)
        w_blurry, w_previous = weights.chunk(2, 1)
        weighted = torch.cat([filtered_blurry * w_blurry.repeat(reps), filtered_previous * w_previous.repeat(reps)], 1)
        aux = self.SumLayer1(torch.cat([aux_previous, aux_blurry], 1))
        return self.SumLayer(weighted), aux, hidden, cell

    def forward(self, x):
        x_2 = F.interpolate(x, scale_factor=0.5)  # nearest
        x_4 = F.interpolate(x_2, scale_factor=0.5)
        b, _, h, w = x_4.shape
        zeros = x.new_zeros(b, self.APU.conv_atten.hidden_channels, h // 2, w // 2)
        db_4, _, hidden, cell = self.step(x_4, x_4, (zeros, zeros))
        db_2, _, hidden, cell = self.step(x_2, upsample(db_4), (upsample(hidden), upsample(cell)))
        db, aux, _, _ = self.step(x, upsample(db_2), (upsample(hidden), upsample(cell)))
        return db_4, db_2, aux, db


def build_p2ikt(num_gaussian_kernels: int = 5, gaussian_kernel_size: int = 5, kernel_mode: str = "FG",
                img_channel: int = IMG_CHANNELS) -> P2IKT:
    if kernel_mode != "FG":
        raise ValueError(f"only kernel_mode='FG' (the paper's fixed Gaussian bank) is supported, got {kernel_mode!r}")
    if img_channel != IMG_CHANNELS:
        raise ValueError(f"P2IKT takes {IMG_CHANNELS}-channel images (hard-coded officially), got {img_channel}")
    if num_gaussian_kernels != gaussian_kernel_size or gaussian_kernel_size % 2 == 0 or gaussian_kernel_size < 3:
        # The official pads both convs of the GCM by (num_kernels - 1) // 2 and concatenates their outputs.
        raise ValueError("P2IKT needs num_gaussian_kernels == gaussian_kernel_size, odd and >= 3; got "
                         f"{num_gaussian_kernels} and {gaussian_kernel_size}")
    return P2IKT(num_gaussian_kernels, gaussian_kernel_size)
