"""Grain input pipelines: sources, train/eval pipelines, resume, sharding, progressive schedule."""


import grain
import numpy as np
import pytest
from PIL import Image

from data_pipelines.pipelines import (ProgressiveSchedule, crop_to, make_eval_dataset,
                                      make_train_dataset, pad_to_multiple)
from data_pipelines.sources import (BundledPhotos, CleanFolder, ImageFolders, PairedFolder,
                                    TfdsSource)

SHARD1 = (0, 1)


def coordinate_image(height, width, view):
    """uint8 image whose pixel (r, c) holds (r, c, view): crops reveal their window."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows, cols, np.full_like(rows, view)], axis=-1).astype(np.uint8)


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def dihedral_variants(window):
    for k in range(4):
        rotated = np.rot90(window, k, axes=(0, 1))
        yield rotated
        yield rotated[:, ::-1]


def batches(dataset, n):
    iterator = iter(dataset)
    return [next(iterator) for _ in range(n)]


def assert_batches_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key], err_msg=key)


@pytest.fixture
def paired_dir(tmp_path):
    """6 coordinate-coded pairs of different sizes (one smaller than the crops used)."""
    sizes = [(40, 50), (48, 36), (60, 60), (44, 70), (10, 12), (52, 41)]
    for i, (h, w) in enumerate(sizes):
        write_png(tmp_path / "in" / f"im{i}.png", coordinate_image(h, w, view=1))
        write_png(tmp_path / "gt" / f"im{i}.bmp" if i == 0 else tmp_path / "gt" / f"im{i}.png",
                  coordinate_image(h, w, view=2))
    return tmp_path


@pytest.fixture
def identity_dir(tmp_path):
    """9 clean images, each a constant value 10 * (i + 1): a crop tells which record it is."""
    for i in range(9):
        write_png(tmp_path / "clean" / f"c{i}.png", np.full((20, 24, 3), 10 * (i + 1), np.uint8))
    return tmp_path / "clean"


def identities(batch):
    return [int(round(v)) for v in batch["target"][:, 0, 0, 0] * 255 / 10 - 1]


# ---------------------------------------------------------------------------- sources


def test_paired_folder_pairs_by_stem_and_loads_rgb(paired_dir):
    source = PairedFolder(paired_dir / "in", paired_dir / "gt")
    assert len(source) == 6
    record = source[0]
    assert record["name"] == "im0"
    assert record["input"].dtype == np.uint8 and record["input"].shape == (40, 50, 3)
    assert source.image_hw(3) == (44, 70)
    np.testing.assert_array_equal(record["input"][..., :2], coordinate_image(40, 50, 1)[..., :2])


def test_folder_errors_name_the_problem(tmp_path, paired_dir):
    with pytest.raises(FileNotFoundError, match="nope"):
        PairedFolder(paired_dir / "in", tmp_path / "nope")
    write_png(paired_dir / "in" / "lonely.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="lonely"):
        PairedFolder(paired_dir / "in", paired_dir / "gt")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not an image at all")
    source = CleanFolder(broken)
    with pytest.raises(ValueError, match="bad.png"):
        source[0]


def test_greyscale_and_16bit_images_become_rgb(tmp_path):
    write_png(tmp_path / "g" / "a.png", np.arange(12, dtype=np.uint8).reshape(3, 4))
    Image.fromarray(np.full((3, 4), 65535, np.uint16)).save(tmp_path / "g" / "b.png")
    source = CleanFolder(tmp_path / "g")
    grey = source[0]["target"]
    assert grey.shape == (3, 4, 3) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey[..., 1], np.arange(12).reshape(3, 4))
    deep = source[1]["target"]
    assert deep.dtype == np.uint16 and deep.shape == (3, 4, 3) and (deep == 65535).all()


def test_bundled_photos_split_is_fixed_and_disjoint():
    train, heldout = BundledPhotos("train"), BundledPhotos("heldout")
    assert len(train) >= 4 and len(heldout) >= 2
    assert not set(train.names) & set(heldout.names)
    # Both motorcycle views are one scene and stay on the same side.
    assert ("motorcycle_left" in train.names) == ("motorcycle_right" in train.names)
    assert BundledPhotos("train").names == train.names
    for i in range(len(train)):
        record = train[i]
        assert record["target"].dtype == np.uint8 and record["target"].shape[-1] == 3
        assert set(record) == {"target", "name"}
    with pytest.raises(ValueError, match="split"):
        BundledPhotos("test")


class _TinyPairs:
    """A TFDS builder defined here so TfdsSource can be tested without the real builders."""

    @staticmethod
    def prepare(data_dir, count=5):
        import tensorflow_datasets as tfds

        class JaxirPipelinesTestPairs(tfds.core.GeneratorBasedBuilder):
            VERSION = tfds.core.Version("1.0.0")

            def _info(self):
                image = tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib")
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                    {"blurry": image, "sharp": image, "name": tfds.features.Text()}))

            def _split_generators(self, dl_manager):
                return {"train": self._generate_examples()}

            def _generate_examples(self):
                for i in range(count):
                    yield i, {"blurry": coordinate_image(20 + i, 22, 1),
                              "sharp": coordinate_image(20 + i, 22, 2), "name": f"p{i}"}

        JaxirPipelinesTestPairs(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
        return "jaxir_pipelines_test_pairs"


def test_tfds_source_renames_features_and_feeds_the_pipeline(tmp_path):
    name = _TinyPairs.prepare(tmp_path)
    source = TfdsSource(name, "train", tmp_path, features={"input": "blurry", "target": "sharp", "name": "name"})
    assert len(source) == 5
    names = sorted(source[i]["name"] for i in range(len(source)))
    assert names == [f"p{i}" for i in range(5)]
    record = source[0]  # TFDS stores examples in key-hash order; the name tells the size
    assert isinstance(record["name"], str) and set(record) == {"input", "target", "name"}
    assert record["input"].shape == (20 + int(record["name"][1:]), 22, 3) == record["target"].shape
    batch = next(iter(make_train_dataset(source, crop_size=8, batch_size=2, seed=0, shard=SHARD1)))
    np.testing.assert_array_equal(batch["input"][..., :2], batch["target"][..., :2])
    with pytest.raises(ValueError, match="missing_feature"):
        TfdsSource(name, "train", tmp_path, features=["missing_feature"])
    with pytest.raises(FileNotFoundError, match="no_such_dataset"):
        TfdsSource("no_such_dataset", "train", tmp_path)


# ---------------------------------------------------------------------------- train pipeline


def test_crops_and_transforms_are_identical_on_every_view(paired_dir):
    source = PairedFolder(paired_dir / "in", paired_dir / "gt")
    dataset = make_train_dataset(source, crop_size=8, batch_size=3, seed=3, shard=SHARD1)
    orientations = set()
    for batch in batches(dataset, 8):
        assert batch["input"].shape == batch["target"].shape == (3, 8, 8, 3)
        assert batch["input"].dtype == np.float32 and batch["seed"].dtype == np.uint32
        coords = np.rint(batch["target"] * 255).astype(int)
        np.testing.assert_array_equal(np.rint(batch["input"] * 255)[..., :2], coords[..., :2])
        assert (np.rint(batch["input"][..., 2] * 255) == 1).all() and (coords[..., 2] == 2).all()
        for patch in coords:
            rows, cols = patch[..., 0], patch[..., 1]
            if rows.max() - rows.min() != 7 or cols.max() - cols.min() != 7:
                continue  # the 10x12 image is padded, checked separately
            top, left = rows.min(), cols.min()
            window = coordinate_image(200, 200, 2)[top:top + 8, left:left + 8].astype(int)
            matches = [i for i, v in enumerate(dihedral_variants(window)) if (v == patch).all()]
            assert len(matches) == 1, "patch must be one dihedral transform of one window"
            orientations.add(matches[0])
    assert len(orientations) > 2, "flips/rot90 should vary between records"


def test_no_augment_keeps_orientation_and_small_images_are_reflect_padded(tmp_path):
    image = coordinate_image(10, 12, 2)
    write_png(tmp_path / "small" / "s.png", image)
    source = CleanFolder(tmp_path / "small")
    batch = next(iter(make_train_dataset(source, crop_size=16, batch_size=1, seed=0,
                                         augment=False, shard=SHARD1)))
    expected = np.pad(image, ((0, 6), (0, 4), (0, 0)), mode="reflect").astype(np.float32) / 255
    np.testing.assert_array_equal(batch["target"][0], expected)


def test_dual_pixel_views_are_concatenated_and_aligned(tmp_path):
    for i in range(3):
        for view, folder in ((1, "l"), (3, "r"), (2, "t")):
            write_png(tmp_path / folder / f"d{i}.png", coordinate_image(30, 30, view))
    source = ImageFolders({"input_left": tmp_path / "l", "input_right": tmp_path / "r",
                           "target": tmp_path / "t"})
    batch = next(iter(make_train_dataset(source, crop_size=12, batch_size=2, seed=5,
                                         dual_pixel=True, shard=SHARD1)))
    assert set(batch) == {"input", "target", "seed"}
    assert batch["input"].shape == (2, 12, 12, 6)
    values = np.rint(batch["input"] * 255)
    np.testing.assert_array_equal(values[..., 0:2], np.rint(batch["target"] * 255)[..., :2])
    np.testing.assert_array_equal(values[..., 3:5], values[..., 0:2])
    assert (values[..., 2] == 1).all() and (values[..., 5] == 3).all()
    with pytest.raises(ValueError, match="dual_pixel"):
        next(iter(make_train_dataset(CleanFolder(tmp_path / "t"), crop_size=4, batch_size=1,
                                     seed=0, dual_pixel=True, shard=SHARD1)))


def test_same_seed_same_batches_other_seed_other_batches():
    source = BundledPhotos("train")
    make = lambda seed: make_train_dataset(source, crop_size=24, batch_size=2, seed=seed, shard=SHARD1)
    first, again, other = batches(make(7), 4), batches(make(7), 4), batches(make(8), 4)
    assert_batches_equal(first, again)
    assert not np.array_equal(first[0]["target"], other[0]["target"])
    seeds = np.concatenate([b["seed"] for b in first])
    assert len(set(seeds.tolist())) == len(seeds), "per-record seeds should differ"


def test_iterator_state_round_trip_resumes_exactly():
    dataset = make_train_dataset(BundledPhotos("train"), crop_size=16, batch_size=3, seed=11, shard=SHARD1)
    iterator = iter(dataset)
    for _ in range(5):  # crosses an epoch boundary (7 photos / 3 per batch)
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(4)]
    fresh = iter(dataset)
    fresh.set_state(state)
    assert_batches_equal([next(fresh) for _ in range(4)], expected)


def test_worker_prefetch_gives_the_same_batches_and_resumes():
    source = BundledPhotos("train")
    common = dict(crop_size=16, batch_size=2, seed=2, shard=SHARD1)
    reference = batches(make_train_dataset(source, **common), 6)
    dataset = make_train_dataset(source, num_workers=1, **common)
    iterator = iter(dataset)
    head = [next(iterator) for _ in range(3)]
    state = iterator.get_state()
    tail = [next(iterator) for _ in range(3)]
    iterator.close()
    assert_batches_equal(head + tail, reference)
    fresh = iter(dataset)
    fresh.set_state(state)
    assert_batches_equal([next(fresh) for _ in range(3)], tail)
    fresh.close()


def test_orbax_saves_and_restores_the_iterator_with_the_train_state(tmp_path):
    import orbax.checkpoint as ocp

    dataset = make_train_dataset(BundledPhotos("train"), crop_size=16, batch_size=2, seed=4, shard=SHARD1)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    train_state = {"step": np.asarray(3), "w": np.arange(4.0)}
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(train_state),
                                                data=grain.checkpoint.CheckpointSave(iterator)))
        manager.wait_until_finished()
    expected = [next(iterator) for _ in range(3)]

    fresh = iter(dataset)
    with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
        restored = manager.restore(3, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(train_state), data=grain.checkpoint.CheckpointRestore(fresh)))
    np.testing.assert_array_equal(restored["state"]["w"], train_state["w"])
    assert restored["data"] is fresh
    assert_batches_equal([next(fresh) for _ in range(3)], expected)


def test_process_shards_are_disjoint_equal_and_seeds_do_not_depend_on_sharding(identity_dir):
    source = CleanFolder(identity_dir)

    def run(shard, epochs=2):
        dataset = make_train_dataset(source, crop_size=4, batch_size=1, seed=9, num_epochs=epochs, shard=shard)
        seen = [(identities(b)[0], int(b["seed"][0])) for b in dataset]
        return seen

    single = run((0, 1))
    assert len(single) == 18 and sorted(i for i, _ in single[:9]) == list(range(9))
    shard0, shard1 = run((0, 2)), run((1, 2))
    assert len(shard0) == len(shard1) == 8  # 9 records -> 4 per process per epoch
    for epoch in range(2):
        ids0 = {i for i, _ in shard0[4 * epoch:4 * epoch + 4]}
        ids1 = {i for i, _ in shard1[4 * epoch:4 * epoch + 4]}
        assert len(ids0) == len(ids1) == 4 and not ids0 & ids1
    # A record's seed is a function of (seed, epoch, record) only.
    seed_of = {(epoch, i): s for epoch in range(2) for i, s in single[9 * epoch:9 * epoch + 9]}
    for shard in (shard0, shard1):
        for position, (i, s) in enumerate(shard):
            assert seed_of[(position // 4, i)] == s


def test_epochs_reshuffle_and_finite_epochs_stop(identity_dir):
    dataset = make_train_dataset(CleanFolder(identity_dir), crop_size=4, batch_size=2, seed=1,
                                 num_epochs=2, shard=SHARD1)
    order = [i for b in dataset for i in identities(b)]
    assert len(order) == 18  # 2 epochs x 9 records, batches of 2 straddle the epoch boundary
    assert sorted(order[:9]) == sorted(order[9:]) == list(range(9))
    assert order[:9] != order[9:]


def test_bad_arguments_raise_clear_errors(identity_dir):
    source = CleanFolder(identity_dir)
    with pytest.raises(ValueError, match="crop_size and batch_size"):
        make_train_dataset(source, seed=0, shard=SHARD1)
    with pytest.raises(ValueError, match="shard"):
        make_train_dataset(source, crop_size=4, batch_size=1, seed=0, shard=(2, 2))
    with pytest.raises(ValueError, match="seed"):
        make_train_dataset(source, crop_size=4, batch_size=1, seed=-1, shard=SHARD1)
    with pytest.raises(ValueError, match="leave crop_size and batch_size None"):
        make_train_dataset(source, crop_size=4, seed=0, shard=SHARD1,
                           schedule=ProgressiveSchedule((1,), (4,), (1,)))
    with pytest.raises(ValueError, match="fewer than"):
        make_train_dataset(source, crop_size=4, batch_size=1, seed=0, shard=(0, 10))


def test_default_shard_uses_jax_process():
    import jax

    dataset = make_train_dataset(BundledPhotos("train"), crop_size=8, batch_size=1, seed=0)
    explicit = make_train_dataset(BundledPhotos("train"), crop_size=8, batch_size=1, seed=0,
                                  shard=(jax.process_index(), jax.process_count()))
    assert_batches_equal(batches(dataset, 2), batches(explicit, 2))


# ---------------------------------------------------------------------------- progressive schedule


def test_schedule_stage_arithmetic_matches_restormer():
    schedule = ProgressiveSchedule.restormer()
    assert schedule.boundaries == (92000, 156000, 204000, 240000, 276000)
    assert schedule.sizes(0) == (128, 8) and schedule.sizes(91999) == (128, 8)
    assert schedule.sizes(92000) == (160, 5) and schedule.sizes(299999) == (384, 1)
    assert schedule.sizes(10**7) == (384, 1)
    assert schedule.first_record(92001) == 92000 * 8 + 5
    with pytest.raises(ValueError, match="same non-zero length"):
        ProgressiveSchedule((1, 2), (8,), (1, 1))


def test_progressive_batches_change_at_boundaries_and_consume_every_record_once():
    source = BundledPhotos("train")
    schedule = ProgressiveSchedule(milestones=(3, 2, 2), patch_sizes=(16, 24, 32), batch_sizes=(4, 2, 1))
    progressive = batches(make_train_dataset(source, schedule=schedule, seed=6, shard=SHARD1), 9)
    shapes = [b["target"].shape[:3] for b in progressive]
    assert shapes == [(4, 16, 16)] * 3 + [(2, 24, 24)] * 2 + [(1, 32, 32)] * 4
    # Same record stream as a batch-size-1 pipeline: no record skipped or repeated.
    flat = batches(make_train_dataset(source, crop_size=8, batch_size=1, seed=6, shard=SHARD1), 12 + 4 + 4)
    np.testing.assert_array_equal(np.concatenate([b["seed"] for b in progressive]),
                                  np.concatenate([b["seed"] for b in flat]))


def test_progressive_resume_across_a_boundary():
    schedule = ProgressiveSchedule(milestones=(3, 2, 5), patch_sizes=(8, 12, 16), batch_sizes=(3, 2, 1))
    dataset = make_train_dataset(BundledPhotos("train"), schedule=schedule, seed=1, shard=SHARD1)
    iterator = iter(dataset)
    for _ in range(2):
        next(iterator)
    state = iterator.get_state()
    assert state == {"next_index": 2}  # the state is the step
    expected = [next(iterator) for _ in range(4)]  # steps 2..5 span two boundaries
    fresh = iter(dataset)
    fresh.set_state(state)
    resumed = [next(fresh) for _ in range(4)]
    assert_batches_equal(resumed, expected)
    assert [b["target"].shape[0] for b in resumed] == [3, 2, 2, 1]


def test_progressive_with_finite_epochs_counts_full_batches(identity_dir):
    schedule = ProgressiveSchedule(milestones=(2, 100), patch_sizes=(4, 6), batch_sizes=(4, 3))
    dataset = make_train_dataset(CleanFolder(identity_dir), schedule=schedule, seed=0,
                                 num_epochs=2, shard=SHARD1)
    sizes = [b["target"].shape[0] for b in dataset]
    assert sizes == [4, 4, 3, 3, 3]  # 18 records: 8 in stage 0, then 3 full batches of 3
    assert schedule.num_steps(18) == 5 and schedule.num_steps(19) == 5 and schedule.num_steps(20) == 6


# ---------------------------------------------------------------------------- eval pipeline


def test_pad_and_crop_round_trip_numpy_and_jax():
    import jax.numpy as jnp

    x = np.random.default_rng(0).random((2, 13, 18, 3), dtype=np.float32)
    padded = pad_to_multiple(x, 8)
    assert padded.shape == (2, 16, 24, 3) and isinstance(padded, np.ndarray)
    np.testing.assert_array_equal(padded[:, 13, :18], x[:, 11])  # reflect: no edge repeat
    np.testing.assert_array_equal(crop_to(padded, (13, 18)), x)
    padded_jax = pad_to_multiple(jnp.asarray(x), 8)
    np.testing.assert_allclose(np.asarray(padded_jax), padded)
    hw = np.array([[13, 18], [13, 18]], np.int32)
    np.testing.assert_array_equal(np.asarray(crop_to(padded_jax, hw)), x)
    assert pad_to_multiple(x, 1) is x
    with pytest.raises(ValueError, match="one size"):
        crop_to(padded, np.array([[13, 18], [12, 18]]))


def test_eval_batches_group_equal_sizes_in_fixed_order(tmp_path):
    sizes = [(20, 30), (17, 21), (20, 30), (20, 30), (17, 21)]
    for i, (h, w) in enumerate(sizes):
        write_png(tmp_path / "in" / f"e{i}.png", coordinate_image(h, w, 1))
        write_png(tmp_path / "gt" / f"e{i}.png", coordinate_image(h, w, 2))
    source = PairedFolder(tmp_path / "in", tmp_path / "gt")
    dataset = make_eval_dataset(source, pad_multiple=8, batch_size=2)
    got = list(dataset)
    assert len(dataset) == 3 and list(dataset[1]["name"]) == ["e3"]
    assert [list(b["name"]) for b in got] == [["e0", "e2"], ["e3"], ["e1", "e4"]]
    assert [tuple(b["hw"][0]) for b in got] == [(20, 30), (20, 30), (17, 21)]
    for batch in got:
        assert batch["input"].shape[1] % 8 == 0 and batch["input"].shape[2] % 8 == 0
        assert batch["target"].shape[1:3] == tuple(batch["hw"][0])
        restored = crop_to(batch["input"], batch["hw"])
        np.testing.assert_array_equal(restored[..., :2], batch["target"][..., :2])
        assert batch["seed"].dtype == np.uint32
    assert_batches_equal(list(dataset), got)


def test_eval_dual_pixel_input_is_padded_six_channels(tmp_path):
    for view, folder in ((1, "l"), (3, "r"), (2, "t")):
        write_png(tmp_path / folder / "d.png", coordinate_image(13, 17, view))
    source = ImageFolders({"input_left": tmp_path / "l", "input_right": tmp_path / "r",
                           "target": tmp_path / "t"})
    batch = make_eval_dataset(source, pad_multiple=8, dual_pixel=True)[0]
    assert set(batch) == {"input", "target", "hw", "seed", "name"}
    assert batch["input"].shape == (1, 16, 24, 6) and batch["target"].shape == (1, 13, 17, 3)
    np.testing.assert_array_equal(crop_to(batch["input"], batch["hw"])[..., 3:5], batch["target"][..., :2])


def test_eval_on_clean_source_has_no_input_and_keeps_seeds_fixed():
    heldout = BundledPhotos("heldout")
    first = list(make_eval_dataset(heldout, batch_size=4))
    assert all("input" not in b for b in first)
    assert sum(len(b["name"]) for b in first) == len(heldout)
    assert_batches_equal(first, list(make_eval_dataset(heldout, batch_size=4)))
