"""`config.data` -> Grain train/eval datasets.

A dataset is described as `{'source': NAME, 'kwargs': {...}}`; NAME is one of
`SOURCES` (extend with `register_source`):
  bundled        data_pipelines.sources.BundledPhotos(split, heldout, include_grayscale)
  paired_folder  PairedFolder(input_dir, target_dir)
  clean_folder   CleanFolder(directory)
  image_folders  ImageFolders(folders={'input': dir, 'target': dir, ...})
  tfds           TfdsSource(name, split, data_dir, features)
  mixture        data_pipelines.mixtures.build_mixture(protocol, data_dir, weighting, datasets, tasks):
                 the all-in-one 3-/5-task protocols, records carrying their 'task' label
  task_mixture   task_mixture(tasks, clean): named tasks synthesised from clean images or read from
                 their own sources, labelled 0..k-1 (ADMS, DCPT)

`config.data.batch_size` is the global batch; each process loads its share.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import jax

SourceFactory = Callable[..., Any]
SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str, factory: SourceFactory) -> None:
    """Make `{'source': name, 'kwargs': ...}` build `factory(**kwargs)`."""
    SOURCES[name] = factory


def _register_builtin() -> None:
    from data_pipelines import sources

    from data_pipelines.mixtures import build_mixture

    for name, factory in (("bundled", sources.BundledPhotos), ("paired_folder", sources.PairedFolder),
                          ("clean_folder", sources.CleanFolder), ("image_folders", sources.ImageFolders),
                          ("tfds", sources.TfdsSource), ("mixture", build_mixture),
                          ("task_mixture", task_mixture)):
        SOURCES.setdefault(name, factory)


def task_mixture(tasks, clean=None, task_ids=None):
    """A mixture of named degradation tasks, labelled 0..k-1 in the given order (or `task_ids`).

    Each task is {'name': ..., 'degradation': [spec...]} (synthesised on device from
    the clean images of `clean`, a source description, default the bundled photos'
    train split) and/or {'source': {...}} (its own records; paired data keep their
    input). Optional 'weight' (default 1; None: the task's record count). Used by the all-in-one
    methods (ADMS's Rain-Blur-Noise, DCPT's 5D/10D) and their classifiers, whose label is 'task'.
    """
    from data_pipelines.mixtures import Mixture, Task

    clean_source = None
    built = []
    for index, task in enumerate(_plain(tasks)):
        task = dict(_plain(task))
        if "source" in task:
            source = make_source(task["source"], f"train task {task.get('name')}")
        else:
            if clean_source is None:
                clean_source = make_source(clean or {"source": "bundled", "kwargs": {"split": "train"}},
                                           "train clean")
            source = clean_source
        task_id = int(task_ids[index]) if task_ids is not None else index
        weight = task.get("weight", 1.0)  # None: in proportion to the task's records
        built.append(Task(name=str(task["name"]), source=source, task_id=task_id,
                          weight=None if weight is None else float(weight),
                          degradation=tuple(dict(_plain(op)) for op in task.get("degradation", ()))))
    return Mixture(built)


def _plain(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def make_source(description: Mapping[str, Any], what: str) -> Any:
    _register_builtin()
    description = _plain(description)
    if not isinstance(description, Mapping) or "source" not in description:
        raise ValueError(f"config.data.{what} must be a dict {{'source': NAME, 'kwargs': {{...}}}}, "
                         f"got {description!r}")
    name = description["source"]
    if name not in SOURCES:
        raise ValueError(f"config.data.{what}.source: unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    kwargs = dict(_plain(description.get("kwargs", {})) or {})
    try:
        return SOURCES[name](**kwargs)
    except TypeError as err:
        raise ValueError(f"config.data.{what}: cannot build source {name!r} from {kwargs}: {err}") from None


def per_process_batch_size(global_batch: int) -> int:
    processes = jax.process_count()
    if global_batch % processes:
        raise ValueError(f"data.batch_size={global_batch} is not divisible by the {processes} processes")
    return global_batch // processes


def task_degradations(source: Any) -> dict[int, Any] | None:
    """task id -> degradation spec for a mixture whose tasks synthesise inputs (e.g. denoising sigmas)."""
    degradations = getattr(source, "degradations", None)
    return {int(k): [dict(op) for op in v] for k, v in degradations.items() if v} if degradations else None


def make_train_iterator(data_cfg: Any, seed: int, source: Any = None):
    """A checkpointable iterator of per-process numpy train batches (of `source`, or the configured one)."""
    from data_pipelines.pipelines import make_train_dataset

    source = make_source(data_cfg.train, "train") if source is None else source
    progressive = _plain(data_cfg.get("progressive", None))
    if progressive:
        from data_pipelines.pipelines import ProgressiveSchedule

        # Restormer-style stages: crop and (global) batch change at the stage boundaries.
        schedule = ProgressiveSchedule(
            milestones=tuple(progressive["milestones"]), patch_sizes=tuple(progressive["patch_sizes"]),
            batch_sizes=tuple(per_process_batch_size(int(b)) for b in progressive["batch_sizes"]))
        sizes = dict(crop_size=None, batch_size=None, schedule=schedule)
    else:
        sizes = dict(crop_size=data_cfg.crop_size, batch_size=per_process_batch_size(int(data_cfg.batch_size)))
    dataset = make_train_dataset(
        source,
        seed=seed,
        augment=data_cfg.get("augment", True),
        dual_pixel=bool(data_cfg.get("dual_pixel", False)),
        num_workers=int(data_cfg.get("workers", 0) or 0),
        **sizes,
    )
    return iter(dataset)


def make_eval_dataset(data_cfg: Any, pad_multiple: int):
    """Full-image eval batches (every process reads all of them), or None when no eval set is configured."""
    from data_pipelines.pipelines import make_eval_dataset as make_dataset

    if not data_cfg.get("eval"):
        return None
    source = make_source(data_cfg.eval, "eval")
    return make_dataset(source, pad_multiple=pad_multiple, batch_size=int(data_cfg.get("eval_batch_size", 1)),
                        seed=int(data_cfg.get("eval_seed", 0)), dual_pixel=bool(data_cfg.get("dual_pixel", False)))
