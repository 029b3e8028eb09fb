"""All-in-one training mixtures: several restoration tasks in one stream, with task labels.

A `Mixture` is a list of `Task`s (a source + a label + a sampling weight +, for
clean-only sources, the degradation to synthesise). Pass it to
`pipelines.make_train_dataset` in place of a source. Every record then carries
'task' (int32, `TASK_IDS`) and 'sigma' (float32 noise std in [0,1] units, 0 for
tasks without synthetic noise). When the mixture has paired tasks, clean-only
tasks get 'input' = a copy of 'target' so every batch has the same keys; the
train step replaces those inputs on device::

    batch = synthesize_task_inputs(batch, mixture.degradations)   # inside jit

which, for each task with a degradation spec, runs
`jaxir.degradations.synthesize(spec, batch['target'], batch['seed'])` and takes
it where `batch['task'] == task_id` (the per-record 'seed' keeps it
reproducible and independent of batch composition).

Sampling: tasks are interleaved with `grain.MapDataset.mix` in proportion to
their weights; each task's stream is shuffled and repeated on its own. The
weight of a task is `len(source) * repeat`, i.e. its share of one epoch of the
official code's concatenated sample list; `WEIGHTINGS` records the repeats of
each official implementation (sources cited there). Grain's mix interleaves
deterministically, so every window of records has close to the exact task
proportions (the official loaders draw them at random from the same totals).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from data_pipelines.pipelines import EpochShuffle, _tag_records
from data_pipelines.sources import ConcatSource, TfdsSource

# Labels of PromptIR/AirNet (de_dict 0-4) extended as DA-RCOT's universal dataset
# does (deblur 5, lowlight 6); MoCE-IR numbers tasks by their order on the command
# line instead, which only matters to models that take the label as an input.
TASK_IDS: dict[str, int] = {
    "denoise_15": 0, "denoise_25": 1, "denoise_50": 2,
    "derain": 3, "dehaze": 4, "deblur": 5, "lowlight": 6,
}
NOISE_SIGMAS: dict[str, int] = {"denoise_15": 15, "denoise_25": 25, "denoise_50": 50}

# Per-task repeats of the official all-in-one loaders; a task's sampling weight
# is len(its training set) * repeat. "uniform" gives every task the same weight.
#  promptir: va1shn9v/PromptIR utils/dataset_utils.py (commit 49a78a3),
#    PromptTrainDataset: s15/s25/s50_ids = clean_ids * 3 each (BSD400+WED, the
#    5144 files of data_dir/noisy/denoise.txt); rs_ids = Rain100L-train * 120;
#    hazy_ids = RESIDE OTS list data_dir/hazy/hazy_outside.txt (72135) * 1.
#  airnet: XLearning-SCU/2022-CVPR-AirNet utils/dataset_utils.py (commit c01d5a4),
#    TrainDataset.__getitem__ cycles through a shuffled de_type list, so each of
#    the 5 labels gets exactly 1/5 of the samples whatever the dataset sizes.
#  moce_ir: eduardzamfir/MoCE-IR src/data/dataset_utils.py (commit a1a6e74),
#    AIOTrainDataset: denoise_15/25/50 * 3 each, derain (RainTrainL) * 120,
#    dehaze (RESIDE part1-4) * 1, deblur (GoPro 512x512 training crops, made by
#    Restormer's generate_patches_gopro.py) * 5, synllie (LOLv1 train) * 20;
#    5-task run uses all three sigmas (README: --de_type denoise_15 denoise_25
#    denoise_50 dehaze derain deblur synllie).
#  da_rcot: xl-tang3/DA-RCOT util/universal_dataset.py (commit 9a42bf4), used by
#    trainer.py: denoise_* * 5, derain * 360, dehaze * 1, deblur (GoPro train,
#    full frames) * 35, lowlight (LOL low/) * 150; the README's 5-task command
#    trains denoise_25 only (--de_type derain dehaze denoise_25 deblur lowlight).
#  vlu_net: xianggkl/VLU-Net utils/dataset_utils_clip.py (commit 8c2f7a7),
#    PromptTrainDataset: s15/s25/s50 ids x 3 each, rs_ids (Rain100L) x 120,
#    hazy, blurry (GoPro), lowlight (LOL) ids x 1.
#  vlu_net_clip: the same repository's utils/clip_dataset.py, TrainDataset_forIR
#    (the CLIP adapter fine-tuning): every list x 1 but rain's (list index 4) x 120.
WEIGHTINGS: dict[str, dict[str, dict[str, float] | str]] = {
    "aio3": {
        "promptir": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1},
        "airnet": "uniform",
        "moce_ir": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1},
        "da_rcot": {"denoise_15": 5, "denoise_25": 5, "denoise_50": 5, "derain": 360, "dehaze": 1},
        "vlu_net": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1},
        "vlu_net_clip": {"denoise_15": 1, "denoise_25": 1, "denoise_50": 1, "derain": 120, "dehaze": 1},
    },
    "aio5": {
        "moce_ir": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1,
                    "deblur": 5, "lowlight": 20},
        "da_rcot": {"denoise_25": 5, "derain": 360, "dehaze": 1, "deblur": 35, "lowlight": 150},
        "vlu_net": {"denoise_15": 3, "denoise_25": 3, "denoise_50": 3, "derain": 120, "dehaze": 1,
                    "deblur": 1, "lowlight": 1},
        "vlu_net_clip": {"denoise_15": 1, "denoise_25": 1, "denoise_50": 1, "derain": 120, "dehaze": 1,
                         "deblur": 1, "lowlight": 1},
    },
}
DEFAULT_WEIGHTING = {"aio3": "promptir", "aio5": "moce_ir"}

# TFDS (name, split) of each role's training data, overridable per call.
# Names follow data_pipelines/builders. Denoise concatenates colour BSD400 (the
# 400 BSDS500 train + test JPEGs, builder config 'bsd400/color', not DnCNN's
# greyscale Train400) and WED, as every official loader does: PromptIR
# data/Train/Denoise/ (a<id>.jpg + <n>.bmp, data_dir/noisy/denoise.txt), AirNet
# data/Train/Denoise/, MoCE-IR <data>/denoising/{BSD400/*.jpg, WaterlooED/*.bmp};
# all of them read the files with PIL .convert('RGB').
DEFAULT_TRAIN_DATASETS: dict[str, tuple[tuple[str, str], ...]] = {
    "denoise": (("bsd400/color", "train"), ("wed", "train")),
    "derain": (("rain100l", "train"),),
    "dehaze": (("reside_ots", "train"),),
    "deblur": (("gopro", "train"),),
    "lowlight": (("lol", "train"),),
}
# The protocols' test sets (denoise_*: noise synthesised at the task's sigma).
EVAL_DATASETS: dict[str, dict[str, tuple[str, str]]] = {
    "aio3": {"denoise_15": ("cbsd68", "test"), "denoise_25": ("cbsd68", "test"),
             "denoise_50": ("cbsd68", "test"), "derain": ("rain100l", "test"),
             "dehaze": ("sots_outdoor", "test")},
    "aio5": {"denoise_25": ("cbsd68", "test"), "derain": ("rain100l", "test"),
             "dehaze": ("sots_outdoor", "test"), "deblur": ("gopro", "test"),
             "lowlight": ("lol", "test")},
}


def noise_degradation(sigma_255: float) -> tuple[dict[str, Any], ...]:
    """Spec adding Gaussian noise of std sigma/255 (the official loaders use 0-255 sigmas)."""
    return ({"name": "gaussian_noise", "sigma": float(sigma_255) / 255.0},)


def _role(task_name: str) -> str:
    return "denoise" if task_name.startswith("denoise") else task_name


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of a mixture.

    Attributes:
      name: e.g. 'denoise_25', 'derain'.
      source: random-access source of records ('target', and 'input' if paired).
      repeat: repeat factor of the official loader; weight = len(source) * repeat.
      weight: explicit sampling weight (overrides len * repeat).
      degradation: synthesis spec for clean-only sources (contracts.md format).
      task_id: label in records; defaults to TASK_IDS[name].
    """

    name: str
    source: Any
    repeat: float = 1.0
    weight: float | None = None
    degradation: tuple[Mapping[str, Any], ...] = ()
    task_id: int | None = None

    def __post_init__(self):
        if self.task_id is None:
            if self.name not in TASK_IDS:
                raise ValueError(f"task '{self.name}' has no default id; pass task_id "
                                 f"(known names: {sorted(TASK_IDS)})")
            object.__setattr__(self, "task_id", TASK_IDS[self.name])
        object.__setattr__(self, "degradation", tuple(dict(op) for op in self.degradation))
        if len(self.source) == 0:
            raise ValueError(f"task '{self.name}' has an empty source")
        if self.effective_weight <= 0:
            raise ValueError(f"task '{self.name}' needs a positive weight, got {self.effective_weight}")

    @property
    def effective_weight(self) -> float:
        return float(self.weight) if self.weight is not None else float(len(self.source) * self.repeat)

    @property
    def sigma(self) -> float:
        """Noise std (in [0,1] units) of the task's synthetic Gaussian noise, 0 if none."""
        return float(sum(op.get("sigma", 0.0) for op in self.degradation
                         if op.get("name") == "gaussian_noise"))


