"""Scalars to TensorBoard (tensorboardX, no TensorFlow) and to `metrics.jsonl` in the workdir.

Named metric_writers, not logging, so it never shadows the standard library module.
"""
from __future__ import annotations

import json
import pathlib
from typing import Mapping

import numpy as np

METRICS_FILE = "metrics.jsonl"


def _plain(value) -> float | int:
    value = np.asarray(value).item()
    if isinstance(value, bool):
        return int(value)
    return value  # NaN/inf are kept: json writes NaN/Infinity, which Python reads back


def truncate_jsonl(path: pathlib.Path, last_step: int) -> None:
    """Drop lines logged after `last_step` (by a run that died after its last checkpoint)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= last_step]
    path.write_text("".join(line + "\n" for line in kept))


class MetricWriter:
    """Writes `{prefix}/{name}` scalars to TensorBoard and one JSON object per call to metrics.jsonl.

    Only the writing process (process 0 in multi-host runs) should create one with `enabled=True`;
    the others get a writer that does nothing, so the loop needs no `if`s.
    """

    def __init__(self, workdir: str | pathlib.Path, *, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if not enabled:
            return
        workdir = pathlib.Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        jsonl_path = workdir / METRICS_FILE
        if resume_step is not None:
            truncate_jsonl(jsonl_path, resume_step)
        elif jsonl_path.exists():
            jsonl_path.unlink()
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(logdir=str(workdir / "tensorboard"))
        self._jsonl = jsonl_path.open("a")

    def write(self, step: int, scalars: Mapping[str, float], prefix: str = "train") -> None:
        if not self.enabled:
            return
        values = {name: _plain(v) for name, v in scalars.items()}
        for name, value in values.items():
            self._tb.add_scalar(f"{prefix}/{name}", value, step)
        self._jsonl.write(json.dumps({"step": int(step), "split": prefix, **values}) + "\n")
        self._jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self._tb.close()
            self._jsonl.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    path = pathlib.Path(workdir) / METRICS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
