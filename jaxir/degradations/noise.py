"""Additive Gaussian and Poisson (shot) noise.

Neither clips by default: the AWGN denoising benchmarks (DnCNN, Restormer, NAFNet)
keep unclipped noisy inputs, and clipping biases Poisson noise near 0 and 1.
Pass clip=True to model a saturating sensor.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxir.degradations._random import Param, check_images, check_param, image_keys, sample_param


def gaussian_noise(key: jax.Array, images: jax.Array, *, sigma: Param = 25.0 / 255.0,
                   clip: bool = False) -> jax.Array:
    """x + sigma * N(0, 1), sigma in [0, 1] intensity units (25/255 for the usual level 25).

    `sigma` may be a (low, high) range, drawn once per image. `key` is one key or
    one key per image.
    """
    images = check_images(images)
    sigma = check_param("sigma", sigma, low=0.0)

    def one(k, image):
        k_sigma, k_noise = jax.random.split(k)
        return image + sample_param(k_sigma, sigma) * jax.random.normal(k_noise, image.shape, jnp.float32)

    out = jax.vmap(one)(image_keys(key, images.shape[0]), images)
    return jnp.clip(out, 0.0, 1.0) if clip else out


def poisson_noise(key: jax.Array, images: jax.Array, *, peak: Param = 30.0, clip: bool = False) -> jax.Array:
    """Shot noise Poisson(peak * x) / peak: an intensity of 1 collects `peak` photons.

    The result keeps the mean x and has variance x / peak. `peak` may be a
    (low, high) range, drawn once per image.
    """
    images = check_images(images)
    peak = check_param("peak", peak, low=0.0, low_inclusive=False)

    def one(k, image):
        k_peak, k_noise = jax.random.split(k)
        scale = sample_param(k_peak, peak)
        rate = jnp.maximum(image, 0.0) * scale
        return jax.random.poisson(k_noise, rate, image.shape).astype(jnp.float32) / scale

    out = jax.vmap(one)(image_keys(key, images.shape[0]), images)
    return jnp.clip(out, 0.0, 1.0) if clip else out