class Mixture:
    """Tasks sampled in proportion to their weights; pass to `make_train_dataset`."""

    def __init__(self, tasks: Sequence[Task]):
        if not tasks:
            raise ValueError("a Mixture needs at least one task")
        names = [t.name for t in tasks]
        ids = [t.task_id for t in tasks]
        if len(set(names)) != len(names) or len(set(ids)) != len(ids):
            raise ValueError(f"task names and ids must be unique, got {list(zip(names, ids))}")
        self.tasks = tuple(tasks)
        self._paired = {}
        for task in self.tasks:
            keys = set(task.source[0])
            if "target" not in keys:
                raise ValueError(f"task '{task.name}': records have no 'target' (keys {sorted(keys)})")
            self._paired[task.name] = "input" in keys
            if not self._paired[task.name] and not task.degradation:
                raise ValueError(f"task '{task.name}' has clean-only records and no degradation spec")
        self._any_paired = any(self._paired.values())

    @property
    def weights(self) -> dict[str, float]:
        """Normalised sampling weight of each task."""
        total = sum(t.effective_weight for t in self.tasks)
        return {t.name: t.effective_weight / total for t in self.tasks}

    @property
    def task_names(self) -> dict[int, str]:
        return {t.task_id: t.name for t in self.tasks}

    @property
    def degradations(self) -> dict[int, tuple[dict[str, Any], ...]]:
        """task_id -> synthesis spec, for the tasks whose input is synthesised on device."""
        return {t.task_id: t.degradation for t in self.tasks if not self._paired[t.name]}

    def record_dataset(self, seed: int) -> grain.MapDataset:
        """Infinite stream of tagged records, tasks interleaved by weight (not sharded)."""
        components = []
        for task in self.tasks:
            extra = {"task": np.int32(task.task_id), "sigma": np.float32(task.sigma)}
            records = _tag_records(grain.MapDataset.source(task.source), seed=seed,
                                   component=task.task_id, extra=extra)
            if self._any_paired and not self._paired[task.name]:
                records = records.map(lambda r: {**r, "input": r["target"]})
            shuffle_seed = int(np.random.SeedSequence([seed, task.task_id]).generate_state(1)[0])
            components.append(EpochShuffle(records, seed=shuffle_seed).repeat())
        return grain.MapDataset.mix(components, [t.effective_weight for t in self.tasks])

    def __repr__(self) -> str:
        parts = ", ".join(f"{t.name}(id={t.task_id}, n={len(t.source)}, w={w:.3f})"
                          for t, w in zip(self.tasks, self.weights.values()))
        return f"Mixture({parts})"


