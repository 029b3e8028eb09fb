"""16-bit images end to end: OpenCV decoding, DPDD's uint16 records, float pipelines."""

from __future__ import annotations

import io
import pathlib
import struct
import sys
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from data_pipelines import builders
from data_pipelines.builders import base
from data_pipelines.pipelines import make_eval_dataset, make_train_dataset
from data_pipelines.sources import TfdsSource, decode_png16, load_image
from jaxir.io import read_image, write_image

H, W = 6, 10
VIEWS = {"input": ("c", "source", ""), "target": ("c", "target", ""),
         "input_left": ("l", "source", "_L"), "input_right": ("r", "source", "_R")}


def deep_samples(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random uint16 samples, none a multiple of 257, so no 8-bit decoding can reproduce them."""
    samples = rng.integers(0, 65536, shape, dtype=np.uint16)
    return np.where(samples % 257 == 0, samples + 1, samples).astype(np.uint16)


def write_png16(path: pathlib.Path, samples: np.ndarray) -> None:
    """samples: HxWxC uint16 with C = 1 grey, 3 RGB, 4 RGBA, written by OpenCV (which takes BGR order)."""
    to_opencv = {1: lambda x: x[..., 0], 3: lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2BGR),
                 4: lambda x: cv2.cvtColor(x, cv2.COLOR_RGBA2BGRA)}
    encoded, data = cv2.imencode(".png", to_opencv[samples.shape[-1]](samples))
    assert encoded and data[24] == 16, "OpenCV did not write a 16-bit PNG"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.tobytes())


# Adam7 passes as (x0, y0, dx, dy).
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png16_by_hand(samples: np.ndarray, *, interlace: bool = False, chunks: dict[bytes, bytes] | None = None) -> bytes:
    """A 16-bit PNG OpenCV cannot write (grey+alpha, Adam7 interlacing, extra chunks): unfiltered rows, zlib."""
    height, width, channels = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    passes = [samples[y0::dy, x0::dx] for x0, y0, dx, dy in ADAM7] if interlace else [samples]
    scanlines = b"".join(b"\x00" + row.astype(">u2").tobytes() for image in passes if image.size for row in image)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, int(interlace))
    extra = b"".join(chunk(kind, data) for kind, data in (chunks or {}).items())
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + extra + chunk(b"IDAT", zlib.compress(scanlines))
            + chunk(b"IEND", b""))


def expected_rgb(samples: np.ndarray) -> np.ndarray:
    return np.repeat(samples[..., :1], 3, -1) if samples.shape[-1] <= 2 else samples[..., :3]


# -- reading files -------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 4, 1, 2], ids=["rgb", "rgba", "grey", "grey_alpha"])
@pytest.mark.parametrize("interlace", [False, True], ids=["plain", "interlaced"])
def test_16bit_png_is_read_at_full_precision(channels, interlace, tmp_path):
    samples = deep_samples(np.random.default_rng(channels), (H, W, channels))
    path = tmp_path / "deep.png"
    if channels == 2 or interlace:
        path.write_bytes(png16_by_hand(samples, interlace=interlace))
    else:
        write_png16(path, samples)

    np.testing.assert_array_equal(decode_png16(path.read_bytes()), samples)  # channels as stored, RGB order

    loaded = load_image(path)
    assert loaded.dtype == np.uint16 and loaded.shape == (H, W, 3)
    np.testing.assert_array_equal(loaded, expected_rgb(samples))

    image = read_image(path)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, expected_rgb(samples).astype(np.float32) / np.float32(65535))


def test_transparency_chunk_adds_no_channel():
    # OpenCV turns an RGB tRNS chunk into an alpha channel; decode_png16 keeps the file's 3 samples.
    samples = deep_samples(np.random.default_rng(7), (H, W, 3))
    data = png16_by_hand(samples, chunks={b"tRNS": samples[0, 0].astype(">u2").tobytes()})
    np.testing.assert_array_equal(decode_png16(data), samples)


def test_decode_png16_rejects_other_input():
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(buffer, format="PNG")
    with pytest.raises(ValueError, match="expected a 16-bit PNG, got 8 bits"):
        decode_png16(buffer.getvalue())
    with pytest.raises(ValueError, match="not a PNG"):
        decode_png16(b"GIF89a" + bytes(40))
    whole = png16_by_hand(deep_samples(np.random.default_rng(8), (H, W, 3)))
    with pytest.raises(ValueError, match="corrupt 16-bit PNG"):
        decode_png16(whole[: len(whole) - 20])


def test_pillow_alone_would_lose_the_low_byte(tmp_path):
    # Guards the premise: if Pillow ever decodes 48-bit PNGs, OpenCV may no longer be needed.
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


# -- decoding a 16-bit split ----------------------------------------------------


def test_uint16_views_decode_files_and_pass_arrays_in_order(tmp_path):
    rng = np.random.default_rng(6)
    records, expected = [], []
    for index in range(3):
        views = {key: deep_samples(rng, (H, W, 3)) for key in ("input", "target")}
        write_png16(tmp_path / f"{index}_input.png", views["input"])
        records.append(base.Record(name=str(index), images={
            "input": tmp_path / f"{index}_input.png", "target": views["target"]}))  # arrays pass through
        expected.append(views)

    decoded = list(base._uint16_views(records, ("input", "target")))
    assert len(decoded) == len(expected)
    for views, want in zip(decoded, expected):
        for key in ("input", "target"):
            assert views[key].dtype == np.uint16
            np.testing.assert_array_equal(views[key], want[key])

    whole = (tmp_path / "1_input.png").read_bytes()
    (tmp_path / "1_input.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="1_input.png"):
        list(base._uint16_views(records, ("input", "target")))
