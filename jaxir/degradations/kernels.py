"""Blur kernels: Gaussian (isotropic/anisotropic), defocus disk, straight line, camera-shake motion.

Every kernel is a (size, size) float32 array that sums to 1 with its centre at
index size // 2 (sizes are odd). Sizes are static; the shape parameters (sigma,
radius, angle, length) may be traced, so the functions jit and vmap.
Angles are in degrees.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxir.degradations._random import Param, check_param, sample_param


def check_kernel_size(size: int) -> int:
    if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be a positive odd int, got {size!r}")
    return size


def _grid(size: int) -> tuple[jax.Array, jax.Array]:
    """Pixel offsets (y, x) from the kernel centre."""
    r = jnp.arange(size, dtype=jnp.float32) - (size // 2)
    return jnp.meshgrid(r, r, indexing="ij")


def _normalise(kernel: jax.Array) -> jax.Array:
    return (kernel / jnp.sum(kernel)).astype(jnp.float32)


def gaussian_kernel(size: int, sigma) -> jax.Array:
    """Isotropic Gaussian exp(-r^2 / (2 sigma^2)) on a size x size grid, normalised."""
    return anisotropic_gaussian_kernel(size, sigma, sigma, 0.0)


def anisotropic_gaussian_kernel(size: int, sigma_x, sigma_y, angle=0.0) -> jax.Array:
    """Gaussian with standard deviations sigma_x, sigma_y along its own axes, rotated by
    `angle` degrees (counter-clockwise as displayed, y pointing down)."""
    check_kernel_size(size)
    y, x = _grid(size)
    theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    # Coordinates in the kernel's principal frame (image y axis points down).
    u = cos * x - sin * y
    v = sin * x + cos * y
    sx = jnp.maximum(jnp.asarray(sigma_x, jnp.float32), 1e-6)
    sy = jnp.maximum(jnp.asarray(sigma_y, jnp.float32), 1e-6)
    log_k = -0.5 * ((u / sx) ** 2 + (v / sy) ** 2)
    # Subtracting the max keeps tiny sigmas from underflowing to an all-zero kernel.
    return _normalise(jnp.exp(log_k - jnp.max(log_k)))


def disk_kernel(size: int, radius) -> jax.Array:
    """Defocus (pillbox) kernel of the given radius in pixels.

    The edge is antialiased with a one-pixel linear ramp: weight
    clip(radius + 0.5 - distance, 0, 1), so pixels with distance <= radius - 0.5
    get full weight and those with distance >= radius + 0.5 get none.
    Radius 0 gives a delta.
    """
    check_kernel_size(size)
    y, x = _grid(size)
    dist = jnp.sqrt(x * x + y * y)
    coverage = jnp.clip(jnp.asarray(radius, jnp.float32) + 0.5 - dist, 0.0, 1.0)
    return _normalise(coverage)


def splat_points(points: jax.Array, weights: jax.Array, size: int) -> jax.Array:
    """Bilinearly splats (y, x) points in pixel coordinates onto a size x size grid.

    Points are (n, 2); contributions outside the grid are dropped.
    """
    base = jnp.floor(points)
    frac = points - base
    iy, ix = base[:, 0].astype(jnp.int32), base[:, 1].astype(jnp.int32)
    fy, fx = frac[:, 0], frac[:, 1]
    grid = jnp.zeros((size, size), jnp.float32)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            grid = grid.at[iy + dy, ix + dx].add(weights * wy * wx, mode="drop")
    return grid


def line_kernel(size: int, length, angle) -> jax.Array:
    """Uniform linear-motion kernel: a segment of `length` pixels through the centre,
    `angle` degrees from the vertical axis (positive leans the top to the right),
    rasterised by bilinear splatting of evenly spaced samples. Length 0 is a delta;
    lengths beyond size - 1 are clipped to it."""
    check_kernel_size(size)
    num = 4 * size  # sample spacing <= 0.25 px for any length that fits
    t = jnp.linspace(-0.5, 0.5, num, dtype=jnp.float32)
    length = jnp.clip(jnp.asarray(length, jnp.float32), 0.0, size - 1.0)
    theta = jnp.deg2rad(jnp.asarray(angle, jnp.float32))
    centre = size // 2
    py = centre - t * length * jnp.cos(theta)
    px = centre + t * length * jnp.sin(theta)
    return _normalise(splat_points(jnp.stack([py, px], axis=1), jnp.ones((num,), jnp.float32), size))


def motion_kernel(key: jax.Array, size: int, *, length: Param | None = None,
                  anxiety: Param = (0.0, 0.1), num_steps: int | None = None) -> jax.Array:
    """Random camera-shake kernel (trajectory model of Boracchi & Foi 2012, as used by DeblurGAN).

    A 2-D trajectory of `num_steps` samples, each step of equal length, is grown by a
    random walk whose velocity has inertia: every step it gets a Gaussian shake and a
    centripetal pull toward the start (both scaled by `anxiety`), and with a small
    probability an impulsive reversal. The trajectory is shifted so its centroid sits on
    the kernel centre (so blurring does not translate the image), shrunk if needed to
    fit the grid, rasterised by bilinear splatting and normalised.

    Args:
      key: PRNG key.
      size: odd kernel size (static).
      length: total path length in pixels, fixed or a (low, high) range; defaults to
        (size / 4, size - 1).
      anxiety: shake strength, fixed or range (DeblurGAN draws it from [0, 0.1]).
      num_steps: trajectory samples (static); defaults to 4 * size so steps stay
        below a pixel and the splatted path is continuous.
    """
    check_kernel_size(size)
    if length is None:
        length = (size / 4.0, size - 1.0)
    length = check_param("length", length, low=0.0)
    anxiety = check_param("anxiety", anxiety, low=0.0)
    num_steps = 4 * size if num_steps is None else num_steps
    if not isinstance(num_steps, int) or num_steps < 2:
        raise ValueError(f"num_steps must be an int >= 2, got {num_steps!r}")

    keys = jax.random.split(key, 9)
    path_length = sample_param(keys[0], length)
    shake = sample_param(keys[1], anxiety)
    centripetal = jax.random.uniform(keys[2], (), minval=0.0, maxval=0.7)
    p_impulse = jax.random.uniform(keys[3], (), minval=0.0, maxval=0.2) * shake
    gaussian_shake = jax.random.uniform(keys[4], (), minval=0.0, maxval=10.0)
    heading = jax.random.uniform(keys[5], (), minval=0.0, maxval=2.0 * jnp.pi)
    step = path_length / (num_steps - 1)

    n = num_steps - 1
    impulse_draw = jax.random.uniform(keys[6], (n,))
    turn_draw = jax.random.uniform(keys[7], (n,), minval=-0.5, maxval=0.5)
    shake_noise = jax.random.normal(keys[8], (n, 2))

    def rotate(vec, angle):
        c, s = jnp.cos(angle), jnp.sin(angle)
        return jnp.stack([c * vec[0] - s * vec[1], s * vec[0] + c * vec[1]])

    def walk(carry, inputs):
        pos, vel = carry
        draw, turn, gauss = inputs
        # Impulsive shake: a kick roughly opposite to the current motion.
        kick = jnp.where(draw < p_impulse, 2.0 * rotate(vel, jnp.pi + turn), 0.0)
        dvel = kick + shake * (gaussian_shake * gauss - centripetal * pos) * step
        vel = vel + dvel
        vel = vel / jnp.maximum(jnp.linalg.norm(vel), 1e-12) * step
        pos = pos + vel
        return (pos, vel), pos

    start = jnp.zeros((2,), jnp.float32)
    vel0 = jnp.stack([jnp.cos(heading), jnp.sin(heading)]) * step
    _, path = jax.lax.scan(walk, (start, vel0), (impulse_draw, turn_draw, shake_noise))
    path = jnp.concatenate([start[None], path], axis=0)

    path = path - jnp.mean(path, axis=0)
    half = (size - 1) / 2.0
    reach = jnp.max(jnp.abs(path))
    path = path * jnp.minimum(1.0, half / jnp.maximum(reach, 1e-12))
    points = path + (size // 2)
    return _normalise(splat_points(points, jnp.ones((num_steps,), jnp.float32), size))
