"""P2IKT: defocus deblurring with inverse Gaussian kernels and a scale-recurrent strip transformer.

Tang et al., "Prior and Prediction Inverse Kernel Transformer for Single Image
Defocus Deblurring" (AAAI 2024). Official code: TPZZZ/P2IKT, model/P2IKT.py.

Three scales (1/4, 1/2, 1), coarse to fine. At each scale the blurry input and
the upsampled previous estimate are each filtered by the GCM: a fixed bank of
Wiener inverse Gaussian kernels (computed here with `jax.numpy.fft`) plus one
inverse kernel predicted per image; a Stripformer-style backbone with a ConvLSTM
attention unit (APU) weights the filtered maps, which are summed into the estimate.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxir import registry
from jaxir.models.blocks import (
    BatchNorm2d, Conv2d, ConvTranspose2d, PRECISION, adaptive_avg_pool, avg_pool, interpolate_bilinear,
    interpolate_nearest,
)
from jaxir.models.stripformer import InterSA, IntraSA, StripEncoder, leaky_relu as _lrelu

Dtype = Any


def gaussian_window(size: int, sigma: float) -> jnp.ndarray:
    x = jnp.arange(size, dtype=jnp.float32) - size // 2
    g = jnp.exp(-(x**2) / (2.0 * sigma**2))
    g = g / g.sum()
    return jnp.outer(g, g)


def wiener_inverse_on_grid(kernel: jnp.ndarray, reg: float) -> jnp.ndarray:
    """|ifft2(conj(K) / (|K|^2 + reg))| with K the FFT of the kernel on its own (unshifted) grid.

    This is P2IKT's construction, not a centred Wiener filter (for that see
    jaxir.ops.fft.wiener_deconvolve): without the shift to the origin its peak is off-centre.
    """
    spectrum = jnp.fft.fft2(kernel.astype(jnp.float32))
    return jnp.abs(jnp.fft.ifft2(jnp.conj(spectrum) / (jnp.abs(spectrum) ** 2 + reg)))


def inverse_gaussian_bank(num_kernels: int, max_kernel_size: int, channels: int = 3) -> jnp.ndarray:
    """The GCM's fixed kernels, (num_kernels + 1) * channels depthwise filters, (N, k, k).

    Entry 0 is the identity; entry i+1 is the Wiener inverse (regulariser 0.01) of a
    Gaussian of sigma 0.25 (i + 1). Like the official construction, the inverse is
    taken on the small unshifted kernel grid, so its peak sits off-centre; kernels
    start 3x3 and grow by 2 after every second one from i = 2, zero-padded to max size.
    Each kernel is repeated per channel, in the official order (kernel-major).
    """
    kernels = [jnp.zeros((max_kernel_size, max_kernel_size)).at[max_kernel_size // 2, max_kernel_size // 2].set(1.0)]
    size = 3
    for i in range(num_kernels):
        inverse = wiener_inverse_on_grid(gaussian_window(size, 0.25 * (i + 1)), reg=0.01)
        pad = (max_kernel_size - size) // 2
        kernels.append(jnp.pad(inverse, pad))
        if i >= 2 and i % 2 == 0 and size < max_kernel_size:
            size += 2
    bank = jnp.stack(kernels).astype(jnp.float32)
    return jnp.repeat(bank, channels, axis=0)


class Predictor(nn.Module):
    """Predicts one 3-channel inverse kernel per image (softmax over the official implicit dim 1)."""

    nf: int = 128
    size: int = 25
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, kernel_size: int):
        x = _lrelu(Conv2d(self.nf, 11, padding=2, dtype=self.dtype, name="ConvNet_0")(x))
        x = adaptive_avg_pool(x, (3, 3))
        x = _lrelu(Conv2d(self.size, 1, use_bias=False, dtype=self.dtype, name="ConvNet_3")(x))
        x = adaptive_avg_pool(x, (3, 1))
        x = Conv2d(self.size, 1, use_bias=False, dtype=self.dtype, name="ConvNet_6")(x)
        # nn.Softmax() without dim on a 4-D tensor normalises over channels.
        x = jax.nn.softmax(x.astype(jnp.float32), axis=-1)
        # The official `.view(-1, 3, k, k)` reads the NCHW (B, size, 3, 1) memory order.
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], 3, kernel_size, kernel_size)
        return x


class GCM(nn.Module):
    """Gaussian (inverse-kernel) convolution module: fixed Wiener bank + predicted kernel."""

    num_kernels: int = 5
    max_kernel_size: int = 5
    dtype: Dtype = jnp.float32

    def setup(self):
        self.weight = inverse_gaussian_bank(self.num_kernels, self.max_kernel_size)
        channels_out = (self.num_kernels + 1) * 3
        self.adaption_conv = Predictor(128, self.num_kernels * self.num_kernels, dtype=self.dtype)
        self.transform_conv = BasicConv1(channels_out, 3, self.dtype)
        self.fuse_conv = BasicConv1(channels_out, 3, self.dtype)
        self.Convsout = BasicConv1(3, 3, self.dtype)

    def __call__(self, x):
        pad = (self.num_kernels - 1) // 2
        # Depthwise with groups=3 over the kernel-major bank: output o reads input channel o // (N+1).
        bank = jnp.transpose(self.weight, (1, 2, 0))[:, :, None, :]
        x_gauss = jax.lax.conv_general_dilated(
            x, bank.astype(x.dtype), (1, 1), ((pad, pad), (pad, pad)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3, precision=PRECISION)

        predicted = self.adaption_conv(x, self.num_kernels)  # (B, 3, k, k), official (out=1, in=3) weight

        def per_image(image, kernel):
            hwio = jnp.transpose(kernel, (1, 2, 0))[:, :, :, None].astype(image.dtype)
            out = jax.lax.conv_general_dilated(
                image[None], hwio, (1, 1), ((pad, pad), (pad, pad)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=PRECISION)[0]
            # The single output channel is broadcast into the three channels.
            return jnp.broadcast_to(out, image.shape)

        adaptive = jax.vmap(per_image)(x, predicted)
        ax_output = self.Convsout(x)
        fused = self.fuse_conv(jnp.concatenate([x_gauss, self.transform_conv(adaptive)], axis=-1))
        return fused, ax_output


class BasicConv1(nn.Module):
    """Official `BasicConv1` without norm or activation: a padded conv held as `main.0`."""

    features: int
    kernel_size: int = 3
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return Conv2d(self.features, self.kernel_size, padding=(self.kernel_size - 1) // 2, dtype=self.dtype,
                      name="main_0")(x)


class SumLayer(nn.Module):
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        return Conv2d(3, 1, dtype=self.dtype, name="conv")(x)


class ConvBNReLU(nn.Module):
    """Official `conv_block1`: conv, BatchNorm (eval statistics), ReLU, held as `conv.0`/`conv.1`."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.features, 3, padding=1, dtype=self.dtype, name="conv_0")(x)
        return nn.relu(BatchNorm2d(dtype=self.dtype, name="conv_1")(x, train=False))


