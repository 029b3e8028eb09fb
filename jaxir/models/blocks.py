"""Layers shared by every jaxir model, written once with PyTorch semantics.

Each layer here reproduces its PyTorch counterpart exactly (padding, groups,
initialisation, channel order) on NHWC tensors, and declares how the official
state-dict entries map onto its parameters (`TORCH_PARAMS`), so the converter in
`jaxir.convert` needs no per-model code for them. Name submodules after the
attribute the official module uses (`conv1`, `encoders_0`, ...).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np

Dtype = Any
PRECISION = jax.lax.Precision.HIGHEST


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return value


# --- state-dict layout transforms (PyTorch -> Flax), used by the converter ---

def oihw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 1, 0))


def iohw_to_hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(w, (2, 3, 0, 1))


def out_in_to_in_out(w: np.ndarray) -> np.ndarray:
    return np.transpose(w)


def _torch_uniform_fan_in(fan_in_axes: Sequence[int], gain_sq: float = 1.0 / 3.0):
    """PyTorch's default conv/linear init: U(-b, b) with b = sqrt(gain_sq * 3 / fan_in)."""

    def init(key, shape, dtype=jnp.float32):
        fan_in = int(np.prod([shape[a] for a in fan_in_axes]))
        bound = math.sqrt(3.0 * gain_sq / max(fan_in, 1))
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def _torch_bias_init(fan_in: int):
    bound = 1.0 / math.sqrt(max(fan_in, 1))

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class Conv2d(nn.Module):
    """`torch.nn.Conv2d` on NHWC: explicit padding, dilation, groups, padding modes."""

    features: int
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: int | Sequence[int] | str = 0
    dilation: int | Sequence[int] = 1
    groups: int = 1
    use_bias: bool = True
    padding_mode: str = "zeros"  # zeros | reflect | replicate | circular
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "kernel", oihw_to_hwio), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        kh, kw = _pair(self.kernel_size)
        dh, dw = _pair(self.dilation)
        in_features = x.shape[-1]
        if in_features % self.groups or self.features % self.groups:
            raise ValueError(
                f"{self.name}: channels in={in_features} out={self.features} not divisible by groups={self.groups}"
            )
        if isinstance(self.padding, str):
            if self.padding != "same":
                raise ValueError(f"padding must be an int, a pair or 'same', got {self.padding!r}")
            ph, pw = (dh * (kh - 1)) // 2, (dw * (kw - 1)) // 2
        else:
            ph, pw = _pair(self.padding)
        fan_in = (in_features // self.groups) * kh * kw
        kernel = self.param(
            "kernel", _torch_uniform_fan_in((0, 1, 2)), (kh, kw, in_features // self.groups, self.features),
            self.param_dtype,
        )
        if self.padding_mode != "zeros" and (ph or pw):
            mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[self.padding_mode]
            x = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode=mode)
            pad = ((0, 0), (0, 0))
        else:
            pad = ((ph, ph), (pw, pw))
        depthwise = self.groups == in_features == self.features and _pair(self.stride) == (1, 1)
        if depthwise and kh * kw <= _MAX_SHIFTED_TAPS and jax.default_backend() == "cpu":
            y = _depthwise_by_shifts(x.astype(self.dtype), kernel.astype(self.dtype), pad, (dh, dw))
        else:
            y = jax.lax.conv_general_dilated(
                x.astype(self.dtype),
                kernel.astype(self.dtype),
                window_strides=_pair(self.stride),
                padding=pad,
                rhs_dilation=(dh, dw),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                feature_group_count=self.groups,
                precision=PRECISION,
            )
        if self.use_bias:
            bias = self.param("bias", _torch_bias_init(fan_in), (self.features,), self.param_dtype)
            y = y + bias.astype(self.dtype)
        return y


# XLA:CPU runs grouped (depthwise) convolutions an order of magnitude slower than the same
# arithmetic written as shifted multiply-adds, which it fuses into one loop (BENCHMARKS.md);
# GPUs and TPUs keep the native convolution.
_MAX_SHIFTED_TAPS = 49


def _shifted_sum(x_padded, kernel, out_hw, dilation):
    """sum_ij x_padded[:, i*dh : i*dh + H, j*dw : j*dw + W] * kernel[i, j]: one fused loop on XLA."""
    kh, kw = kernel.shape[:2]
    (dh, dw), (out_h, out_w) = dilation, out_hw
    taps = [x_padded[:, i * dh:i * dh + out_h, j * dw:j * dw + out_w, :] * kernel[i, j]
            for i in range(kh) for j in range(kw)]
    return functools.reduce(jnp.add, taps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_by_shifts(x, kernel, pad, dilation):
    """Stride-1 depthwise cross-correlation (kernel (kh, kw, 1, C)) as a sum of shifted inputs.

    The backward pass is written the same way (the input gradient correlates the
    padded output gradient with the flipped kernel; each kernel tap's gradient is
    one multiply-reduce), so no per-tap copy is kept alive for it.
    """
    return _depthwise_forward(x, kernel, pad, dilation)[0]


def _depthwise_forward(x, kernel, pad, dilation):
    (pt, pb), (pl, pr) = pad
    x_padded = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw = kernel.shape[:2]
    out_hw = (x_padded.shape[1] - dilation[0] * (kh - 1), x_padded.shape[2] - dilation[1] * (kw - 1))
    return _shifted_sum(x_padded, kernel[:, :, 0], out_hw, dilation), (x, kernel)


def _depthwise_backward(pad, dilation, residuals, grad):
    x, kernel = residuals
    (pt, pb), (pl, pr) = pad
    (dh, dw), (kh, kw) = dilation, kernel.shape[:2]
    x_padded = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    # d x_padded[p] = sum_ij grad[p - i*d] k[i, j]: a full correlation with the flipped kernel.
    grad_padded = jnp.pad(grad, ((0, 0), (dh * (kh - 1),) * 2, (dw * (kw - 1),) * 2, (0, 0)))
    grad_x_padded = _shifted_sum(grad_padded, kernel[::-1, ::-1, 0], x_padded.shape[1:3], dilation)
    grad_x = grad_x_padded[:, pt:pt + x.shape[1], pl:pl + x.shape[2]]
    # Each tap's kernel gradient is one slice-multiply-reduce over the pixels, in a loop over the taps so
    # that one product is alive at a time. (XLA:CPU lowers the native grouped filter gradient to a dense
    # conv with a (kh, kw, C, C) kernel: C times the work and, for Restormer's 2042-channel GDFN, 143 MB
    # buffers; unrolled, the nine products are all kept. BENCHMARKS.md.)
    g32 = grad.astype(jnp.float32)

    def tap(index):
        i, j = index // kw, index % kw
        window = jax.lax.dynamic_slice(x_padded, (0, i * dh, j * dw, 0), grad.shape).astype(jnp.float32)
        return jnp.sum(window * g32, axis=(0, 1, 2))

    grad_kernel = jax.lax.map(tap, jnp.arange(kh * kw)).reshape(kh, kw, 1, -1).astype(kernel.dtype)
    return grad_x.astype(x.dtype), grad_kernel


_depthwise_by_shifts.defvjp(_depthwise_forward, _depthwise_backward)


class ConvTranspose2d(nn.Module):
    """`torch.nn.ConvTranspose2d` on NHWC (groups=1), same output size rule as PyTorch."""

    features: int
    kernel_size: int | Sequence[int]
    stride: int | Sequence[int] = 1
    padding: int | Sequence[int] = 0
    output_padding: int | Sequence[int] = 0
    dilation: int | Sequence[int] = 1
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "kernel", iohw_to_hwio), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        kh, kw = _pair(self.kernel_size)
        dh, dw = _pair(self.dilation)
        ph, pw = _pair(self.padding)
        oph, opw = _pair(self.output_padding)
        in_features = x.shape[-1]
        # PyTorch computes fan_in from weight.size(1) * k * k = out_channels * k * k.
        fan_in = self.features * kh * kw
        kernel = self.param(
            "kernel", _torch_uniform_fan_in((0, 1, 3)), (kh, kw, in_features, self.features), self.param_dtype
        )
        # A transposed conv is a conv of the stride-dilated input with the spatially flipped kernel.
        flipped = kernel[::-1, ::-1].astype(self.dtype)
        pad = (
            (dh * (kh - 1) - ph, dh * (kh - 1) - ph + oph),
            (dw * (kw - 1) - pw, dw * (kw - 1) - pw + opw),
        )
        y = jax.lax.conv_general_dilated(
            x.astype(self.dtype),
            flipped,
            window_strides=(1, 1),
            padding=pad,
            lhs_dilation=_pair(self.stride),
            rhs_dilation=(dh, dw),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=PRECISION,
        )
        if self.use_bias:
            bias = self.param("bias", _torch_bias_init(fan_in), (self.features,), self.param_dtype)
            y = y + bias.astype(self.dtype)
        return y


class Linear(nn.Module):
    """`torch.nn.Linear` on the last axis (kernel stored (in, out))."""

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "kernel", out_in_to_in_out), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", _torch_uniform_fan_in((0,)), (fan_in, self.features), self.param_dtype)
        y = jnp.matmul(x.astype(self.dtype), kernel.astype(self.dtype), precision=PRECISION)
        if self.use_bias:
            y = y + self.param("bias", _torch_bias_init(fan_in), (self.features,), self.param_dtype).astype(self.dtype)
        return y


