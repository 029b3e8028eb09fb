"""Kernel convolution and random blur degradations (Gaussian, motion, defocus).

Blurs need no clipping: the kernels are non-negative and sum to 1, so every output
pixel is a convex combination of input pixels and stays in the input's range.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxir.degradations import kernels as K
from jaxir.degradations._random import Param, check_images, check_param, image_keys, param_max, sample_param

BOUNDARIES = ("reflect", "edge", "zero", "periodic")
_PAD_MODES = {"reflect": "reflect", "edge": "edge", "zero": "constant", "periodic": "wrap"}


def _check_boundary(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; valid: {', '.join(BOUNDARIES)}")
    return boundary


def convolve_image(image: jax.Array, kernel: jax.Array, boundary: str) -> jax.Array:
    """True 2-D convolution of one (H, W, C) image with a (k, k) kernel centred at k // 2."""
    kh, kw = kernel.shape
    # Left/top pads of k-1-c and right/bottom pads of c put the kernel centre c = k//2
    # on the output pixel for a flipped-kernel correlation, i.e. a convolution.
    pads = ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2), (0, 0))
    padded = jnp.pad(image, pads, mode=_PAD_MODES[boundary])
    channels = image.shape[-1]
    flipped = kernel[::-1, ::-1].astype(image.dtype)
    rhs = jnp.broadcast_to(flipped[:, :, None, None], (kh, kw, 1, channels))
    out = jax.lax.conv_general_dilated(
        padded[None], rhs, window_strides=(1, 1), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )
    return out[0]


def convolve(images: jax.Array, kernel: jax.Array, boundary: str = "reflect") -> jax.Array:
    """Convolves each image with its kernel, the same kernel on every channel.

    Args:
      images: (N, H, W, C) float32.
      kernel: (k, k) shared by all images, or (N, k, k), one per image. The kernel
        centre is index k // 2 (so odd sizes are centred exactly).
      boundary: 'reflect' (mirror without repeating the edge pixel), 'edge'
        (replicate), 'zero' or 'periodic'.
    """
    images = check_images(images)
    _check_boundary(boundary)
    kernel = jnp.asarray(kernel, jnp.float32)
    if kernel.ndim not in (2, 3) or (kernel.ndim == 3 and kernel.shape[0] != images.shape[0]):
        raise ValueError(f"kernel must be (k, k) or (N={images.shape[0]}, k, k), got shape {kernel.shape}")
    kh, kw = kernel.shape[-2:]
    if boundary == "reflect" and (kh // 2 >= images.shape[1] or kw // 2 >= images.shape[2]):
        raise ValueError(
            f"reflect boundary needs images larger than half the kernel; kernel {kh}x{kw}, "
            f"images {images.shape[1]}x{images.shape[2]}"
        )
    in_axes = (0, 0 if kernel.ndim == 3 else None, None)
    return jax.vmap(convolve_image, in_axes=in_axes)(images, kernel, boundary)


def gaussian_blur(key: jax.Array, images: jax.Array, *, kernel_size: int = 21, sigma: Param | None = None,
                  sigma_x: Param | None = None, sigma_y: Param | None = None, angle: Param = (0.0, 180.0),
                  boundary: str = "reflect") -> jax.Array:
    """Gaussian blur with a kernel drawn per image.

    Give `sigma` (fixed or (low, high)) for an isotropic kernel, or `sigma_x` and
    `sigma_y` (each fixed or a range) plus `angle` in degrees for an anisotropic one.
    With none of them, sigma is drawn from (0.2, 3.0), Real-ESRGAN's first-stage range.
    """
    images = check_images(images)
    if sigma is not None and (sigma_x is not None or sigma_y is not None):
        raise ValueError("gaussian_blur takes either 'sigma' (isotropic) or 'sigma_x' and 'sigma_y', not both")
    if (sigma_x is None) != (sigma_y is None):
        raise ValueError("anisotropic gaussian_blur needs both 'sigma_x' and 'sigma_y'")
    K.check_kernel_size(kernel_size)
    isotropic = sigma_x is None
    if isotropic:
        sx = sy = check_param("sigma", (0.2, 3.0) if sigma is None else sigma, low=0.0, low_inclusive=False)
    else:
        sx = check_param("sigma_x", sigma_x, low=0.0, low_inclusive=False)
        sy = check_param("sigma_y", sigma_y, low=0.0, low_inclusive=False)
    angle = check_param("angle", angle)

    def make(k):
        k1, k2, k3 = jax.random.split(k, 3)
        if isotropic:
            return K.gaussian_kernel(kernel_size, sample_param(k1, sx))
        return K.anisotropic_gaussian_kernel(kernel_size, sample_param(k1, sx), sample_param(k2, sy),
                                             sample_param(k3, angle))

    kernels = jax.vmap(make)(image_keys(key, images.shape[0]))
    return convolve(images, kernels, boundary)


def motion_blur(key: jax.Array, images: jax.Array, *, kernel_size: int = 21, length: Param | None = None,
                anxiety: Param = (0.0, 0.1), num_steps: int | None = None,
                boundary: str = "reflect") -> jax.Array:
    """Blur by a random camera-shake trajectory kernel per image (see `kernels.motion_kernel`)."""
    images = check_images(images)
    kernels = jax.vmap(lambda k: K.motion_kernel(k, kernel_size, length=length, anxiety=anxiety,
                                                 num_steps=num_steps))(image_keys(key, images.shape[0]))
    return convolve(images, kernels, boundary)


def defocus_blur(key: jax.Array, images: jax.Array, *, radius: Param = (1.0, 5.0), kernel_size: int | None = None,
                 boundary: str = "reflect") -> jax.Array:
    """Defocus blur by an antialiased disk of `radius` pixels (fixed or range) per image.

    `kernel_size` defaults to the smallest odd size holding the largest radius.
    """
    images = check_images(images)
    radius = check_param("radius", radius, low=0.0)
    if kernel_size is None:
        kernel_size = 2 * math.ceil(param_max(radius) + 0.5) + 1
    K.check_kernel_size(kernel_size)
    kernels = jax.vmap(lambda k: K.disk_kernel(kernel_size, sample_param(k, radius)))(
        image_keys(key, images.shape[0]))
    return convolve(images, kernels, boundary)
