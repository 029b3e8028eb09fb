"""Shared helpers: per-image PRNG keys and fixed-or-ranged parameters."""

from __future__ import annotations

import numbers
from typing import Sequence, Union

import jax
import jax.numpy as jnp

# A parameter is either fixed (a number) or sampled uniformly per image from (low, high).
Param = Union[float, Sequence[float]]


def image_keys(key: jax.Array, num_images: int) -> jax.Array:
    """Returns one typed PRNG key per image.

    `key` may be a single key (split into `num_images`) or already a batch of
    `num_images` keys (used as is, which is how `synthesize` keeps each record's
    randomness independent of the batch it sits in). Raw uint32 keys are accepted.
    """
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.dtype != jnp.uint32 or key.shape[-1:] != (2,):
            raise ValueError(
                f"expected a PRNG key (jax.random.key) or raw uint32 key data of shape (..., 2), "
                f"got dtype {key.dtype} shape {key.shape}"
            )
        key = jax.random.wrap_key_data(key)
    if key.ndim == 0:
        return jax.random.split(key, num_images)
    if key.shape == (num_images,):
        return key
    raise ValueError(f"expected a single key or {num_images} keys (one per image), got key shape {key.shape}")


def check_param(name: str, value: Param, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True) -> float | tuple[float, float]:
    """Validates a fixed value or a (low, high) range; returns a float or a tuple of floats."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values = (float(value),)
        result: float | tuple[float, float] = float(value)
    elif (isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2
          and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)):
        values = (float(value[0]), float(value[1]))
        if values[0] > values[1]:
            raise ValueError(f"parameter '{name}': range {tuple(value)} has low > high")
        result = values
    else:
        raise ValueError(f"parameter '{name}' must be a number or a (low, high) pair, got {value!r}")
    for v in values:
        if low is not None and (v < low if low_inclusive else v <= low):
            bound = ">=" if low_inclusive else ">"
            raise ValueError(f"parameter '{name}' must be {bound} {low}, got {value!r}")
        if high is not None and v > high:
            raise ValueError(f"parameter '{name}' must be <= {high}, got {value!r}")
    return result


def param_max(value: float | tuple[float, float]) -> float:
    return value[1] if isinstance(value, tuple) else value


def sample_param(key: jax.Array, value: float | tuple[float, float]) -> jax.Array:
    """A scalar: the fixed value, or a uniform draw from the (low, high) range."""
    if isinstance(value, tuple):
        return jax.random.uniform(key, (), jnp.float32, value[0], value[1])
    return jnp.asarray(value, jnp.float32)


def check_images(images: jax.Array) -> jax.Array:
    images = jnp.asarray(images, jnp.float32)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, H, W, C), got shape {images.shape}")
    return images
