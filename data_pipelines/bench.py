"""`jaxir bench --pipeline NAME`: training-pipeline throughput against the number of Grain workers.

A pipeline is `make_train_dataset` over a source, followed, for clean-only
sources, by the on-device synthesis of the degraded input (what the train step
does), so the figure is images/s the training loop can be fed. Sources:

  bundled                      BundledPhotos('train') + Gaussian noise σ=25/255
  folder:PATH (or just PATH)   PATH/input + PATH/target (paired, matched by stem),
                               or a folder of clean images (+ Gaussian noise)
  tfds:NAME[:SPLIT]@DATA_DIR   a prepared TFDS dataset (split defaults to train)

Each worker count gets a fresh pipeline; the first batch (worker start-up,
first decode, compilation of the synthesis) is timed apart from the next
`steps` batches, whose rate is reported.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_DEGRADATION: tuple[dict[str, Any], ...] = ({"name": "gaussian_noise", "sigma": 25.0 / 255.0},)
SECTION = "Pipelines"
TABLE_HEADER = (
    "| date | pipeline | source | records | workers | batch | crop | first batch s | images/s | machine |\n"
    "|---|---|---|---|---|---|---|---|---|---|\n"
)


@dataclasses.dataclass
class PipelineBenchResult:
    pipeline: str
    source: str
    records: int
    workers: int
    batch: int
    crop: int
    steps: int
    first_batch_s: float
    images_per_s: float


@dataclasses.dataclass(frozen=True)
class PipelineSource:
    """A source to benchmark: the records, a description, and the synthesis for clean-only records."""
    source: Any
    description: str
    degradation: tuple[Mapping[str, Any], ...] = ()


def _describe_degradation(spec: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for op in spec:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in op.items() if k != "name")
        parts.append(f"{op['name']}({params})")
    return " + ".join(parts)


def _folder_source(path: pathlib.Path, degradation) -> PipelineSource:
    from data_pipelines.sources import CleanFolder, PairedFolder

    if not path.is_dir():
        raise FileNotFoundError(f"pipeline folder {path} does not exist")
    if (path / "input").is_dir() and (path / "target").is_dir():
        source = PairedFolder(path / "input", path / "target")
        return PipelineSource(source, f"PairedFolder({path.name}: input/, target/)")
    source = CleanFolder(path)
    return PipelineSource(source, f"CleanFolder({path.name}) + {_describe_degradation(degradation)}",
                          tuple(degradation))


def _tfds_source(spec: str, degradation) -> PipelineSource:
    from data_pipelines.sources import TfdsSource

    name_split, at, data_dir = spec.partition("@")
    name, _, split = name_split.partition(":")
    if not at or not name or not data_dir:
        raise ValueError(f"a TFDS pipeline is 'tfds:NAME[:SPLIT]@DATA_DIR', got 'tfds:{spec}'")
    split = split or "train"
    probe = TfdsSource(name, split, data_dir)
    if len(probe) == 0:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} in {data_dir} is empty")
    keys = set(probe[0])
    if "target" not in keys:
        raise ValueError(f"TFDS dataset {name!r} has no 'target' feature (it has {sorted(keys)})")
    if "input" in keys:
        return PipelineSource(TfdsSource(name, split, data_dir, features=("input", "target")),
                              f"TFDS {name}:{split} (paired)")
    return PipelineSource(TfdsSource(name, split, data_dir, features=("target",)),
                          f"TFDS {name}:{split} + {_describe_degradation(degradation)}", tuple(degradation))


def make_pipeline_source(spec: str, degradation: Sequence[Mapping[str, Any]] = DEFAULT_DEGRADATION
                         ) -> PipelineSource:
    """'bundled', 'folder:PATH' (or an existing PATH), or 'tfds:NAME[:SPLIT]@DATA_DIR'."""
    if spec == "bundled":
        from data_pipelines.sources import BundledPhotos

        source = BundledPhotos("train")
        return PipelineSource(source, f"BundledPhotos(train) + {_describe_degradation(degradation)}",
                              tuple(degradation))
    if spec.startswith("folder:"):
        return _folder_source(pathlib.Path(spec[len("folder:"):]).expanduser(), degradation)
    if spec.startswith("tfds:"):
        return _tfds_source(spec[len("tfds:"):], degradation)
    if pathlib.Path(spec).expanduser().is_dir():
        return _folder_source(pathlib.Path(spec).expanduser(), degradation)
    raise ValueError(f"unknown pipeline {spec!r}: use 'bundled', 'folder:PATH' (PATH/input + PATH/target, or "
                     "clean images) or 'tfds:NAME[:SPLIT]@DATA_DIR'")


def parse_workers(text: str | Sequence[int]) -> list[int]:
    """'0,1,2' -> [0, 1, 2]."""
    if isinstance(text, str):
        try:
            counts = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"--workers must be comma-separated integers like 0,1,2, got {text!r}") from None
    else:
        counts = [int(c) for c in text]
    if not counts or any(c < 0 for c in counts):
        raise ValueError(f"--workers needs one or more counts >= 0, got {text!r}")
    return counts


def measure_pipeline(pipeline: PipelineSource, *, workers: int, batch: int, crop: int, steps: int,
                     seed: int = 0, label: str = "") -> PipelineBenchResult:
    """Times the first batch and then `steps` batches of a fresh training pipeline with `workers` workers."""
    import jax

    from data_pipelines.pipelines import make_train_dataset

    if batch <= 0 or crop <= 0 or steps <= 0:
        raise ValueError(f"batch, size and steps must be positive, got {batch}, {crop}, {steps}")
    synthesize = None
    if pipeline.degradation:
        from jaxir.degradations import build_synthesizer
        synthesize = build_synthesizer([dict(op) for op in pipeline.degradation])

    def consume(batch_dict) -> None:
        # Block until the batch (and, for clean records, its synthesised input) exists on device.
        arrays = [batch_dict["target"]] + ([batch_dict["input"]] if "input" in batch_dict else [])
        if synthesize is not None:
            arrays.append(synthesize(batch_dict["target"], batch_dict["seed"]))
        jax.block_until_ready([jax.device_put(a) for a in arrays])

    start = time.perf_counter()
    iterator = iter(make_train_dataset(pipeline.source, crop_size=crop, batch_size=batch, seed=seed,
                                       num_workers=workers))
    try:
        consume(next(iterator))
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(steps):
            consume(next(iterator))
        elapsed = time.perf_counter() - start
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return PipelineBenchResult(label or pipeline.description, pipeline.description, len(pipeline.source),
                               workers, batch, crop, steps, first, steps * batch / elapsed)


def run_pipeline_benchmarks(spec: str, workers: Sequence[int], *, batch: int, crop: int, steps: int,
                            degradation: Sequence[Mapping[str, Any]] = DEFAULT_DEGRADATION
                            ) -> list[PipelineBenchResult]:
    pipeline = make_pipeline_source(spec, degradation)
    return [measure_pipeline(pipeline, workers=w, batch=batch, crop=crop, steps=steps, label=spec)
            for w in parse_workers(workers)]


def format_row(result: PipelineBenchResult, machine: str) -> str:
    return (f"| {datetime.date.today().isoformat()} | {result.pipeline} | {result.source} | {result.records} "
            f"| {result.workers} | {result.batch} | {result.crop} | {result.first_batch_s:.2f} "
            f"| {result.images_per_s:.1f} | {machine} |")


def record_rows(path: str | os.PathLike, rows: Sequence[str]) -> None:
    """Appends rows under `## Pipelines` of a Markdown file (the table header comes with the first row)."""
    from jaxir.bench import record_row

    path = pathlib.Path(path)
    text = path.read_text() if path.exists() else ""
    for i, row in enumerate(rows):
        if i == 0 and f"## {SECTION}\n" not in text:
            row = "\n" + TABLE_HEADER + row  # record_row only writes the Models header itself
        record_row(path, row, section=SECTION)


def run_pipeline_bench(args) -> list[PipelineBenchResult]:
    """`jaxir bench --pipeline NAME --workers 0,1,2 [--batch B --size S --steps N --record FILE]`."""
    from jaxir.bench import machine_description

    workers = parse_workers(getattr(args, "workers", "0,1,2") or "0,1,2")
    results = run_pipeline_benchmarks(args.pipeline, workers, batch=int(args.batch), crop=int(args.size),
                                      steps=int(args.steps))
    machine = machine_description()
    rows = [format_row(r, machine) for r in results]
    print(TABLE_HEADER + "\n".join(rows))
    if getattr(args, "record", ""):
        record_rows(args.record, rows)
        print(f"recorded in {args.record}")
    return results
