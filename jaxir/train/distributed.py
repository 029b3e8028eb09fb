"""Multi-process start-up on JAX's own distributed runtime (`jax.distributed`).

`initialize(...)` is called once, before any JAX computation, by `jaxir train`. It
decides whether this process is one of several and, if so, joins them:

1. explicit values (the CLI's `--coordinator-address/--num-processes/--process-id`);
2. the environment: `JAX_COORDINATOR_ADDRESS` with `JAX_NUM_PROCESSES` and
   `JAX_PROCESS_ID` (the names JAX reads for the address, extended to the other two);
3. a cluster JAX detects by itself: SLURM (`srun`, `SLURM_NTASKS` > 1), Open MPI
   (`mpirun`, `OMPI_COMM_WORLD_SIZE` > 1), a multi-host Cloud TPU slice
   (`TPU_WORKER_HOSTNAMES` / `TPU_PROCESS_ADDRESSES` naming several hosts);
   then `jax.distributed.initialize()` fills in everything from the cluster.

`mode='on'` forces step 3 even when no variable says "several processes" (e.g. a TPU
VM whose worker list comes only from the metadata server); `mode='off'` never
initialises. A single process needs nothing: the mesh is then its local devices.

After it, `jax.devices()` lists every process's devices, so the loop's one global
mesh spans all hosts; each process feeds its own slice of the global batch.
On CPU the cross-process collectives are Gloo (JAX's default
`jax_cpu_collectives_implementation`), which is what the 2-process test runs on.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Mapping

logger = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
ENV_ADDRESS, ENV_COUNT, ENV_ID = "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """What `initialize` will do: nothing, or `jax.distributed.initialize(**kwargs)` (None = auto-detect)."""

    distributed: bool
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    reason: str = ""

    def kwargs(self) -> dict:
        return {k: v for k, v in (("coordinator_address", self.coordinator_address),
                                  ("num_processes", self.num_processes),
                                  ("process_id", self.process_id)) if v is not None}


def _int(value, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _several(value: str | None) -> bool:
    return value is not None and value.strip() != "" and int(value) > 1


def _cluster_reason(env: Mapping[str, str]) -> str:
    """The cluster that launched several processes, or '' when none did."""
    if "SLURM_JOB_ID" in env and _several(env.get("SLURM_NTASKS") or env.get("SLURM_NPROCS")):
        return "SLURM"
    if _several(env.get("OMPI_COMM_WORLD_SIZE")):
        return "Open MPI"
    hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
    if len([h for h in hosts.split(",") if h.strip()]) > 1:
        return "Cloud TPU slice"
    return ""


def plan(mode: str = "auto", coordinator_address: str | None = None, num_processes: int | None = None,
         process_id: int | None = None, env: Mapping[str, str] | None = None) -> LaunchPlan:
    """Decide how this process starts (pure: reads `env`, defaults to os.environ)."""
    if mode not in MODES:
        raise ValueError(f"distributed mode must be one of {MODES}, got {mode!r}")
    env = os.environ if env is None else env
    if mode == "off":
        return LaunchPlan(False, reason="disabled")
    address = coordinator_address or env.get(ENV_ADDRESS) or None
    count = num_processes if num_processes is not None else _int(env.get(ENV_COUNT), ENV_COUNT)
    index = process_id if process_id is not None else _int(env.get(ENV_ID), ENV_ID)
    given = [v is not None for v in (address, count, index)]
    if all(given):
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"process id {index} must be in [0, {count}) processes")
        if count == 1 and mode == "auto":
            return LaunchPlan(False, reason="one process")
        return LaunchPlan(True, address, count, index, reason="explicit coordinator")
    cluster = _cluster_reason(env)
    if cluster or mode == "on":
        # JAX's cluster detection supplies whatever was not given.
        return LaunchPlan(True, address, count, index, reason=cluster or "forced")
    if any(given):
        missing = [n for n, g in zip((ENV_ADDRESS, ENV_COUNT, ENV_ID), given) if not g]
        raise ValueError("a multi-process launch needs the coordinator address, the number of processes and "
                         f"this process's id; missing {', '.join(missing)} (flags or environment)")
    return LaunchPlan(False, reason="one process")


def initialize(mode: str = "auto", coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> LaunchPlan:
    """Join the other processes of a multi-process launch (no-op for a single process or when done already)."""
    import jax

    launch = plan(mode, coordinator_address, num_processes, process_id)
    if not launch.distributed or jax.distributed.is_initialized():
        return launch
    logger.info("jax.distributed.initialize (%s): %s", launch.reason, launch.kwargs() or "auto-detected")
    jax.distributed.initialize(**launch.kwargs())
    logger.info("process %d of %d; %d local / %d global devices", jax.process_index(), jax.process_count(),
                jax.local_device_count(), jax.device_count())
    return launch
