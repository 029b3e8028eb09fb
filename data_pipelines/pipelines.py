"""Grain train/eval pipelines producing the batches described in contracts.md.

Train batches (dicts of host numpy arrays): 'target' (B,H,W,3) float32 in [0,1];
'input' (B,H,W,Cin) float32 when the source is paired (6 channels for dual-pixel
with `dual_pixel=True`); 'seed' (B,) uint32, one per record; plus 'task' (B,)
int32 and 'sigma' (B,) float32 for all-in-one mixtures (see mixtures.py).

Randomness is a pure function of (seed, component, epoch, record index): each
record's crop, flip/rot90 and its 'seed' field come from
`np.random.SeedSequence([seed, component, epoch, record_index])`, so a record
gets the same patch and the same on-device degradation whatever the number of
processes, workers or the batch it falls in. The order of records is a fresh
permutation every epoch (`EpochShuffle`, seeded by (seed, epoch)).

Checkpointing: `it = iter(make_train_dataset(...))`; `it.get_state()` is a small
JSON-able dict and `it.set_state(state)` on a fresh iterator resumes exactly.
With Orbax, save the iterator next to the train state using Grain's handler
args (registered with Orbax when both are installed)::

    import grain, orbax.checkpoint as ocp
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(train_state),
        data=grain.checkpoint.CheckpointSave(it)))
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_train_state),
        data=grain.checkpoint.CheckpointRestore(fresh_it)))
    # fresh_it (== restored['data']) now continues where `it` was saved.

Each JAX process writes its own `process_<i>-of-<n>.json` under the item dir.
"""

from __future__ import annotations

import bisect
import dataclasses
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from data_pipelines.sources import source_image_hw

IMAGE_KEYS = ("input", "target", "input_left", "input_right")
_AUG_KEY = "_augment_entropy"


# ----------------------------------------------------------------------------
# Per-record seeds and augmentation.


def record_entropy(*words: int) -> np.ndarray:
    """Three uint32 words derived from the given integers (seed, component, epoch, index).

    Word 0 is the record's public 'seed' (for on-device synthesis); words 1-2
    seed the host-side crop/flip generator, so the two are independent streams.
    """
    return np.random.SeedSequence([int(w) for w in words]).generate_state(3, dtype=np.uint32)


def _tag_records(source_ds: grain.MapDataset, *, seed: int, component: int,
                 extra: Mapping[str, Any] | None = None) -> grain.MapDataset:
    """Adds 'seed' and the augmentation entropy to every record of a source dataset.

    Must be applied directly on `MapDataset.source(...)`: `EpochShuffle` and
    Grain's slice and repeat pass `epoch * len + record` down to it, which is
    what we split into (epoch, record index).
    """
    num_records = len(source_ds)
    extra = dict(extra or {})

    def tag(index: int, record: Mapping[str, Any]) -> dict[str, Any]:
        epoch, record_index = divmod(index, num_records)
        entropy = record_entropy(seed, component, epoch, record_index)
        tagged = dict(record)
        tagged.update(extra)
        tagged["seed"] = entropy[0]
        tagged[_AUG_KEY] = entropy[1:]
        return tagged

    return source_ds.map_with_index(tag)


class EpochShuffle(grain.MapDataset):
    """Shuffles every epoch of the parent with its own permutation (epoch = index // len).

    Same contract as `MapDataset.shuffle` (epoch offsets are passed down, so
    tagging still sees `epoch * len + record`). Grain's index_shuffle walks
    cycles over a large fixed domain and costs ~40 ms / len per element, which
    is slow for small datasets (10 ms per record for 7 photos); a cached
    numpy permutation per epoch is O(1) per element at 4 bytes per record.
    """

    def __init__(self, parent: grain.MapDataset, *, seed: int):
        super().__init__(parent)
        self._seed = _check_seed(seed)
        self._length = len(parent)
        if self._length >= sys.maxsize:
            raise ValueError("cannot shuffle an infinite dataset; shuffle before repeat")
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._length

    def _permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            permutation = self._cache.get(epoch)
            if permutation is None:
                rng = np.random.default_rng([self._seed, epoch])
                permutation = rng.permutation(self._length).astype(np.uint32)
                if len(self._cache) >= 4:  # threads may straddle an epoch boundary
                    self._cache.pop(next(iter(self._cache)))
                self._cache[epoch] = permutation
        return permutation

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        epoch, position = divmod(index, self._length)
        return self._parent[epoch * self._length + int(self._permutation(epoch)[position])]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return f"EpochShuffle(seed={self._seed})"


