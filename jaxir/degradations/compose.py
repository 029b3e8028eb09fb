"""`synthesize`: applies a degradation spec (config data) to clean images on device."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxir.degradations.blur import defocus_blur, gaussian_blur, motion_blur
from jaxir.degradations.lowlight import low_light
from jaxir.degradations.noise import gaussian_noise, poisson_noise
from jaxir.degradations.weather import haze, rain

# Every op is fn(keys, images, **params) with one key per image.
OPS: dict[str, Callable[..., jax.Array]] = {
    "gaussian_noise": gaussian_noise,
    "poisson_noise": poisson_noise,
    "gaussian_blur": gaussian_blur,
    "motion_blur": motion_blur,
    "defocus_blur": defocus_blur,
    "rain": rain,
    "haze": haze,
    "low_light": low_light,
}
# Array arguments cannot come from config data.
_NOT_CONFIGURABLE = {"haze": {"depth"}}


def op_params(name: str) -> dict[str, Any]:
    """The configurable parameters of op `name` and their defaults."""
    signature = inspect.signature(OPS[name])
    return {
        p.name: p.default for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _NOT_CONFIGURABLE.get(name, ())
    }


def _as_dict(record: Any, index: int) -> dict[str, Any]:
    if hasattr(record, "to_dict"):  # ml_collections.ConfigDict / FrozenConfigDict
        record = record.to_dict()
    if not isinstance(record, Mapping):
        raise ValueError(f"degradation spec entry {index} must be a dict with a 'name', got {record!r}")
    return dict(record)


def parse_spec(spec: Sequence[Any]) -> list[tuple[str, dict[str, Any]]]:
    """Checks op names and parameter names; returns [(name, params), ...].

    Parameter values are checked by each op when it runs (at trace time).
    """
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence):
        raise ValueError(f"degradation spec must be a list of dicts, got {type(spec).__name__}")
    parsed = []
    for index, record in enumerate(spec):
        params = _as_dict(record, index)
        name = params.pop("name", None)
        if name not in OPS:
            hint = (" ('jpeg' needs a codec and runs on the host: use "
                    "jaxir.degradations.jpeg_compress_np in the data pipeline)") if name == "jpeg" else ""
            raise ValueError(f"degradation spec entry {index}: unknown op {name!r}{hint}; "
                             f"valid names: {', '.join(OPS)}")
        allowed = op_params(name)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ValueError(f"degradation '{name}': unknown parameter(s) {unknown}; "
                             f"valid: {', '.join(allowed)}")
        for key, value in params.items():
            if isinstance(allowed[key], bool) and not isinstance(value, bool):
                raise ValueError(f"degradation '{name}': parameter '{key}' must be True or False, got {value!r}")
            if isinstance(value, list):
                params[key] = tuple(value)
        parsed.append((name, params))
    return parsed


def record_keys(seeds: jax.Array) -> jax.Array:
    """One PRNG key per record, a function of its seed alone."""
    seeds = jnp.asarray(seeds)
    if seeds.ndim != 1 or not jnp.issubdtype(seeds.dtype, jnp.integer):
        raise ValueError(f"seeds must be a 1-D integer (uint32) array, got dtype {seeds.dtype} shape {seeds.shape}")
    return jax.vmap(jax.random.key)(seeds.astype(jnp.uint32))


def synthesize(spec: Sequence[Any], clean: jax.Array, seeds: jax.Array) -> jax.Array:
    """Degrades clean images by the ops of `spec`, in order.

    Args:
      spec: list of dicts `{'name': op, **params}` (see `OPS` and `op_params`), e.g.
        `[{'name': 'motion_blur', 'kernel_size': 21}, {'name': 'gaussian_noise', 'sigma': 25/255}]`.
        A (low, high) pair for a numeric parameter means a per-image uniform draw.
      clean: (N, H, W, C) float32 in [0, 1].
      seeds: (N,) uint32, one per record. Op i of record r uses the key
        fold_in(key(seeds[r]), i), so a record degrades the same way in any batch.

    Returns:
      (N, H, W, C) float32. Clipping is per op: rain and low_light clip to [0, 1];
      blurs and haze stay in range by construction; noise ops clip only with clip=True.

    Jit with the spec closed over (it is config data, not an array), e.g.
    `jax.jit(functools.partial(synthesize, spec))` or `build_synthesizer(spec)`.
    """
    ops = parse_spec(spec)
    clean = jnp.asarray(clean, jnp.float32)
    if clean.ndim != 4:
        raise ValueError(f"clean images must be (N, H, W, C), got shape {clean.shape}")
    keys = record_keys(seeds)
    if keys.shape[0] != clean.shape[0]:
        raise ValueError(f"got {keys.shape[0]} seeds for {clean.shape[0]} images")
    images = clean
    for index, (name, params) in enumerate(ops):
        op_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, index)
        images = OPS[name](op_keys, images, **params)
    return images


def build_synthesizer(spec: Sequence[Any]) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """A jitted `fn(clean, seeds)` for a fixed spec; names are checked now."""
    parse_spec(spec)
    return jax.jit(functools.partial(synthesize, spec))
