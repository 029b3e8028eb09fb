"""FFT-based ops: PSF -> OTF and non-blind Wiener deconvolution."""

from __future__ import annotations

import jax
import jax.numpy as jnp

WIENER_BOUNDARIES = ("reflect", "periodic", "edge")


def psf_to_otf(kernel: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Optical transfer function of a PSF, as MATLAB's psf2otf.

    The (..., k, k) kernel is zero-padded to `shape` = (H, W) and circularly shifted so
    its centre (index k // 2) lands on (0, 0); returns its complex64 2-D FFT (..., H, W).
    Multiplying an image's FFT by it is a circular convolution matching
    `jaxir.degradations.convolve` (true convolution, centre k // 2).
    """
    kernel = jnp.asarray(kernel, jnp.float32)
    kh, kw = kernel.shape[-2:]
    height, width = shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} is larger than the OTF size {height}x{width}")
    pad = [(0, 0)] * (kernel.ndim - 2) + [(0, height - kh), (0, width - kw)]
    padded = jnp.pad(kernel, pad)
    centred = jnp.roll(padded, shift=(-(kh // 2), -(kw // 2)), axis=(-2, -1))
    return jnp.fft.fft2(centred).astype(jnp.complex64)


def _extend(images: jax.Array, boundary: str, margin: int) -> tuple[jax.Array, tuple[int, int]]:
    """Pads images (N, H, W, C) so their periodic extension has no jumps; returns the
    padded stack and the (top, left) offset of the original."""
    _, height, width, _ = images.shape
    if boundary == "periodic":
        return images, (0, 0)
    if boundary == "reflect":
        # Appending the mirror (without repeating the edge pixels) makes one period of the
        # even extension: the periodic image is continuous everywhere, and for a symmetric
        # kernel that blurred with reflect boundaries the circular model is exact.
        pads = ((0, 0), (0, max(height - 2, 0)), (0, max(width - 2, 0)), (0, 0))
        return jnp.pad(images, pads, mode="reflect"), (0, 0)
    # 'edge': a margin that starts as the replicated edge and blends smoothly (raised cosine)
    # into the opposite edge, so the periodic extension has no jump anywhere.
    extended = _taper_margin(images, axis=1, margin=margin)
    return _taper_margin(extended, axis=2, margin=margin), (0, 0)


def _taper_margin(images: jax.Array, axis: int, margin: int) -> jax.Array:
    first = jax.lax.slice_in_dim(images, 0, 1, axis=axis)
    last = jax.lax.slice_in_dim(images, images.shape[axis] - 1, images.shape[axis], axis=axis)
    t = (jnp.arange(1, margin + 1, dtype=jnp.float32) / (margin + 1))
    weight_last = 0.5 * (1.0 + jnp.cos(jnp.pi * t))
    shape = [1] * images.ndim
    shape[axis] = margin
    weight_last = weight_last.reshape(shape)
    blend = weight_last * last + (1.0 - weight_last) * first
    return jnp.concatenate([images, blend], axis=axis)


def wiener_deconvolve(blurred: jax.Array, kernel: jax.Array, reg=1e-3, boundary: str = "reflect") -> jax.Array:
    """Non-blind Wiener deconvolution X = conj(K) Y / (|K|^2 + reg) per image and channel.

    Args:
      blurred: (N, H, W, C) float images.
      kernel: (k, k) for every image or (N, k, k) per image; centre at index k // 2,
        the convention of `jaxir.degradations.convolve`.
      reg: noise-to-signal power ratio (> 0; ~1e-4 for little noise, larger for more),
        a scalar or one per image (N,).
      boundary: how the image is extended before the FFT, to limit ringing:
        'reflect' mirrors it to twice its size (seamless; exact for symmetric kernels
        on reflect-blurred images); 'edge' appends a margin (twice the kernel size, at
        least 16 px) that continues the edge pixels and fades into the opposite edge,
        which suits asymmetric (motion) kernels and non-reflect blur; 'periodic' assumes
        the blur was circular and does not pad.

    Returns:
      (N, H, W, C) float32 estimate of the sharp images (not clipped).
    """
    blurred = jnp.asarray(blurred, jnp.float32)
    if blurred.ndim != 4:
        raise ValueError(f"blurred must be (N, H, W, C), got shape {blurred.shape}")
    if boundary not in WIENER_BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; valid: {', '.join(WIENER_BOUNDARIES)}")
    n, height, width, _ = blurred.shape
    kernel = jnp.asarray(kernel, jnp.float32)
    if kernel.ndim == 2:
        kernel = kernel[None]
    elif kernel.ndim != 3 or kernel.shape[0] != n:
        raise ValueError(f"kernel must be (k, k) or (N={n}, k, k), got shape {kernel.shape}")
    if boundary == "reflect" and (height < 2 or width < 2):
        raise ValueError(f"reflect boundary needs images of at least 2x2, got {height}x{width}")
    reg = jnp.asarray(reg, jnp.float32)
    if reg.ndim not in (0, 1) or (reg.ndim == 1 and reg.shape[0] != n):
        raise ValueError(f"reg must be a scalar or one value per image ({n},), got shape {reg.shape}")

    margin = max(2 * max(kernel.shape[-2:]), 16)
    padded, (top, left) = _extend(blurred, boundary, margin)
    padded_shape = padded.shape[1:3]
    otf = psf_to_otf(kernel, padded_shape)[..., None]  # (N or 1, Hp, Wp, 1)
    spectrum = jnp.fft.fft2(padded, axes=(1, 2))
    reg = reg.reshape((-1, 1, 1, 1))
    estimate = jnp.conj(otf) * spectrum / (jnp.abs(otf) ** 2 + reg)
    restored = jnp.real(jnp.fft.ifft2(estimate, axes=(1, 2)))
    return restored[:, top:top + height, left:left + width, :].astype(jnp.float32)
