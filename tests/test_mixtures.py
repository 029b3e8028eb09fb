"""All-in-one mixtures: task labels, weights, frequencies, sharding, on-device synthesis hook."""

import collections

import numpy as np
import pytest

from data_pipelines import mixtures
from data_pipelines.mixtures import (TASK_IDS, Mixture, Task, build_mixture, make_mixture,
                                     synthesize_task_inputs)
from data_pipelines.pipelines import make_train_dataset

SHARD1 = (0, 1)


class ListSource:
    """In-memory source; each image is constant with a value encoding (kind, index)."""

    def __init__(self, kind, count, paired, size=(12, 14)):
        self.kind, self.count, self.paired, self.size = kind, count, paired, size

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        value = np.uint8(self.kind * 40 + index)
        record = {"target": np.full(self.size + (3,), value, np.uint8), "name": f"{self.kind}-{index}"}
        if self.paired:
            record["input"] = np.full(self.size + (3,), 255 - value, np.uint8)
        return record


def fixture_sources():
    return {"denoise": ListSource(0, 10, paired=False), "derain": ListSource(1, 4, paired=True),
            "dehaze": ListSource(2, 20, paired=True), "deblur": ListSource(3, 6, paired=True),
            "lowlight": ListSource(4, 5, paired=True)}


def take_records(mixture, n, seed=0, shard=SHARD1, batch_size=10):
    iterator = iter(make_train_dataset(mixture, crop_size=4, batch_size=batch_size, seed=seed, shard=shard))
    out = collections.defaultdict(list)
    for _ in range(n // batch_size):
        batch = next(iterator)
        for key, value in batch.items():
            out[key].append(value)
    return {key: np.concatenate(values) for key, values in out.items()}


def test_promptir_weights_are_dataset_sizes_times_official_repeats():
    mixture = make_mixture("aio3", fixture_sources())
    counts = {"denoise_15": 10 * 3, "denoise_25": 10 * 3, "denoise_50": 10 * 3, "derain": 4 * 120,
              "dehaze": 20 * 1}
    total = sum(counts.values())
    assert mixture.weights == pytest.approx({k: v / total for k, v in counts.items()})
    assert mixture.task_names == {0: "denoise_15", 1: "denoise_25", 2: "denoise_50", 3: "derain", 4: "dehaze"}
    assert set(mixture.degradations) == {0, 1, 2}
    assert mixture.degradations[2] == ({"name": "gaussian_noise", "sigma": 50 / 255},)


def test_task_frequencies_follow_the_weights_and_labels_match_records():
    mixture = make_mixture("aio3", fixture_sources())
    records = take_records(mixture, 1200)
    assert records["task"].dtype == np.int32 and records["sigma"].dtype == np.float32
    frequencies = np.bincount(records["task"], minlength=5) / len(records["task"])
    for name, weight in mixture.weights.items():
        assert frequencies[TASK_IDS[name]] == pytest.approx(weight, abs=0.02), name
    kinds = np.rint(records["target"][:, 0, 0, 0] * 255).astype(int) // 40
    expected_kind = {0: 0, 1: 0, 2: 0, 3: 1, 4: 2}
    assert all(expected_kind[t] == k for t, k in zip(records["task"], kinds))
    sigmas = {0: 15 / 255, 1: 25 / 255, 2: 50 / 255, 3: 0.0, 4: 0.0}
    np.testing.assert_allclose(records["sigma"], [sigmas[t] for t in records["task"]], rtol=1e-6)
    # Clean-only tasks carry input == target until the train step synthesises it.
    clean = records["task"] < 3
    np.testing.assert_array_equal(records["input"][clean], records["target"][clean])
    assert (records["input"][~clean] != records["target"][~clean]).all()


def test_uniform_airnet_and_five_task_weightings():
    airnet = make_mixture("aio3", fixture_sources(), weighting="airnet")
    assert airnet.weights == pytest.approx({n: 0.2 for n in airnet.weights})
    frequencies = np.bincount(take_records(airnet, 500)["task"], minlength=5) / 500
    np.testing.assert_allclose(frequencies, 0.2, atol=0.02)

    moce = make_mixture("aio5", fixture_sources())
    assert list(moce.weights) == ["denoise_15", "denoise_25", "denoise_50", "derain", "dehaze",
                                  "deblur", "lowlight"]
    darcot = make_mixture("aio5", fixture_sources(), weighting="da_rcot")
    total = 10 * 5 + 4 * 360 + 20 + 6 * 35 + 5 * 150
    assert darcot.weights == pytest.approx({"denoise_25": 50 / total, "derain": 1440 / total,
                                            "dehaze": 20 / total, "deblur": 210 / total,
                                            "lowlight": 750 / total})
    records = take_records(darcot, 300)
    assert set(np.unique(records["task"])) <= {1, 3, 4, 5, 6}


def test_mixture_is_deterministic_resumable_and_sharded_disjointly():
    mixture = make_mixture("aio3", fixture_sources())
    first, again = take_records(mixture, 60, seed=3), take_records(mixture, 60, seed=3)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["seed"], take_records(mixture, 60, seed=4)["seed"])

    dataset = make_train_dataset(mixture, crop_size=4, batch_size=4, seed=3, shard=SHARD1)
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(2)]
    fresh = iter(dataset)
    fresh.set_state(state)
    for got, want in zip([next(fresh) for _ in range(2)], expected):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])

    # Process shards split the single-process stream: every other mixed record each.
    single = take_records(mixture, 40, seed=3, batch_size=1)
    halves = [take_records(mixture, 20, seed=3, shard=(i, 2), batch_size=1) for i in range(2)]
    np.testing.assert_array_equal(halves[0]["seed"], single["seed"][0::2])
    np.testing.assert_array_equal(halves[1]["seed"], single["seed"][1::2])
    assert not set(halves[0]["seed"].tolist()) & set(halves[1]["seed"].tolist())