class LayerNorm(nn.Module):
    """LayerNorm over the channel (last) axis; `NAFNet`'s LayerNorm2d and `nn.LayerNorm` alike.

    `bias_free` is Restormer's BiasFree variant: x / sqrt(var + eps) * weight (the
    mean is used for the variance but not subtracted).
    """

    epsilon: float = 1e-5
    use_bias: bool = True
    bias_free: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {"weight": ("params", "scale", None), "bias": ("params", "bias", None)}

    @nn.compact
    def __call__(self, x):
        features = x.shape[-1]
        # Statistics in float32 even under bfloat16 compute.
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        centred = x32 if self.bias_free else x32 - mean
        y = centred * jax.lax.rsqrt(var + self.epsilon)
        y = y * self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        if self.use_bias and not self.bias_free:
            y = y + self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        return y.astype(self.dtype)


class BatchNorm2d(nn.Module):
    """`torch.nn.BatchNorm2d` (momentum 0.1, eps 1e-5, biased batch variance for normalising)."""

    momentum: float = 0.1
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32

    TORCH_PARAMS = {
        "weight": ("params", "scale", None),
        "bias": ("params", "bias", None),
        "running_mean": ("batch_stats", "mean", None),
        "running_var": ("batch_stats", "var", None),
    }
    # Counters the forward pass never reads.
    TORCH_IGNORED = ("num_batches_tracked",)

    @nn.compact
    def __call__(self, x, train: bool = False):
        features = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (features,), self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, (features,), self.param_dtype)
        running_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        running_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        x32 = x.astype(jnp.float32)
        if train:
            mean = jnp.mean(x32, axis=(0, 1, 2))
            var = jnp.mean(jnp.square(x32 - mean), axis=(0, 1, 2))
            if not self.is_initializing():
                n = x.shape[0] * x.shape[1] * x.shape[2]
                unbiased = var * n / max(n - 1, 1)
                running_mean.value = (1 - self.momentum) * running_mean.value + self.momentum * mean
                running_var.value = (1 - self.momentum) * running_var.value + self.momentum * unbiased
        else:
            mean, var = running_mean.value, running_var.value
        y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
        return y.astype(self.dtype)


