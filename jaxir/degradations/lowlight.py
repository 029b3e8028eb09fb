"""Synthetic low-light images: gamma darkening, exposure scaling and sensor noise."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxir.degradations._random import Param, check_images, check_param, image_keys, sample_param


def low_light(key: jax.Array, images: jax.Array, *, gamma: Param = (1.5, 3.0), scale: Param = (0.4, 0.9),
              read_noise: Param = (0.0, 0.02), peak: Param | None = None) -> jax.Array:
    """y = clip(Poisson(scale * x**gamma) + N(0, read_noise^2), 0, 1).

    Args:
      key: one key or one per image.
      images: (N, H, W, C) in [0, 1].
      gamma: exponent > 0 (> 1 darkens mid-tones more than highlights), fixed or range.
      scale: exposure multiplier in (0, 1], fixed or range.
      read_noise: Gaussian read-noise std in [0, 1] units, fixed or range.
      peak: photons at full intensity for shot noise (see `poisson_noise`); None
        for no shot noise.

    Every range is drawn once per image. The output is clipped to [0, 1] as a sensor would.
    """
    images = check_images(images)
    gamma = check_param("gamma", gamma, low=0.0, low_inclusive=False)
    scale = check_param("scale", scale, low=0.0, high=1.0, low_inclusive=False)
    read_noise = check_param("read_noise", read_noise, low=0.0)
    if peak is not None:
        peak = check_param("peak", peak, low=0.0, low_inclusive=False)

    def one(k, image):
        k_gamma, k_scale, k_read, k_peak, k_shot, k_noise = jax.random.split(k, 6)
        dark = sample_param(k_scale, scale) * jnp.clip(image, 0.0, 1.0) ** sample_param(k_gamma, gamma)
        if peak is not None:
            photons = sample_param(k_peak, peak)
            dark = jax.random.poisson(k_shot, dark * photons, image.shape).astype(jnp.float32) / photons
        noisy = dark + sample_param(k_read, read_noise) * jax.random.normal(k_noise, image.shape, jnp.float32)
        return jnp.clip(noisy, 0.0, 1.0)

    return jax.vmap(one)(image_keys(key, images.shape[0]), images)
