"""Modulated deformable convolution (DCNv2), with mmcv's offset and mask layout.

Zhu, Hu, Lin, Dai. "Deformable ConvNets v2: More Deformable, Better Results", CVPR 2019.
Layout as mmcv.ops.modulated_deform_conv2d (the op AirNet's DCN_layer calls):

    y[o, p] = sum_{c, k} W[o, c, k] * m_k(p) * X_c(p0(p) + p_k + Δp_k(p)) + b[o]

where p0(p) = p * stride - padding, p_k = (i * dilation, j * dilation) runs over the
kernel points k = i * kw + j, and X_c(y, x) is bilinear interpolation of channel c with
zeros outside the image (mmcv's `dmcn_im2col_bilinear`: each of the four corners
contributes only when inside). For deformable group g the offset channels are
`2 * (g * K + k)` (Δy) and `2 * (g * K + k) + 1` (Δx), the mask channel is `g * K + k`.

Written as four gathers per kernel point and one contraction, so it is differentiable
in the input, offsets, mask and weight by JAX's own autodiff. The sampled columns
(B, Ho, Wo, K, C) are K times the input's size; they are rematerialised in the
backward pass (jax.checkpoint) instead of being kept for every layer.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

PRECISION = jax.lax.Precision.HIGHEST


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _bilinear_zero_pad(x, ys, xs):
    """Sample x (B, H, W, G, Cg) at float positions ys, xs (B, P, G): (B, P, G, Cg), zeros outside."""
    b, h, w, g, cg = x.shape
    flat = x.reshape(b, h * w, g, cg)
    y0, x0 = jnp.floor(ys), jnp.floor(xs)
    ly, lx = ys - y0, xs - x0
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    group = jnp.arange(g)[None, None, :]
    batch = jnp.arange(b)[:, None, None]
    out = 0.0
    for dy, wy in ((0, 1.0 - ly), (1, ly)):
        for dx, wx in ((0, 1.0 - lx), (1, lx)):
            yi, xi = y0 + dy, x0 + dx
            inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
            index = jnp.clip(yi, 0, h - 1) * w + jnp.clip(xi, 0, w - 1)
            values = flat[batch, index, group]  # (B, P, G, Cg)
            weight = jnp.where(inside, wy * wx, 0.0).astype(x.dtype)
            out = out + values * weight[..., None]
    return out


def modulated_deform_conv2d(x, offset, mask, weight, bias=None, stride: int | Sequence[int] = 1,
                            padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
                            groups: int = 1, deformable_groups: int = 1):
    """DCNv2 on NHWC tensors with PyTorch's OIHW weight.

    x: (B, H, W, C); offset: (B, Ho, Wo, 2 * G * K); mask: (B, Ho, Wo, G * K) (already
    passed through a sigmoid, as mmcv expects); weight: (O, C / groups, kh, kw);
    bias: (O,) or None. Returns (B, Ho, Wo, O).
    """
    b, h, w, c = x.shape
    out_ch, c_per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    dg, k = deformable_groups, kh * kw
    if c % dg or c % groups or c_per_group * groups != c or out_ch % groups:
        raise ValueError(f"channels {c}, weight {weight.shape}: incompatible with groups={groups}, "
                         f"deformable_groups={dg}")
    ho, wo = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if offset.shape != (b, ho, wo, 2 * dg * k) or mask.shape != (b, ho, wo, dg * k):
        raise ValueError(f"offset {offset.shape} / mask {mask.shape} do not match output {(b, ho, wo)}, "
                         f"{dg} deformable group(s) of {k} kernel points")
    return _deform_columns_and_contract(x, offset, mask, weight, bias, (sh, sw), (ph, pw), (dh, dw), groups, dg)


@functools.partial(jax.checkpoint, static_argnums=(5, 6, 7, 8, 9))
def _deform_columns_and_contract(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    b, h, w, c = x.shape
    out_ch, c_per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    k = kh * kw
    ho, wo = offset.shape[1:3]
    offset = offset.reshape(b, ho, wo, dg, k, 2)
    mask = mask.reshape(b, ho, wo, dg, k)
    # Base sampling grid: output pixel times stride, minus padding, plus the kernel tap.
    base_y = (jnp.arange(ho) * sh - ph)[:, None, None] + (jnp.arange(kh) * dh).repeat(kw)[None, None, :]
    base_x = (jnp.arange(wo) * sw - pw)[None, :, None] + jnp.tile(jnp.arange(kw) * dw, kh)[None, None, :]
    ys = base_y[None, :, :, None, :].astype(offset.dtype) + offset[..., 0]  # (B, Ho, Wo, G, K)
    xs = base_x[None, :, :, None, :].astype(offset.dtype) + offset[..., 1]
    ys = ys.transpose(0, 1, 2, 4, 3).reshape(b, ho * wo * k, dg)
    xs = xs.transpose(0, 1, 2, 4, 3).reshape(b, ho * wo * k, dg)
    sampled = _bilinear_zero_pad(x.reshape(b, h, w, dg, c // dg), ys, xs)  # (B, Ho*Wo*K, G, C/G)
    columns = sampled.reshape(b, ho, wo, k, dg, c // dg)
    columns = columns * mask.transpose(0, 1, 2, 4, 3)[..., None].astype(x.dtype)
    columns = columns.reshape(b, ho, wo, k, groups, c_per_group)
    # weight (O, C/g, kh, kw) -> (g, O/g, C/g, K)
    kernel = weight.reshape(groups, out_ch // groups, c_per_group, k).astype(x.dtype)
    y = jnp.einsum("bhwkgc,gock->bhwgo", columns, kernel, precision=PRECISION).reshape(b, ho, wo, out_ch)
    if bias is not None:
        y = y + bias.astype(y.dtype)
    return y