def protocol_tasks(protocol: str, weighting: str | None = None) -> dict[str, float | None]:
    """Task name -> repeat (None: uniform weights) for a protocol and weighting."""
    if protocol not in WEIGHTINGS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {sorted(WEIGHTINGS)}")
    weighting = weighting or DEFAULT_WEIGHTING[protocol]
    if weighting not in WEIGHTINGS[protocol]:
        raise ValueError(f"unknown weighting {weighting!r} for {protocol}; "
                         f"known: {sorted(WEIGHTINGS[protocol])}")
    table = WEIGHTINGS[protocol][weighting]
    if table == "uniform":
        names = WEIGHTINGS[protocol][DEFAULT_WEIGHTING[protocol]]
        return {name: None for name in names}
    return dict(table)


def make_mixture(protocol: str, sources: Mapping[str, Any], *, weighting: str | None = None,
                 tasks: Sequence[str] | None = None) -> Mixture:
    """A protocol's mixture from given sources, keyed by role or by task name.

    `sources` maps a role ('denoise', 'derain', 'dehaze', 'deblur', 'lowlight')
    or a task name ('denoise_25') to a source; a task name wins over its role.
    Denoise sources hold clean images; noise of the task's sigma is synthesised.
    `tasks` restricts the protocol's task list (e.g. to drop a task).
    """
    repeats = protocol_tasks(protocol, weighting)
    names = list(repeats) if tasks is None else list(tasks)
    unknown = [n for n in names if n not in repeats]
    if unknown:
        raise ValueError(f"tasks {unknown} are not in protocol {protocol} "
                         f"with weighting {weighting or DEFAULT_WEIGHTING[protocol]}")
    built = []
    for name in names:
        source = sources.get(name, sources.get(_role(name)))
        if source is None:
            raise ValueError(f"no source for task '{name}' (give sources['{name}'] or "
                             f"sources['{_role(name)}']); got keys {sorted(sources)}")
        repeat = repeats[name]
        degradation = noise_degradation(NOISE_SIGMAS[name]) if name in NOISE_SIGMAS else ()
        built.append(Task(name=name, source=source, degradation=degradation,
                          repeat=1.0 if repeat is None else float(repeat),
                          weight=1.0 if repeat is None else None))
    return Mixture(built)