def test_synthesize_task_inputs_replaces_only_synthetic_tasks():
    import jax
    import jax.numpy as jnp

    mixture = make_mixture("aio3", fixture_sources())
    batch = take_records(mixture, 40)
    calls = []

    def fake_synthesize(spec, clean, seeds):
        calls.append(spec)
        return clean + spec[0]["sigma"] + seeds[:, None, None, None].astype(jnp.float32) * 0

    out = jax.jit(lambda b: synthesize_task_inputs(b, mixture.degradations, fake_synthesize))(batch)
    out = jax.tree.map(np.asarray, out)
    assert len(calls) == 3
    expected = np.where(batch["task"][:, None, None, None] < 3,
                        batch["target"] + batch["sigma"][:, None, None, None], batch["input"])
    np.testing.assert_allclose(out["input"], expected, rtol=1e-6)


def test_all_clean_mixture_gets_inputs_only_from_synthesis():
    clean = ListSource(0, 8, paired=False)
    mixture = Mixture([Task("denoise_15", clean, degradation=mixtures.noise_degradation(15)),
                       Task("denoise_50", clean, degradation=mixtures.noise_degradation(50))])
    batch = take_records(mixture, 20)
    assert "input" not in batch
    out = synthesize_task_inputs(batch, mixture.degradations,
                                 lambda spec, clean_images, seeds: clean_images * 0 + spec[0]["sigma"])
    np.testing.assert_allclose(np.asarray(out["input"])[:, 0, 0, 0],
                               np.where(batch["task"] == 0, 15 / 255, 50 / 255), rtol=1e-6)


def test_mixture_errors_are_clear():
    sources = fixture_sources()
    with pytest.raises(ValueError, match="no source for task 'dehaze'"):
        make_mixture("aio3", {k: v for k, v in sources.items() if k != "dehaze"})
    with pytest.raises(ValueError, match="no degradation"):
        Mixture([Task("derain", ListSource(0, 3, paired=False))])
    with pytest.raises(ValueError, match="unknown protocol"):
        make_mixture("aio4", sources)
    with pytest.raises(ValueError, match="weighting"):
        make_mixture("aio5", sources, weighting="promptir")
    with pytest.raises(ValueError, match="num_epochs"):
        make_train_dataset(make_mixture("aio3", sources), crop_size=4, batch_size=2, seed=0,
                           num_epochs=1, shard=SHARD1)


