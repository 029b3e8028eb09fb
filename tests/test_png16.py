"""16-bit images end to end: pypng decoding, DPDD's uint16 records, float pipelines."""

from __future__ import annotations

import concurrent.futures
import io
import pathlib
import sys

import numpy as np
import png
import pytest
from PIL import Image

from data_pipelines import builders
from data_pipelines.builders import base
from data_pipelines.pipelines import make_eval_dataset, make_train_dataset
from data_pipelines.sources import TfdsSource, load_image
from jaxir.io import read_image, write_image

H, W = 6, 10
VIEWS = {"input": ("c", "source", ""), "target": ("c", "target", ""),
         "input_left": ("l", "source", "_L"), "input_right": ("r", "source", "_R")}


def deep_samples(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random uint16 samples, none a multiple of 257, so no 8-bit decoding can reproduce them."""
    samples = rng.integers(0, 65536, shape, dtype=np.uint16)
    return np.where(samples % 257 == 0, samples + 1, samples).astype(np.uint16)


def write_png16(path: pathlib.Path, samples: np.ndarray, **writer_kwargs) -> None:
    """samples: HxWxC uint16 with C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA."""
    height, width, channels = samples.shape
    writer = png.Writer(width, height, greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16,
                        **writer_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        writer.write(file, samples.reshape(height, width * channels))


def expected_rgb(samples: np.ndarray) -> np.ndarray:
    return np.repeat(samples[..., :1], 3, -1) if samples.shape[-1] <= 2 else samples[..., :3]


# -- reading files -------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4, 1, 2], ids=["rgb", "rgba", "grey", "grey_alpha"])
@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "interlaced"])
def test_16bit_png_is_read_at_full_precision(channels, interlace, tmp_path):
    samples = deep_samples(np.random.default_rng(channels), (H, W, channels))
    path = tmp_path / "deep.png"
    write_png16(path, samples, interlace=interlace)

    loaded = load_image(path)
    assert loaded.dtype == np.uint16 and loaded.shape == (H, W, 3)
    np.testing.assert_array_equal(loaded, expected_rgb(samples))

    image = read_image(path)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, expected_rgb(samples).astype(np.float32) / np.float32(65535))


def test_pillow_alone_would_lose_the_low_byte(tmp_path):
    # Guards the premise: if Pillow ever decodes 48-bit PNGs, pypng may no longer be needed.
    samples = deep_samples(np.random.default_rng(0), (H, W, 3))
    write_png16(tmp_path / "deep.png", samples)
    with Image.open(tmp_path / "deep.png") as image:
        assert np.asarray(image).dtype == np.uint8


def test_8bit_files_still_read_as_uint8(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        loaded = load_image(tmp_path / name)
        assert loaded.dtype == np.uint8
        np.testing.assert_array_equal(loaded, rgb)
        np.testing.assert_array_equal(read_image(tmp_path / name), rgb.astype(np.float32) / np.float32(255))


def test_16bit_grey_from_pillow_is_uint16(tmp_path):
    grey = np.array([[0, 1, 258], [40000, 65534, 65535]], np.uint16)
    Image.fromarray(grey).save(tmp_path / "g.tif")  # not a PNG: Pillow's 'I;16' path
    loaded = load_image(tmp_path / "g.tif")
    assert loaded.dtype == np.uint16
    np.testing.assert_array_equal(loaded, np.repeat(grey[..., None], 3, -1))


def test_corrupt_16bit_png_names_the_file(tmp_path):
    write_png16(tmp_path / "ok.png", deep_samples(np.random.default_rng(2), (H, W, 3)))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.png"):
        load_image(tmp_path / "cut.png")
    with pytest.raises(ValueError, match="cut.png"):
        read_image(tmp_path / "cut.png")
    with pytest.raises(FileNotFoundError, match="absent.png"):
        read_image(tmp_path / "absent.png")


def test_write_image_16bit_round_trips_exactly(tmp_path):
    samples = deep_samples(np.random.default_rng(3), (H, W, 3))
    image = samples.astype(np.float32) / np.float32(65535)
    write_image(tmp_path / "out.png", image, bit_depth=16)
    np.testing.assert_array_equal(load_image(tmp_path / "out.png"), samples)
    np.testing.assert_array_equal(read_image(tmp_path / "out.png"), image)
    with pytest.raises(ValueError, match="PNG only"):
        write_image(tmp_path / "out.jpg", image, bit_depth=16)
    with pytest.raises(ValueError, match="bit_depth"):
        write_image(tmp_path / "out.png", image, bit_depth=12)


# -- 8-bit datasets given 16-bit files ----------------------------------------


def test_8bit_dataset_rounds_16bit_rgb_instead_of_truncating(tmp_path):
    samples = np.full((2, 3, 3), 0x12FF, np.uint16)  # 4863 / 257 = 18.92: rounds to 19, high byte is 18
    write_png16(tmp_path / "deep.png", samples)
    with Image.open(io.BytesIO(base.encode_image(tmp_path / "deep.png"))) as image:
        assert (np.asarray(image) == 19).all()


def test_to_rgb_uint16_scales_8bit_by_257():
    grey_alpha = np.array([[[0, 9], [1, 9], [255, 9]]], np.uint8)
    np.testing.assert_array_equal(base.to_rgb_uint16(grey_alpha)[..., 2], [[0, 257, 65535]])
    with pytest.raises(ValueError, match="dtype float32"):
        base.to_rgb_uint16(np.zeros((2, 2, 3), np.float32))


# -- DPDD records --------------------------------------------------------------


def write_dpdd(manual: pathlib.Path, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Official layout, test split, two scenes of 16-bit views; returns {record name: {view: samples}}."""
    root = manual / "dd_dp_dataset_canon"
    expected = {}
    for image_id in ("1P0A2031", "1P0A2067"):
        views = {}
        for key, (view, folder, suffix) in VIEWS.items():
            views[key] = deep_samples(rng, (H, W, 3))
            write_png16(root / f"test_{view}" / folder / f"{image_id}{suffix}.png", views[key])
        expected[f"{image_id}.png"] = views
    return expected


@pytest.fixture(scope="module")
def dpdd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dpdd16")
    expected = write_dpdd(tmp / "manual", np.random.default_rng(4))
    builders.build("dpdd", tmp / "manual", tmp / "data")
    return tmp / "data", expected


def test_dpdd_records_keep_exact_uint16_values(dpdd):
    data_dir, expected = dpdd
    source = builders.data_source("dpdd", "test", data_dir)
    assert len(source) == len(expected)
    for index in range(len(source)):
        record = source[index]
        views = expected[record["name"].decode()]
        for key, samples in views.items():
            assert record[key].dtype == np.uint16, key
            np.testing.assert_array_equal(record[key], samples, err_msg=key)
    assert "tensorflow" not in sys.modules


def test_dpdd_8bit_files_are_scaled_by_257(tmp_path):
    array = np.random.default_rng(5).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for folder in ("inputC", "inputL", "inputR", "target"):
        path = tmp_path / "manual" / "test" / "DPDD" / folder / "a.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)
    builders.build("dpdd", tmp_path / "manual", tmp_path / "data")
    record = builders.data_source("dpdd", "test", tmp_path / "data")[0]
    np.testing.assert_array_equal(record["target"], array.astype(np.uint16) * 257)


def test_train_and_eval_pipelines_give_uint16_over_65535(dpdd):
    data_dir, expected = dpdd
    source = TfdsSource("dpdd", "test", data_dir)
    first = expected[source[0]["name"]]
    scale = np.float32(65535)

    # A full-size crop without flips is the record itself, as float.
    train = iter(make_train_dataset(source, crop_size=(H, W), batch_size=1, seed=0, augment=False,
                                    shard=(0, 1), dual_pixel=True))
    batches = [next(train) for _ in range(len(expected))]
    for batch in batches:
        assert batch["target"].dtype == np.float32 and batch["input"].shape == (1, H, W, 6)
        assert 0.0 <= batch["target"].min() and batch["target"].max() <= 1.0
    by_target = {tuple(b["target"][0, 0, 0]): b for b in batches}
    batch = by_target[tuple(first["target"][0, 0].astype(np.float32) / scale)]
    np.testing.assert_array_equal(batch["target"][0], first["target"].astype(np.float32) / scale)
    np.testing.assert_array_equal(
        batch["input"][0], np.concatenate([first["input_left"], first["input_right"]], -1).astype(np.float32) / scale)

    evaluation = make_eval_dataset(source, pad_multiple=4, batch_size=2)
    batch = evaluation[0]
    assert batch["target"].dtype == np.float32 and batch["input"].shape == (2, 8, 12, 3)
    np.testing.assert_array_equal(batch["target"][0], first["target"].astype(np.float32) / scale)
    np.testing.assert_array_equal(batch["input"][0, :H, :W], first["input"].astype(np.float32) / scale)


# -- parallel decoding of large 16-bit splits ----------------------------------


def test_large_splits_decode_in_worker_processes_in_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    records, expected = [], []
    for index in range(3):
        views = {key: deep_samples(rng, (H, W, 3)) for key in ("input", "target")}
        for key, samples in views.items():
            write_png16(tmp_path / f"{index}_{key}.png", samples)
        records.append(base.Record(name=str(index), images={
            "input": tmp_path / f"{index}_input.png", "target": views["target"]}))  # arrays pass through
        expected.append(views)

    pools = []

    class CountedPool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(base, "PARALLEL_DECODE_MIN_BYTES", 0)
    monkeypatch.setattr(base, "_decode_processes", lambda: 2)
    monkeypatch.setattr(base.concurrent.futures, "ProcessPoolExecutor", CountedPool)
    decoded = list(base._uint16_views(records, ("input", "target")))
    assert len(pools) == 1
    for views, want in zip(decoded, expected):
        for key in ("input", "target"):
            np.testing.assert_array_equal(views[key], want[key])

    whole = (tmp_path / "1_input.png").read_bytes()
    (tmp_path / "1_input.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="1_input.png"):
        list(base._uint16_views(records, ("input", "target")))
