"""Device mesh and shardings: batch over a `data` axis, parameters replicated or FSDP-sharded.

The same code serves 1 CPU, simulated CPU devices, a GPU and a multi-host TPU slice:
every array handed to the jitted step is a global `jax.Array` laid out on one 1-D
mesh whose axis `data` spans all devices of all processes.
"""
from __future__ import annotations

from typing import Any, Mapping

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
PARAM_SHARDING_MODES = ("replicated", "fsdp")


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh over all devices (all processes), axis named `data`."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over `data`, the rest whole."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def fsdp_spec(shape: tuple[int, ...], num_shards: int, min_size: int) -> PartitionSpec:
    """Shard a parameter of at least `min_size` elements along its largest axis divisible by `num_shards`.

    Small parameters (biases, norms) and those with no divisible axis stay replicated:
    gathering them costs more than storing them.
    """
    if num_shards <= 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
        return PartitionSpec()
    for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
        if shape[axis] % num_shards == 0:
            spec = [None] * len(shape)
            spec[axis] = DATA_AXIS
            return PartitionSpec(*spec)
    return PartitionSpec()


def param_shardings(params: Any, mesh: Mesh, mode: str = "replicated", min_size: int = 2**16) -> Any:
    """A tree of NamedShardings matching `params` (arrays or ShapeDtypeStructs)."""
    if mode not in PARAM_SHARDING_MODES:
        raise ValueError(f"param_sharding must be one of {PARAM_SHARDING_MODES}, got {mode!r}")
    if mode == "replicated":
        return jax.tree.map(lambda _: replicated(mesh), params)
    num_shards = mesh.shape[DATA_AXIS]
    return jax.tree.map(lambda p: NamedSharding(mesh, fsdp_spec(tuple(p.shape), num_shards, min_size)), params)


def optimizer_shardings(tx: optax.GradientTransformation, opt_state: Any, params_shardings: Any,
                        mesh: Mesh) -> Any:
    """Optimizer state shardings: moments follow their parameter, scalars (counts) are replicated."""
    return optax.tree_map_params(
        tx, lambda _, sharding: sharding, opt_state, params_shardings,
        transform_non_params=lambda _: replicated(mesh),
    )


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Host-local numpy batch -> global arrays split over `data`.

    Each process passes its own slice of the global batch (as the train pipeline
    yields it); the global batch is their concatenation in process order.
    """
    sharding = batch_sharding(mesh)
    return {key: jax.make_array_from_process_local_data(sharding, np.asarray(value))
            for key, value in batch.items()}


def shard_full_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """A batch that every process holds whole (evaluation) -> global arrays split over `data`."""
    sharding = batch_sharding(mesh)
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        out[key] = jax.make_array_from_callback(value.shape, sharding, lambda index, v=value: v[index])
    return out


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
    devices, processes = mesh.shape[DATA_AXIS], jax.process_count()
    if global_batch % devices or global_batch % processes:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the number of devices "
                         f"({devices}) and of processes ({processes})")
