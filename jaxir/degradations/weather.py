"""Rain streaks and haze from physical image-formation models."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxir.degradations import kernels as K
from jaxir.degradations._random import Param, check_images, check_param, image_keys, param_max, sample_param
from jaxir.degradations.blur import convolve_image


def random_depth(key: jax.Array, height: int, width: int, *, grid: int = 4) -> jax.Array:
    """A smooth random depth map (H, W) in [0, 1], larger meaning farther.

    Half a top-to-bottom ramp (upper parts of scenes tend to be farther away), half
    a random field on a grid x grid lattice upsampled bicubically, rescaled to [0, 1].
    """
    ramp = jnp.linspace(1.0, 0.0, height, dtype=jnp.float32)[:, None] * jnp.ones((1, width), jnp.float32)
    coarse = jax.random.uniform(key, (grid, grid), jnp.float32)
    field = jax.image.resize(coarse, (height, width), method="cubic")
    depth = 0.5 * ramp + 0.5 * field
    low, high = jnp.min(depth), jnp.max(depth)
    return (depth - low) / jnp.maximum(high - low, 1e-6)


def haze(key: jax.Array, images: jax.Array, *, beta: Param = (0.6, 1.8), atmospheric_light: Param = (0.7, 1.0),
         depth: jax.Array | None = None) -> jax.Array:
    """Atmospheric scattering I = J t + A (1 - t), t = exp(-beta d).

    Args:
      key: one key or one per image.
      images: clean J, (N, H, W, C) in [0, 1].
      beta: scattering coefficient, fixed or (low, high) drawn per image.
      atmospheric_light: grey airlight A in [0, 1], fixed or range, per image.
      depth: (N, H, W) or (N, H, W, 1) depth maps (any non-negative scale; the
        defaults for beta assume roughly [0, 1]); a smooth random one per image
        (`random_depth`) when None.

    The output is a convex combination of J and A, so it stays in [0, 1] without clipping.
    """
    images = check_images(images)
    n, h, w, _ = images.shape
    beta = check_param("beta", beta, low=0.0)
    atmospheric_light = check_param("atmospheric_light", atmospheric_light, low=0.0, high=1.0)
    if depth is not None:
        depth = jnp.asarray(depth, jnp.float32)
        if depth.ndim == 4 and depth.shape[-1] == 1:
            depth = depth[..., 0]
        if depth.shape != (n, h, w):
            raise ValueError(f"depth must be (N, H, W) or (N, H, W, 1) matching images {images.shape}, "
                             f"got {depth.shape}")

    def one(k, image, d):
        k_depth, k_beta, k_light = jax.random.split(k, 3)
        if d is None:
            d = random_depth(k_depth, h, w)
        t = jnp.exp(-sample_param(k_beta, beta) * d)[..., None]
        return image * t + sample_param(k_light, atmospheric_light) * (1.0 - t)

    keys = image_keys(key, n)
    if depth is None:
        return jax.vmap(lambda k, image: one(k, image, None))(keys, images)
    return jax.vmap(one)(keys, images, depth)


def rain_streaks(key: jax.Array, height: int, width: int, *, density: Param, length: Param, angle: Param,
                 intensity: Param, kernel_size: int) -> jax.Array:
    """A streak layer S (H, W) in [0, 1]: sparse random seeds smeared by a line kernel.

    `density` is the fraction of pixels that seed a streak; each seed gets a random
    brightness in [0.5, 1] and is spread along a segment of `length` pixels at
    `angle` degrees from vertical; `intensity` scales the layer.
    """
    k_seed, k_amp, k_len, k_ang, k_int, k_den = jax.random.split(key, 6)
    seed_density = sample_param(k_den, density)
    seeds = jax.random.uniform(k_seed, (height, width)) < seed_density
    amplitude = jax.random.uniform(k_amp, (height, width), minval=0.5, maxval=1.0)
    streak_length = sample_param(k_len, length)
    kernel = K.line_kernel(kernel_size, streak_length, sample_param(k_ang, angle))
    smeared = convolve_image((seeds * amplitude)[..., None], kernel, "zero")[..., 0]
    # The kernel sums to 1; scaling by the streak's pixel count restores the seed's brightness along it.
    streaks = smeared * jnp.maximum(streak_length, 1.0)
    return jnp.clip(sample_param(k_int, intensity) * streaks, 0.0, 1.0)


def rain(key: jax.Array, images: jax.Array, *, density: Param = (0.001, 0.01), length: Param = (10.0, 30.0),
         angle: Param = (-30.0, 30.0), intensity: Param = (0.6, 1.0), beta: Param = (0.0, 0.5),
         atmospheric_light: Param = (0.7, 1.0)) -> jax.Array:
    """Rain by the heavy-rain model O = T (x + S) + (1 - T) A (Li et al., CVPR 2019).

    S is the streak layer (`rain_streaks`, the same on every channel: rain is
    colourless), T = exp(-beta d) the transmission of the rain veil over a smooth
    random depth d, and A a grey atmospheric light. Streak angles are degrees from
    vertical. Every parameter is fixed or a (low, high) range drawn per image.
    The output is clipped to [0, 1]: adding streaks can saturate the sensor.
    """
    images = check_images(images)
    n, h, w, _ = images.shape
    density = check_param("density", density, low=0.0, high=1.0)
    length = check_param("length", length, low=0.0)
    angle = check_param("angle", angle)
    intensity = check_param("intensity", intensity, low=0.0)
    beta = check_param("beta", beta, low=0.0)
    atmospheric_light = check_param("atmospheric_light", atmospheric_light, low=0.0, high=1.0)
    kernel_size = 2 * math.ceil(param_max(length) / 2.0) + 1

    def one(k, image):
        k_streak, k_depth, k_beta, k_light = jax.random.split(k, 4)
        streaks = rain_streaks(k_streak, h, w, density=density, length=length, angle=angle,
                               intensity=intensity, kernel_size=kernel_size)
        t = jnp.exp(-sample_param(k_beta, beta) * random_depth(k_depth, h, w))[..., None]
        out = t * (image + streaks[..., None]) + (1.0 - t) * sample_param(k_light, atmospheric_light)
        return jnp.clip(out, 0.0, 1.0)

    return jax.vmap(one)(image_keys(key, n), images)