class PReLU(nn.Module):
    """`torch.nn.PReLU(num_parameters)`: max(0, x) + weight * min(0, x), weight init 0.25."""

    num_parameters: int = 1
    param_dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        weight = self.param("weight", nn.initializers.constant(0.25), (self.num_parameters,), self.param_dtype)
        return jnp.where(x >= 0, x, weight.astype(x.dtype) * x)


def max_pool(x, window: int, stride: int | None = None):
    """`nn.MaxPool2d(window, stride)` without padding (floor mode)."""
    stride = stride or window
    return nn.max_pool(x, (window, window), strides=(stride, stride), padding="VALID")


class Dropout2d(nn.Module):
    """`torch.nn.Dropout2d`: drops whole channels; identity when not training."""

    rate: float

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dropout(self.rate, broadcast_dims=(1, 2), deterministic=not train)(x)


# --- stateless ops with PyTorch semantics ---

gelu = functools.partial(nn.gelu, approximate=False)  # torch.nn.GELU() is the exact erf form


def pixel_shuffle(x, upscale: int):
    """`torch.nn.PixelShuffle` on NHWC: channel c*r*r + i*r + j goes to (h*r+i, w*r+j)."""
    n, h, w, c = x.shape
    r = upscale
    x = x.reshape(n, h, w, c // (r * r), r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * r, w * r, c // (r * r))


def pixel_unshuffle(x, downscale: int):
    """`torch.nn.PixelUnshuffle` on NHWC, the inverse of `pixel_shuffle`."""
    n, h, w, c = x.shape
    r = downscale
    x = x.reshape(n, h // r, r, w // r, r, c)
    x = x.transpose(0, 1, 3, 5, 2, 4)
    return x.reshape(n, h // r, w // r, c * r * r)


def global_avg_pool(x):
    """`nn.AdaptiveAvgPool2d(1)` on NHWC."""
    return jnp.mean(x, axis=(1, 2), keepdims=True)


def avg_pool(x, window: int, stride: int | None = None):
    """`nn.AvgPool2d(window, stride)` without padding."""
    stride = stride or window
    return nn.avg_pool(x, (window, window), strides=(stride, stride), padding="VALID")


def interpolate_nearest(x, scale_factor: float):
    """`F.interpolate(mode='nearest', scale_factor=s)`: source index floor(i / s)."""
    n, h, w, c = x.shape
    out_h, out_w = int(math.floor(h * scale_factor)), int(math.floor(w * scale_factor))
    rows = np.minimum(np.floor(np.arange(out_h) / scale_factor).astype(np.int64), h - 1)
    cols = np.minimum(np.floor(np.arange(out_w) / scale_factor).astype(np.int64), w - 1)
    return x[:, rows][:, :, cols]


def interpolate_bilinear(x, size: Sequence[int] | None = None, scale_factor: float | None = None):
    """`F.interpolate(mode='bilinear', align_corners=False)` (no antialiasing) on NHWC."""
    n, h, w, c = x.shape
    if size is None:
        if scale_factor is None:
            raise ValueError("interpolate_bilinear needs size or scale_factor")
        size = (int(math.floor(h * scale_factor)), int(math.floor(w * scale_factor)))
    if tuple(size) == (h, w):
        return x
    # Without antialiasing, jax's triangle kernel samples at half-pixel centres and renormalises
    # at the borders, which is exactly PyTorch's clamped bilinear (tests/test_blocks.py).
    return jax.image.resize(x, (n, *size, c), method="bilinear", antialias=False)


def _align_corners_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) linear-interpolation weights with align_corners=True (source = i * (in-1)/(out-1))."""
    scale = np.float32((in_size - 1) / (out_size - 1)) if out_size > 1 else np.float32(0.0)
    src = np.arange(out_size, dtype=np.float32) * scale
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    frac = src - lo
    weights = np.zeros((out_size, in_size), np.float32)
    np.add.at(weights, (np.arange(out_size), lo), 1.0 - frac)
    np.add.at(weights, (np.arange(out_size), hi), frac)
    return weights


def resize_bilinear_align_corners(x, size: tuple[int, int]):
    """`F.interpolate(mode='bilinear', align_corners=True)` on NHWC: corners map onto corners.

    Two small matrix products (rows, then columns): XLA compiles these several
    times faster than the equivalent gathers, and a model has 30 such resizes.
    """
    rows = jnp.asarray(_align_corners_matrix(x.shape[1], size[0]), x.dtype)
    cols = jnp.asarray(_align_corners_matrix(x.shape[2], size[1]), x.dtype)
    y = jnp.einsum("oh,nhwc->nowc", rows, x, precision=PRECISION)
    return jnp.einsum("pw,nowc->nopc", cols, y, precision=PRECISION)


def pad_to_multiple(x, multiple: int, mode: str = "constant"):
    """Pad H and W at the bottom/right to a multiple (NAFNet's check_image_size uses zeros)."""
    h, w = x.shape[1:3]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    return jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)


# Conversion rules for Flax's own layers, should a model use them directly.
FLAX_TORCH_PARAMS = {
    nn.Dense: {"weight": ("params", "kernel", out_in_to_in_out), "bias": ("params", "bias", None)},
    nn.Embed: {"weight": ("params", "embedding", None)},
    nn.LayerNorm: {"weight": ("params", "scale", None), "bias": ("params", "bias", None)},
    nn.GroupNorm: {"weight": ("params", "scale", None), "bias": ("params", "bias", None)},
}


def adaptive_avg_pool(x, output_size: Sequence[int]):
    """`nn.AdaptiveAvgPool2d(output_size)` on NHWC: bin i spans [floor(i*H/n), ceil((i+1)*H/n))."""
    n, h, w, c = x.shape
    out_h, out_w = output_size

    def pool_matrix(size, out):
        matrix = np.zeros((out, size), np.float32)
        for i in range(out):
            start, end = (i * size) // out, -((-(i + 1) * size) // out)
            matrix[i, start:end] = 1.0 / (end - start)
        return matrix

    rows, cols = jnp.asarray(pool_matrix(h, out_h)), jnp.asarray(pool_matrix(w, out_w))
    x = jnp.einsum("oh,nhwc->nowc", rows.astype(x.dtype), x, precision=PRECISION)
    return jnp.einsum("pw,nowc->nopc", cols.astype(x.dtype), x, precision=PRECISION)


# --- Mamba (S6) selective-scan parameters, shared by the state-space restorers (MaIR, MambaIRv2) ---

def _dt_bias_init(dt_min: float = 1e-3, dt_max: float = 0.1, floor: float = 1e-4):
    """mamba_ssm's dt_init: softplus(bias) log-uniform in [dt_min, dt_max]."""

    def init(key, shape, dtype=jnp.float32):
        dt = jnp.exp(jax.random.uniform(key, shape) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = jnp.maximum(dt, floor)
        return (dt + jnp.log(-jnp.expm1(-dt))).astype(dtype)

    return init


def s6_params(module: nn.Module, copies: int, d_inner: int, d_state: int, dt_rank: int) -> dict:
    """Create, on `module` (inside its compact call), the S6 parameters under the official names:
    `x_proj_weight` (K, R + 2N, D), `dt_projs_weight` (K, D, R), `dt_projs_bias` (K, D),
    `A_logs` (K D, N) (S4D-real init log(1..N)) and `Ds` (K D,) (ones), K = `copies` scan directions."""
    k, d, n, r = copies, d_inner, d_state, dt_rank
    return dict(
        # nn.Linear(D, R + 2N)'s default init, stacked over the K directions.
        x_proj_weight=module.param("x_proj_weight", _torch_uniform_fan_in((2,)), (k, r + 2 * n, d), jnp.float32),
        dt_projs_weight=module.param("dt_projs_weight", lambda key, s, dt=jnp.float32: jax.random.uniform(
            key, s, dt, -r ** -0.5, r ** -0.5), (k, d, r), jnp.float32),
        dt_projs_bias=module.param("dt_projs_bias", _dt_bias_init(), (k, d), jnp.float32),
        A_logs=module.param("A_logs", lambda key, s, dt=jnp.float32: jnp.log(jnp.broadcast_to(
            jnp.arange(1, n + 1, dtype=dt), s)), (k * d, n), jnp.float32),
        Ds=module.param("Ds", nn.initializers.ones, (k * d,), jnp.float32),
    )


def s6_scan(params: dict, xs, c_offset=None, method: str = "associative", chunk_size: int = 256):
    """The official `forward_core` after the scan-order gather: xs (B, K, D, L) -> y (B, K, D, L).

    Per direction k: (Δ_r, B, C) = x_proj_weight[k] xs_k, Δ = dt_projs_weight[k] Δ_r, then the selective
    scan with softplus(Δ + dt_projs_bias), A = -exp(A_logs), skip Ds; `c_offset` (B, K, N, L) is added to
    C (MambaIRv2's prompts)."""
    from jaxir.ops.scan import selective_scan

    b, k, d, length = xs.shape
    n = params["A_logs"].shape[-1]
    r = params["dt_projs_weight"].shape[-1]
    xs32 = xs.astype(jnp.float32)
    x_dbl = jnp.einsum("bkdl,kcd->bkcl", xs32, params["x_proj_weight"], precision=PRECISION)
    dts, bs, cs = x_dbl[:, :, :r], x_dbl[:, :, r:r + n], x_dbl[:, :, r + n:]
    dts = jnp.einsum("bkrl,kdr->bkdl", dts, params["dt_projs_weight"], precision=PRECISION)
    if c_offset is not None:
        cs = cs + c_offset.astype(jnp.float32)
    y = selective_scan(xs32.reshape(b, k * d, length), dts.reshape(b, k * d, length), -jnp.exp(params["A_logs"]),
                       bs, cs, params["Ds"], delta_bias=params["dt_projs_bias"].reshape(-1), delta_softplus=True,
                       method=method, chunk_size=chunk_size)
    return y.reshape(b, k, d, length)


# --- SwinIR-family image reconstruction, shared by MambaIRv2 and MaIR ---

SWINIR_RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K's mean, subtracted before the network
SWINIR_UPSAMPLERS = ("", "pixelshuffle", "pixelshuffledirect")


def swinir_reconstruction(x, res, upsampler: str, upscale: int, out_channels: int, dtype: Dtype = jnp.float32,
                          num_feat: int = 64):
    """SwinIR's reconstruction from `res` (deep + shallow features) of the normalised input `x`.

    Called inside a compact `__call__`: the layers join the calling module under the official names.
    'pixelshuffle' (classic SR): conv_before_upsample.0 + LeakyReLU(0.01), upsample.{0,2,..} (3x3 conv +
    PixelShuffle(2) per factor 2, or one PixelShuffle(3)), conv_last. 'pixelshuffledirect' (lightweight SR):
    upsample.0 (3x3 conv to r^2 * C) + PixelShuffle(r). '' (denoising): x + conv_last(res)."""
    if upsampler not in SWINIR_UPSAMPLERS:
        raise ValueError(f"upsampler must be one of {SWINIR_UPSAMPLERS}, got {upsampler!r}")
    if upsampler == "pixelshuffle":
        y = nn.leaky_relu(Conv2d(num_feat, 3, padding=1, dtype=dtype, name="conv_before_upsample_0")(res), 0.01)
        if upscale & (upscale - 1) == 0:
            for i in range(int(math.log2(upscale))):
                y = pixel_shuffle(Conv2d(4 * num_feat, 3, padding=1, dtype=dtype, name=f"upsample_{2 * i}")(y), 2)
        elif upscale == 3:
            y = pixel_shuffle(Conv2d(9 * num_feat, 3, padding=1, dtype=dtype, name="upsample_0")(y), 3)
        else:
            raise ValueError(f"upscale {upscale} is not supported: powers of 2 and 3")
        return Conv2d(out_channels, 3, padding=1, dtype=dtype, name="conv_last")(y)
    if upsampler == "pixelshuffledirect":
        return pixel_shuffle(Conv2d(upscale ** 2 * out_channels, 3, padding=1, dtype=dtype, name="upsample_0")(res),
                             upscale)
    return x + Conv2d(out_channels, 3, padding=1, dtype=dtype, name="conv_last")(res)