def _dataset_list(entries: Any) -> list[tuple[str, str]]:
    """"name[:split]", (name, split), or a list of those -> [(name, split), ...]."""
    def parse(entry: Any) -> tuple[str, str]:
        if isinstance(entry, str):
            name, _, split = entry.partition(":")
            return name, split or "train"
        if isinstance(entry, Sequence) and len(entry) == 2 and all(isinstance(e, str) for e in entry):
            return entry[0], entry[1]
        raise ValueError(f"a dataset must be 'name[:split]' or (name, split), got {entry!r}")

    if isinstance(entries, str) or (isinstance(entries, tuple) and len(entries) == 2 and all(
            isinstance(e, str) and ":" not in e for e in entries)):
        return [parse(entries)]
    return [parse(e) for e in entries]


def build_mixture(protocol: str, data_dir: str | None, *, weighting: str | None = None,
                  datasets: Mapping[str, Any] | None = None,
                  tasks: Sequence[str] | None = None) -> Mixture:
    """A protocol's mixture read from prepared TFDS datasets in `data_dir`.

    Args:
      protocol: 'aio3' (denoise 15/25/50, derain, dehaze) or 'aio5' (adds deblur
        and low light; the task list depends on the weighting, see WEIGHTINGS).
      data_dir: TFDS data_dir holding the prepared datasets.
      weighting: a key of WEIGHTINGS[protocol]; defaults to PromptIR (aio3) or
        MoCE-IR (aio5).
      datasets: per role, overrides of DEFAULT_TRAIN_DATASETS: "name[:split]",
        (name, split), or a list of those (concatenated).
      tasks: optional subset of the protocol's tasks.
    """
    repeats = protocol_tasks(protocol, weighting)
    names = list(repeats) if tasks is None else list(tasks)
    overrides = dict(datasets or {})
    sources: dict[str, Any] = {}
    for role in sorted({_role(n) for n in names}):
        entries = overrides.get(role, DEFAULT_TRAIN_DATASETS.get(role))
        if entries is None:
            raise ValueError(f"no dataset known for role '{role}'; pass datasets={{'{role}': 'name:split'}}")
        features = ("target",) if role == "denoise" else ("input", "target")
        parts = [TfdsSource(name, split, data_dir=data_dir, features=features)
                 for name, split in _dataset_list(entries)]
        sources[role] = parts[0] if len(parts) == 1 else ConcatSource(parts)
    return make_mixture(protocol, sources, weighting=weighting, tasks=names)


def synthesize_task_inputs(batch: Mapping[str, Any],
                           degradations: Mapping[int, Sequence[Mapping[str, Any]]],
                           synthesize=None) -> dict[str, Any]:
    """Replaces 'input' of synthetic-degradation tasks by their on-device synthesis (jit-able).

    `degradations` is `Mixture.degradations` (task_id -> spec). `synthesize`
    defaults to `jaxir.degradations.synthesize(spec, clean, seeds)`.
    """
    import jax.numpy as jnp

    if synthesize is None:
        from jaxir.degradations import synthesize
    inputs = jnp.asarray(batch["input"]) if "input" in batch else None
    for task_id, spec in degradations.items():
        if not spec:
            continue
        synthetic = synthesize(list(spec), batch["target"], batch["seed"])
        if inputs is None:
            inputs = jnp.zeros_like(synthetic)
        mask = (jnp.asarray(batch["task"]) == task_id)[:, None, None, None]
        inputs = jnp.where(mask, synthetic, inputs)
    return {**batch, "input": inputs}