def _prepare_tfds(data_dir, name, count, paired):
    import tensorflow_datasets as tfds

    image = tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint8, encoding="zlib")
    features = {"target": image, **({"input": image} if paired else {})}

    def info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

    def split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def generate_examples(self):
        for i in range(count):
            yield i, {key: np.full((9, 9, 3), i, np.uint8) for key in features}

    # tfds registers builders by class name: CamelCase of the dataset name.
    class_name = "".join(part.capitalize() for part in name.split("_"))
    builder = type(class_name, (tfds.core.GeneratorBasedBuilder,), {
        "VERSION": tfds.core.Version("1.0.0"), "_info": info,
        "_split_generators": split_generators, "_generate_examples": generate_examples})
    assert builder.name == name
    builder(data_dir=str(data_dir), file_format="array_record").download_and_prepare()


def test_build_mixture_reads_tfds_datasets_by_name(tmp_path):
    _prepare_tfds(tmp_path, "jaxir_mix_bsd", 3, paired=False)
    _prepare_tfds(tmp_path, "jaxir_mix_wed", 5, paired=False)
    _prepare_tfds(tmp_path, "jaxir_mix_rain", 2, paired=True)
    _prepare_tfds(tmp_path, "jaxir_mix_haze", 7, paired=True)
    mixture = build_mixture("aio3", tmp_path, datasets={
        "denoise": ["jaxir_mix_bsd:train", "jaxir_mix_wed"], "derain": ("jaxir_mix_rain", "train"),
        "dehaze": "jaxir_mix_haze"})
    assert [len(t.source) for t in mixture.tasks] == [8, 8, 8, 2, 7]
    total = 3 * 8 * 3 + 2 * 120 + 7
    assert mixture.weights["derain"] == pytest.approx(240 / total)
    records = take_records(mixture, 20)
    assert records["input"].shape == (20, 4, 4, 3) and set(records) == {"input", "target", "seed",
                                                                         "task", "sigma"}


def _write_image(path, rgb, size=(16, 16)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size + (3,), rgb, np.uint8)).save(path, quality=95)


def test_default_denoise_data_is_colour_bsd400_and_wed(tmp_path):
    from data_pipelines import builders

    assert mixtures.DEFAULT_TRAIN_DATASETS["denoise"] == (("bsd400/color", "train"), ("wed", "train"))
    # Tiny official trees: BSDS500 (train + test form the colour BSD400; val is left out) and WED.
    images = tmp_path / "bsds" / "BSR" / "BSDS500" / "data" / "images"
    for folder, name in (("train", "100075.jpg"), ("test", "100007.jpg"), ("test", "2018.jpg"), ("val", "3096.jpg")):
        _write_image(images / folder / name, (200, 40, 90))
    for name in ("00001.bmp", "00002.bmp"):
        _write_image(tmp_path / "wed" / "exploration_database_and_code" / "pristine_images" / name, (30, 160, 220))
    builders.build("bsd400/color", tmp_path / "bsds", tmp_path / "data")
    builders.build("wed", tmp_path / "wed", tmp_path / "data")

    mixture = build_mixture("aio3", tmp_path / "data", tasks=["denoise_15", "denoise_25", "denoise_50"])
    assert [len(t.source) for t in mixture.tasks] == [3 + 2] * 3
    records = take_records(mixture, 20)
    pixels = records["target"][:, 0, 0] * 255
    distances = np.abs(pixels[:, None, :] - np.array([(200, 40, 90), (30, 160, 220)])[None]).max(-1)
    assert (distances.min(1) <= 3).all(), pixels  # JPEG moves flat colours by a level or two
    assert set(distances.argmin(1)) == {0, 1}  # both BSD400 and WED are drawn, in colour
