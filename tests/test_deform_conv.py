"""DCNv2 (jaxir.ops.deform_conv) against a direct per-pixel computation, and its gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxir.ops.deform_conv import modulated_deform_conv2d


def _bilinear(img, y, x):
    """mmcv's dmcn_im2col_bilinear for one channel image (H, W): corners outside count as zero."""
    h, w = img.shape
    if not (-1 < y < h and -1 < x < w):
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    ly, lx = y - y0, x - x0
    total = 0.0
    for yi, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xi, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            if 0 <= yi < h and 0 <= xi < w:
                total += wy * wx * img[yi, xi]
    return total


def _reference(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg):
    """Per output pixel, per kernel point loop in float64 (NCHW, mmcv's channel layout)."""
    b, c, h, w = x.shape
    o, cpg, kh, kw = weight.shape
    ho, wo = offset.shape[2:]
    k = kh * kw
    out = np.zeros((b, o, ho, wo))
    for n in range(b):
        for oy in range(ho):
            for ox in range(wo):
                for oc in range(o):
                    g = oc // (o // groups)
                    acc = 0.0 if bias is None else float(bias[oc])
                    for ci in range(cpg):
                        cin = g * cpg + ci
                        dgi = cin // (c // dg)
                        for i in range(kh):
                            for j in range(kw):
                                kk = i * kw + j
                                dy = offset[n, 2 * (dgi * k + kk), oy, ox]
                                dx = offset[n, 2 * (dgi * k + kk) + 1, oy, ox]
                                m = mask[n, dgi * k + kk, oy, ox]
                                y = oy * stride - padding + i * dilation + dy
                                xx = ox * stride - padding + j * dilation + dx
                                acc += weight[oc, ci, i, j] * m * _bilinear(x[n, cin], y, xx)
                    out[n, oc, oy, ox] = acc
    return out


def _nhwc(a):
    return jnp.asarray(np.transpose(a, (0, 2, 3, 1)), jnp.float32)


@pytest.mark.parametrize("stride,padding,dilation,groups,dg", [(1, 1, 1, 1, 1), (2, 2, 2, 2, 2)])
def test_matches_per_pixel_reference(stride, padding, dilation, groups, dg):
    rng = np.random.default_rng(0)
    b, c, h, w, o, ks = 2, 4, 7, 6, 4, 3
    ho = (h + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    wo = (w + 2 * padding - dilation * (ks - 1) - 1) // stride + 1
    x = rng.normal(size=(b, c, h, w))
    # Large offsets so samples leave the image on every side (the zero-padding path).
    offset = rng.normal(scale=2.5, size=(b, 2 * dg * ks * ks, ho, wo))
    mask = rng.uniform(size=(b, dg * ks * ks, ho, wo))
    weight = rng.normal(size=(o, c // groups, ks, ks))
    bias = rng.normal(size=(o,))
    want = _reference(x, offset, mask, weight, bias, stride, padding, dilation, groups, dg)
    got = modulated_deform_conv2d(_nhwc(x), _nhwc(offset), _nhwc(mask), jnp.asarray(weight, jnp.float32),
                                  jnp.asarray(bias, jnp.float32), stride, padding, dilation, groups, dg)
    np.testing.assert_allclose(np.transpose(np.asarray(got), (0, 3, 1, 2)), want, atol=2e-5, rtol=1e-5)


def test_zero_offset_unit_mask_is_a_convolution():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(1, 9, 8, 3)), jnp.float32)
    weight = jnp.asarray(rng.normal(size=(5, 3, 3, 3)), jnp.float32)
    got = modulated_deform_conv2d(x, jnp.zeros((1, 9, 8, 18)), jnp.ones((1, 9, 8, 9)), weight, padding=1)
    want = jax.lax.conv_general_dilated(x, jnp.transpose(weight, (2, 3, 1, 0)), (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        precision=jax.lax.Precision.HIGHEST)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_gradients():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(1, 5, 5, 2)), jnp.float32)
    # Offsets kept away from integers so the finite differences do not cross a bilinear cell edge.
    offset = jnp.asarray(rng.integers(-2, 3, size=(1, 5, 5, 18)) + rng.uniform(0.2, 0.8, size=(1, 5, 5, 18)),
                         jnp.float32)
    mask = jnp.asarray(rng.uniform(size=(1, 5, 5, 9)), jnp.float32)
    weight = jnp.asarray(rng.normal(size=(3, 2, 3, 3)), jnp.float32)
    bias = jnp.asarray(rng.normal(size=(3,)), jnp.float32)

    def f(x, offset, mask, weight, bias):
        return modulated_deform_conv2d(x, offset, mask, weight, bias, padding=1)

    check_grads(f, (x, offset, mask, weight, bias), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)
    # The offset gradient is the bilinear slope: nonzero inside the image.
    g = jax.grad(lambda o: f(x, o, mask, weight, bias).sum())(offset)
    assert float(jnp.abs(g).sum()) > 0
