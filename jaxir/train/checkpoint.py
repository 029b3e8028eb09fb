"""Orbax checkpoints of the train state together with the Grain iterator state.

One `CheckpointManager` in `<workdir>/checkpoints`; each step directory holds two
items saved together (composite args): `state` (the TrainState: step, params,
optimizer state, EMA, batch statistics, RNG key, rejected-step count) and `data`
(the Grain iterator position, one JSON file per process). Orbax writes a step into
a temporary directory and renames it when finalised, so a killed run never leaves
a half-written checkpoint that restore would pick up.

Keep-last-N and keep-best coexist through one preservation policy, not two
managers: a step survives garbage collection if it is among the last
`keep_last` (what resume needs) OR it is the best by `best_metric` (eval PSNR;
steps saved between evals carry no score and rank last). One directory, one step
numbering, and the best checkpoint is restorable exactly like any other.
"""
from __future__ import annotations

import contextlib
import logging
import pathlib
from typing import Any

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from jaxir.train.state import TrainState


class _DropReadOnlyNotices(logging.Filter):
    """Orbax's warnings that a manager opened read-only is read-only (jaxir asked for it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("read only" in message or "read_only=True" in message)


@contextlib.contextmanager
def _read_only_notices_dropped():
    logger, notice_filter = logging.getLogger("absl"), _DropReadOnlyNotices()
    logger.addFilter(notice_filter)
    try:
        yield
    finally:
        logger.removeFilter(notice_filter)


class Checkpointer:
    def __init__(self, directory: str | pathlib.Path, *, keep_last: int = 2, best_metric: str = "psnr",
                 best_mode: str = "max", read_only: bool = False, async_save: bool = True):
        if keep_last < 1:
            raise ValueError(f"train.keep_checkpoints must be at least 1, got {keep_last}")
        if best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
        self.directory = pathlib.Path(directory).absolute()
        self.best_metric = best_metric
        # Steps saved without eval metrics rank last, so with no eval at all "best" is simply the latest.
        worst = float("-inf") if best_mode == "max" else float("inf")
        best_fn = lambda metrics: float(metrics.get(best_metric, worst))  # noqa: E731
        preservation = policies.AnyPreservationPolicy([
            policies.preservation_policy.LatestN(n=keep_last),
            policies.preservation_policy.BestN(get_metric_fn=best_fn, reverse=best_mode == "min", n=1),
        ])
        quiet = _read_only_notices_dropped() if read_only else contextlib.nullcontext()
        with quiet:
            options = ocp.CheckpointManagerOptions(
                # best_fn makes the manager store the metrics and answer best_step().
                best_fn=best_fn,
                best_mode=best_mode,
                preservation_policy=preservation,
                create=not read_only,
                read_only=read_only,
                enable_async_checkpointing=async_save,
            )
            self.manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: TrainState, data_iterator: Any | None,
             metrics: dict[str, float] | None = None) -> None:
        """Save state (and iterator position) at `step`; metrics make it a best-checkpoint candidate."""
        items = {"state": ocp.args.StandardSave(state)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
        if metrics and self.best_metric not in metrics:
            raise ValueError(f"checkpoint metrics need {self.best_metric!r}, got {sorted(metrics)}")
        # An empty dict (not None) for steps without eval: the manager tracks metrics for every step.
        self.manager.save(step, args=ocp.args.Composite(**items), metrics=dict(metrics or {}), force=True)

    def restore(self, target: TrainState, data_iterator: Any | None = None, step: int | None = None) -> TrainState:
        """Restore the state into `target`'s shapes and shardings; moves `data_iterator` to the saved position."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        items = {"state": ocp.args.StandardRestore(target)}
        if data_iterator is not None:
            items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        return restored["state"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