def _to_float(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32, copy=False)
    raise ValueError(f"unsupported image dtype {image.dtype}; expected uint8, uint16 or float")


def _reflect_pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    pad_h, pad_w = max(0, height - image.shape[0]), max(0, width - image.shape[1])
    if pad_h == 0 and pad_w == 0:
        return image
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")


def _crop_hw(crop_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(crop_size, (int, np.integer)):
        crop_size = (int(crop_size), int(crop_size))
    height, width = (int(v) for v in crop_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    return height, width


AUGMENTATIONS = ("dihedral", "hflip", "none")


def augmentation_mode(augment: bool | str | None) -> str:
    """'dihedral' (True): one of the 8 flips/rot90s; 'hflip': a horizontal flip with p 0.5, as the
    MIMO-UNet family's loaders (PairRandomHorizontalFilp); 'none' (False)."""
    if isinstance(augment, str) and augment.lower() in ("true", "false"):
        augment = augment.lower() == "true"
    if augment is True:
        return "dihedral"
    if augment is False or augment is None:
        return "none"
    if augment in AUGMENTATIONS:
        return augment
    raise ValueError(f"augment must be True, False or one of {AUGMENTATIONS}, got {augment!r}")


def augment_record(record: Mapping[str, Any], crop_size: int | Sequence[int], *,
                   augment: bool | str = True, dual_pixel: bool = False) -> dict[str, Any]:
    """Random paired crop (+ flips/rot90) of every image view, then to float32 in [0, 1].

    All views ('input', 'target', 'input_left', 'input_right') get the same crop
    window and the same transform: one of the 8 dihedral ones, or with
    augment='hflip' a horizontal flip or none (`augmentation_mode`). Views smaller than the
    crop are reflect-padded at the bottom/right first. Non-square crops only use
    transforms that keep the shape. String fields (e.g. 'name') are dropped so
    batches hold numbers only. Randomness comes from the record's tagged entropy.
    uint8 views are divided by 255, uint16 views (16-bit datasets such as DPDD) by 65535.
    """
    record = dict(record)
    rng = np.random.default_rng(record.pop(_AUG_KEY))
    crop_h, crop_w = _crop_hw(crop_size)
    views = {key: np.asarray(record.pop(key)) for key in IMAGE_KEYS if key in record}
    if "target" not in views:
        raise ValueError(f"record has no 'target' image (keys: {sorted(record) + sorted(views)})")
    for key, view in views.items():
        if view.ndim != 3:
            raise ValueError(f"'{key}' must be an HWC image, got shape {view.shape}")
    shapes = {key: view.shape[:2] for key, view in views.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"views of record '{record.get('name', '?')}' differ in size: {shapes}")
    height, width = shapes["target"]
    padded_h, padded_w = max(height, crop_h), max(width, crop_w)
    top = int(rng.integers(0, padded_h - crop_h + 1))
    left = int(rng.integers(0, padded_w - crop_w + 1))
    mode = augmentation_mode(augment)
    if mode == "dihedral":
        rotations = int(rng.integers(4)) if crop_h == crop_w else 2 * int(rng.integers(2))
        flip = bool(rng.integers(2))
    else:
        rotations, flip = 0, mode == "hflip" and bool(rng.integers(2))

    out = {key: value for key, value in record.items() if not isinstance(value, str)}
    for key, view in views.items():
        patch = _reflect_pad_to(view, crop_h, crop_w)[top:top + crop_h, left:left + crop_w]
        if rotations:
            patch = np.rot90(patch, rotations, axes=(0, 1))
        if flip:
            patch = patch[:, ::-1]
        out[key] = np.ascontiguousarray(_to_float(patch))
    if dual_pixel:
        if "input_left" not in out or "input_right" not in out:
            raise ValueError("dual_pixel=True needs 'input_left' and 'input_right' views in every record")
        out["input"] = np.concatenate([out.pop("input_left"), out.pop("input_right")], axis=-1)
    return out


def stack_records(records: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Stacks same-keyed records into a batch dict along a new leading axis."""
    keys = records[0].keys()
    for record in records[1:]:
        if record.keys() != keys:
            raise ValueError(f"cannot batch records with different keys: {sorted(keys)} vs {sorted(record)}")
    return {key: np.stack([np.asarray(record[key]) for record in records]) for key in keys}


# ----------------------------------------------------------------------------
# Progressive patch/batch schedule.


@dataclasses.dataclass(frozen=True)
class ProgressiveSchedule:
    """Patch and batch sizes that change with the training step (Restormer's progressive learning).

    `milestones[j]` is the number of iterations of stage j (Restormer's `iters`
    list, not cumulative); stage j uses `patch_sizes[j]` crops and
    `batch_sizes[j]` records per batch (per process). Steps past the last
    stage keep the last stage's sizes. Step s (0-based) is in stage j when
    `sum(milestones[:j]) <= s < sum(milestones[:j+1])`, which matches
    Restormer's 1-based `current_iter <= groups[j]` test.
    """

    milestones: tuple[int, ...]
    patch_sizes: tuple[int, ...]
    batch_sizes: tuple[int, ...]

    def __post_init__(self):
        for name in ("milestones", "patch_sizes", "batch_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if not (len(self.milestones) == len(self.patch_sizes) == len(self.batch_sizes) > 0):
            raise ValueError("milestones, patch_sizes and batch_sizes need the same non-zero length, got "
                             f"{len(self.milestones)}, {len(self.patch_sizes)}, {len(self.batch_sizes)}")
        for name in ("milestones", "patch_sizes", "batch_sizes"):
            if min(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must all be positive, got {getattr(self, name)}")

    @classmethod
    def restormer(cls) -> "ProgressiveSchedule":
        """Restormer's schedule (Deraining/Motion_Deblurring/... configs, 300k iterations)."""
        return cls(milestones=(92000, 64000, 48000, 36000, 36000, 24000),
                   patch_sizes=(128, 160, 192, 256, 320, 384),
                   batch_sizes=(8, 5, 4, 2, 1, 1))

    @property
    def boundaries(self) -> tuple[int, ...]:
        """First step of each stage after the first."""
        return tuple(int(v) for v in np.cumsum(self.milestones)[:-1])

    @property
    def max_patch_size(self) -> int:
        return max(self.patch_sizes)

    def stage(self, step: int) -> int:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        return bisect.bisect_right(self.boundaries, step)

    def sizes(self, step: int) -> tuple[int, int]:
        """(patch_size, batch_size) at `step`."""
        j = self.stage(step)
        return self.patch_sizes[j], self.batch_sizes[j]

    def first_record(self, step: int) -> int:
        """Index, in the record stream, of the first record of batch `step`."""
        j = self.stage(step)
        starts = (0,) + self.boundaries
        before = sum(self.milestones[i] * self.batch_sizes[i] for i in range(j))
        return before + (step - starts[j]) * self.batch_sizes[j]

    def num_steps(self, num_records: int) -> int:
        """How many full batches a finite stream of `num_records` records gives."""
        low, high = 0, num_records  # every batch has >= 1 record
        while low < high:
            mid = (low + high + 1) // 2
            if self.first_record(mid - 1) + self.sizes(mid - 1)[1] <= num_records:
                low = mid
            else:
                high = mid - 1
        return low


class _ScheduledBatchDataset(grain.MapDataset):
    """Batch `step` = the next `batch_sizes[j]` records cropped at `patch_sizes[j]`.

    The element index is the step, so the iterator state is the step and
    resuming anywhere (also across a stage boundary) is exact. Records are
    consumed at the stage's batch size, none are loaded and discarded.
    """

    def __init__(self, records: grain.MapDataset, schedule: ProgressiveSchedule, *,
                 augment: bool | str, dual_pixel: bool, shard: tuple[int, int] = (0, 1)):
        super().__init__(records)
        self._schedule = schedule
        self._augment = augment
        self._dual_pixel = dual_pixel
        # `records` is the global stream; this process takes its block of every global batch (see BlockShard).
        self._index, self._count = shard
        whole = len(records)
        self._length = sys.maxsize if whole >= sys.maxsize else schedule.num_steps(whole // self._count)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, step):
        if isinstance(step, slice):
            return self.slice(step)
        if step >= self._length:
            raise IndexError(f"step {step} past the end ({self._length} steps)")
        patch, size = self._schedule.sizes(step)
        first = (self._schedule.first_record(step) * self._count) + self._index * size
        records = [self._parent[first + k] for k in range(size)]
        return stack_records([augment_record(r, patch, augment=self._augment, dual_pixel=self._dual_pixel)
                              for r in records])

    def __str__(self) -> str:
        return f"ScheduledBatchDataset({self._schedule})"


# ----------------------------------------------------------------------------
# Train pipeline.


def _resolve_shard(shard: tuple[int, int] | None) -> tuple[int, int]:
    if shard is None:
        options = grain.sharding.ShardByJaxProcess(drop_remainder=True)
        shard = (options.shard_index, options.shard_count)
    index, count = (int(v) for v in shard)
    if count <= 0 or not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}")
    return index, count


def _check_seed(seed: int) -> int:
    seed = int(seed)
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    return seed


class BlockShard(grain.MapDataset):
    """Process `index` of `count`'s share of a global record stream, in blocks of `block` records.

    Element q of this process is global record `(q // block) * block * count + index * block + q % block`:
    global batch j (of `block * count` records) is process 0's batch j, then process 1's, and so on,
    which is exactly the order `jax.make_array_from_process_local_data` concatenates them in. So the
    global batch at every step holds the same records in the same order whatever the process count
    (a 2-process run sees the batches of the 1-process run). With `block=1` it is a strided split.
    """

    def __init__(self, parent: grain.MapDataset, *, index: int, count: int, block: int):
        super().__init__(parent)
        self._index, self._count, self._block = int(index), int(count), int(block)
        if self._block <= 0:
            raise ValueError(f"block must be positive, got {block}")
        whole = len(parent)
        self._length = sys.maxsize if whole >= sys.maxsize else whole // (self._block * self._count) * self._block

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        if index >= self._length:
            raise IndexError(f"record {index} past the end of the shard ({self._length})")
        group, offset = divmod(index, self._block)
        return self._parent[(group * self._count + self._index) * self._block + offset]

    def __str__(self) -> str:
        return f"BlockShard(index={self._index}, count={self._count}, block={self._block})"


def global_records(source: Any, *, seed: int, num_epochs: int | None = None, shard_count: int = 1) -> grain.MapDataset:
    """The shuffled, repeated stream of tagged records that all processes together consume, in order.

    A plain source is shuffled afresh every epoch; the last `len % shard_count` records of each
    epoch's order are skipped so every process sees epochs of equal length. A mixture is
    infinite: each task is shuffled and repeated on its own and the tasks are interleaved by
    weight with `grain.MapDataset.mix`.
    """
    from data_pipelines.mixtures import Mixture  # mixtures builds on this module's tagging

    seed = _check_seed(seed)
    if isinstance(source, Mixture):
        if num_epochs is not None:
            raise ValueError("a Mixture is an infinite stream; leave num_epochs=None and stop by steps")
        return source.record_dataset(seed)
    num_records = len(source)
    if num_records < shard_count:
        raise ValueError(f"source has {num_records} records, fewer than the {shard_count} processes")
    if num_epochs is not None and num_epochs <= 0:
        raise ValueError(f"num_epochs must be positive or None, got {num_epochs}")
    records = _tag_records(grain.MapDataset.source(source), seed=seed, component=0)
    per_epoch = num_records - num_records % shard_count
    return EpochShuffle(records, seed=seed)[:per_epoch].repeat(num_epochs)


def train_records(source: Any, *, seed: int, num_epochs: int | None = None,
                  shard: tuple[int, int] | None = None, block: int = 1) -> grain.MapDataset:
    """This process's share of `global_records`: blocks of `block` records (its per-step batch).

    `shard` is (process index, process count), by default Grain's `ShardByJaxProcess`. See
    `BlockShard` for why blocks: the global batch is then independent of the process count.
    """
    shard_index, shard_count = _resolve_shard(shard)
    records = global_records(source, seed=seed, num_epochs=num_epochs, shard_count=shard_count)
    return BlockShard(records, index=shard_index, count=shard_count, block=block)


def _ensure_absl_flags_parsed() -> None:
    # Grain's worker processes read absl flags; outside an absl app they are
    # unparsed and reading them raises, so accept their defaults.
    from absl import flags
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_train_dataset(source: Any, *, crop_size: int | Sequence[int] | None = None,
                       batch_size: int | None = None, seed: int, augment: bool | str = True,
                       num_epochs: int | None = None, shard: tuple[int, int] | None = None,
                       dual_pixel: bool = False, schedule: ProgressiveSchedule | None = None,
                       num_workers: int = 0, num_threads: int = 2,
                       prefetch_buffer_size: int = 4) -> grain.IterDataset:
    """Training batches of random patches, deterministic in `seed` and resumable.

    Args:
      source: a random-access source (see sources.py) or a `mixtures.Mixture`.
      crop_size: patch size (int or (h, w)); leave None with a `schedule`.
      batch_size: records per batch yielded by this process (the global batch
        is batch_size * process count); leave None with a `schedule`.
      seed: global seed in [0, 2**32).
      augment: random flips and rot90 (the same on every view); 'hflip': horizontal flips only;
        False: none (`augmentation_mode`).
      num_epochs: None repeats forever; otherwise the stream ends after that
        many epochs (the last incomplete batch is dropped).
      shard: (process index, process count); defaults to JAX's.
      dual_pixel: concatenate 'input_left' and 'input_right' into a 6-channel 'input'.
      schedule: a ProgressiveSchedule; then batch `step` has the stage's sizes.
      num_workers: Grain multiprocessing prefetch workers (0: threads only).
        Output is identical for any number of workers.
      num_threads, prefetch_buffer_size: Grain ReadOptions of each process
        (the buffer counts batches).

    Returns:
      A `grain.IterDataset`; `iter()` it for a checkpointable iterator.
    """
    if schedule is None:
        if crop_size is None or batch_size is None:
            raise ValueError("give crop_size and batch_size, or a progressive schedule")
        if int(batch_size) <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        _crop_hw(crop_size)
    elif not isinstance(schedule, ProgressiveSchedule):
        raise ValueError(f"schedule must be a ProgressiveSchedule, got {type(schedule).__name__}")
    elif crop_size is not None or batch_size is not None:
        raise ValueError("a progressive schedule sets the crop and batch sizes; "
                         "leave crop_size and batch_size None")

    augmentation_mode(augment)
    if schedule is None:
        records = train_records(source, seed=seed, num_epochs=num_epochs, shard=shard, block=int(batch_size))
        batches = records.map(
            lambda record: augment_record(record, crop_size, augment=augment, dual_pixel=dual_pixel)
        ).batch(int(batch_size), drop_remainder=True, batch_fn=stack_records)
    else:
        shard = _resolve_shard(shard)
        records = global_records(source, seed=seed, num_epochs=num_epochs, shard_count=shard[1])
        batches = _ScheduledBatchDataset(records, schedule, augment=augment, dual_pixel=dual_pixel, shard=shard)

    dataset = batches.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                                        prefetch_buffer_size=prefetch_buffer_size))
    if num_workers > 0:
        _ensure_absl_flags_parsed()
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return dataset


# ----------------------------------------------------------------------------
# Eval pipeline and padding helpers.


def _is_numpy(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic))


def pad_to_multiple(x: Any, multiple: int, mode: str = "reflect") -> Any:
    """Pads the H and W axes (-3, -2) of an HWC/NHWC array at the bottom/right to a multiple.

    Works on numpy arrays (numpy result) and JAX arrays (jnp.pad, jit-able).
    'reflect' mirrors without repeating the edge pixel (like torch's
    F.pad(mode='reflect') used by the official test scripts).
    """
    multiple = int(multiple)
    if multiple <= 0:
        raise ValueError(f"multiple must be positive, got {multiple}")
    if x.ndim < 3:
        raise ValueError(f"expected an HWC or NHWC array, got shape {x.shape}")
    height, width = x.shape[-3], x.shape[-2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 3) + [(0, pad_h), (0, pad_w), (0, 0)]
    if _is_numpy(x):
        return np.pad(x, widths, mode=mode)
    import jax.numpy as jnp
    return jnp.pad(x, widths, mode=mode)


def crop_to(x: Any, hw: Any) -> Any:
    """Crops the H and W axes (-3, -2) back to `hw` = (H, W) (top-left kept).

    `hw` may be a pair or a batch's 'hw' array of shape (B, 2) whose rows are
    equal (eval batches only group equal sizes).
    """
    hw = np.asarray(hw)
    if hw.ndim == 2:
        if not (hw == hw[:1]).all():
            raise ValueError(f"crop_to needs one size for the whole batch, got {hw.tolist()}")
        hw = hw[0]
    height, width = int(hw[0]), int(hw[1])
    if height > x.shape[-3] or width > x.shape[-2]:
        raise ValueError(f"cannot crop shape {x.shape} to a larger size {(height, width)}")
    return x[..., :height, :width, :]


def size_groups(source: Any, batch_size: int) -> list[list[int]]:
    """Record indices in source order, grouped by target size, chunked to `batch_size`.

    Groups appear in the order of their first record; a group's last chunk can
    be smaller than batch_size (nothing is dropped in evaluation).
    """
    by_size: dict[tuple[int, int], list[int]] = {}
    for index in range(len(source)):
        by_size.setdefault(source_image_hw(source, index), []).append(index)
    return [indices[i:i + batch_size] for indices in by_size.values()
            for i in range(0, len(indices), batch_size)]


class EvalBatches(grain.MapDataset):
    """Eval batches by index (`len`, `[i]`); iterating prefetches only a few batches.

    (A plain MapDataset iterates with Grain's default ReadOptions, which buffer
    up to 500 elements: too many full-size images.)
    """

    def __init__(self, source: Any, groups: Sequence[Sequence[int]], *, pad_multiple: int,
                 seed: int, dual_pixel: bool, num_threads: int, prefetch_buffer_size: int):
        super().__init__()
        self._source, self._groups = source, [list(g) for g in groups]
        self._pad_multiple, self._seed, self._dual_pixel = int(pad_multiple), seed, dual_pixel
        self._read_options = grain.ReadOptions(num_threads=num_threads,
                                               prefetch_buffer_size=prefetch_buffer_size)

    def __len__(self) -> int:
        return len(self._groups)

    def _record(self, index: int) -> dict[str, Any]:
        raw = self._source[index]
        record: dict[str, Any] = {"name": str(raw.get("name", index))}
        for key, value in raw.items():
            if key in IMAGE_KEYS:
                record[key] = _to_float(np.asarray(value))
            elif key != "name" and not isinstance(value, str):
                record[key] = value
        if "target" not in record:
            raise ValueError(f"record {index} of {self._source!r} has no 'target' image")
        if self._dual_pixel:
            if "input_left" not in record or "input_right" not in record:
                raise ValueError("dual_pixel=True needs 'input_left' and 'input_right' views")
            record["input"] = np.concatenate([record.pop("input_left"), record.pop("input_right")], -1)
        for key in IMAGE_KEYS:
            if key in record and key != "target":
                record[key] = pad_to_multiple(record[key], self._pad_multiple)
        record["hw"] = np.asarray(record["target"].shape[:2], dtype=np.int32)
        record["seed"] = record_entropy(self._seed, index)[0]
        return record

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.slice(index)
        return stack_records([self._record(i) for i in self._groups[index % len(self._groups)]])

    def __iter__(self):
        return self.to_iter_dataset(self._read_options).__iter__()

    def __str__(self) -> str:
        return f"EvalBatches({len(self)} batches)"


def make_eval_dataset(source: Any, *, pad_multiple: int = 1, batch_size: int = 1, seed: int = 0,
                      dual_pixel: bool = False, num_threads: int = 2,
                      prefetch_buffer_size: int = 2) -> EvalBatches:
    """Full-image eval batches in fixed source order, batched among equal sizes only.

    Each batch: 'target' (B,H,W,3) float32 at the original size; 'input' (and
    dual-pixel views; 6-channel 'input' with `dual_pixel=True`) float32,
    reflect-padded at the bottom/right to a multiple of `pad_multiple` (see
    `pad_to_multiple`); 'hw' (B,2) int32, the original (H, W), to `crop_to`
    the model's output; 'seed' (B,) uint32 from (seed, record index); 'name'
    (B,) str; and 'task' when records have one. Batches hold one image size
    only, so the last batch of a size may be smaller than `batch_size`.
    For clean-only sources ('input' absent) synthesise the input on device from
    'target', then pad it with `pad_to_multiple` (it works on JAX arrays).
    """
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if int(pad_multiple) <= 0:
        raise ValueError(f"pad_multiple must be positive, got {pad_multiple}")
    return EvalBatches(source, size_groups(source, int(batch_size)), pad_multiple=pad_multiple,
                       seed=_check_seed(seed), dual_pixel=dual_pixel, num_threads=num_threads,
                       prefetch_buffer_size=prefetch_buffer_size)