def _pair(parent: nn.Module, name: str, features: int, x, first_kernel: int = 3):
    """Official `name = Sequential(conv, LeakyReLU, conv)`: Flax layers `name_0`, `name_2` of the parent."""
    dt = parent.dtype
    y = _lrelu(Conv2d(features, first_kernel, padding=first_kernel // 2, dtype=dt, name=f"{name}_0")(x))
    return Conv2d(features, 3, padding=1, dtype=dt, name=f"{name}_2")(y)


class EmbeddingsOutput(nn.Module):
    """The backbone decoder: back to full resolution, 64 feature channels."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, residual_1, residual_2):
        dt = self.dtype
        hx = _lrelu(ConvTranspose2d(64, 4, stride=2, padding=1, dtype=dt, name="de_layer3_1_0")(x))
        hx = _lrelu(Conv2d(64, 1, dtype=dt, name="de_layer2_2_0")(jnp.concatenate([hx, residual_2], -1)))
        for i in (1, 2, 3, 4):
            hx = _lrelu(_pair(self, f"de_block_{i}", 64, hx) + hx)
        hx = _lrelu(ConvTranspose2d(64, 4, stride=2, padding=1, dtype=dt, name="de_layer2_1_0")(hx))
        hx = _lrelu(_pair(self, "de_layer1_1", 64, jnp.concatenate([hx, residual_1], -1), first_kernel=1) + hx)
        for i in (2, 3, 4):
            hx = _lrelu(_pair(self, f"de_layer1_{i}", 64, hx) + hx)
        return hx


class StripBackbone(nn.Module):
    """`Stripformer_1`: encoder, three intra/inter strip-attention pairs (dim 160, 4 heads), decoder."""

    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        # The encoder is Stripformer's with narrower stages.
        hx, residual_1, residual_2 = StripEncoder((64, 64, 160), self.dtype, name="encoder")(x)
        for i in range(1, 7):
            block = IntraSA if i % 2 else InterSA
            hx = block(4, self.dtype, name=f"Trans_block_{i}")(hx)
        return EmbeddingsOutput(self.dtype, name="decoder")(hx, residual_1, residual_2)


class ConvLSTMCell(nn.Module):
    num_features: int
    filter_size: int = 5
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, state):
        hidden, cell = state
        gates = Conv2d(4 * self.num_features, self.filter_size, padding=(self.filter_size - 1) // 2,
                       dtype=self.dtype, name="conv")(jnp.concatenate([x, hidden], -1))
        i, f, o, g = jnp.split(gates, 4, axis=-1)
        next_cell = nn.sigmoid(f) * cell + nn.sigmoid(i) * jnp.tanh(g)
        return nn.sigmoid(o) * jnp.tanh(next_cell), next_cell


class SqueezeAttentionBlock(nn.Module):
    """The APU: weight maps in [-1, 1] from features, with a ConvLSTM state across scales."""

    features: int
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, state):
        x_res = ConvBNReLU(self.features, self.dtype, name="conv")(x)
        h, c = ConvLSTMCell(self.features, 5, self.dtype, name="conv_atten")(avg_pool(x, 2), state)
        y = interpolate_nearest(h, 2.0)
        return nn.sigmoid(y * x_res + y) * 2 - 1, h, c


class P2IKT(nn.Module):
    num_gaussian_kernels: int = 5
    gaussian_kernel_size: int = 5
    dtype: Dtype = jnp.float32
    img_channel: int = 3

    def setup(self):
        n = self.num_gaussian_kernels
        self.GCM = GCM(n, self.gaussian_kernel_size, self.dtype)
        self.basemodel = StripBackbone(self.dtype)
        self.APU = SqueezeAttentionBlock(2 * (n + 1), self.dtype)
        self.SumLayer = SumLayer(self.dtype)
        self.SumLayer1 = Conv2d(3, 1, dtype=self.dtype)

    def _multiply(self, filtered, weights):
        """Each half of the filtered maps times its half of the weight maps, tiled over the 3 colours."""
        fc, wc = filtered.shape[-1] // 2, weights.shape[-1] // 2
        halves = [filtered[..., :fc] * jnp.tile(weights[..., :wc], (1, 1, 1, 3)),
                  filtered[..., fc:] * jnp.tile(weights[..., wc:], (1, 1, 1, 3))]
        return jnp.concatenate(halves, axis=-1)

    def _step(self, blurry, previous, state):
        gy, ax_y = self.GCM(blurry)
        gx, ax_x = self.GCM(previous)
        features = self.basemodel(blurry)
        weights, h, c = self.APU(features, state)
        result = self.SumLayer(self._multiply(jnp.concatenate([gy, gx], -1), weights))
        ax_out = self.SumLayer1(jnp.concatenate([ax_x, ax_y], -1))
        return result, ax_out, h, c

    def __call__(self, x, train: bool = False):
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"P2IKT expects NHWC RGB input, got shape {x.shape}")
        if x.shape[1] % 16 or x.shape[2] % 16 or min(x.shape[1:3]) < 32:
            raise ValueError(f"P2IKT needs height and width divisible by 16 and at least 32, "
                             f"got {x.shape[1]}x{x.shape[2]}")
        if self.num_gaussian_kernels != self.gaussian_kernel_size:
            raise ValueError("P2IKT's two filter banks only concatenate when num_gaussian_kernels == "
                             f"gaussian_kernel_size, got {self.num_gaussian_kernels} and {self.gaussian_kernel_size}")
        x = x.astype(self.dtype)
        x128 = interpolate_nearest(x, 0.5)
        x64 = interpolate_nearest(x128, 0.5)
        b, h64, w64 = x64.shape[:3]
        features = 2 * (self.num_gaussian_kernels + 1)
        zeros = jnp.zeros((b, h64 // 2, w64 // 2, features), self.dtype)
        db64, _, h, c = self._step(x64, x64, (zeros, zeros))
        up = lambda t: interpolate_bilinear(t, scale_factor=2.0)  # noqa: E731
        db128, _, h, c = self._step(x128, up(db64), (up(h), up(c)))
        db256, ax_out_256, _, _ = self._step(x, up(db128), (up(h), up(c)))
        return tuple(o.astype(jnp.float32) for o in (db64, db128, ax_out_256, db256))


def _official_kwargs(official: dict) -> dict:
    kwargs = dict(official)
    mode = kwargs.pop("kernel_mode", "FG")
    if mode != "FG":
        raise ValueError(f"only kernel_mode='FG' (fixed Gaussian bank, the paper's) is ported, got {mode!r}")
    return kwargs


registry.register_model(registry.ModelEntry(
    name="p2ikt",
    builder=P2IKT,
    official=(("TPZZZ/P2IKT", "P2IKT_model"),),
    translate_kwargs=_official_kwargs,
    pad_multiple=16,
    # The kernel predictor's 11x11 conv (padding 2) needs 7 pixels at the quarter scale.
    min_size=32,
    official_file="model/P2IKT.py",
    description="P2IKT (defocus deblurring, inverse Gaussian kernels + strip transformer); outputs db64, db128, aux, db256.",
))
