"""Builder API, error messages and TensorFlow-free image encoding."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from data_pipelines import builders
from data_pipelines.builders import base


def _write_lol(manual: pathlib.Path) -> None:
    for folder, n in (("our485", 1), ("our485", 2), ("eval15", 3)):
        for role, value in (("low", 10), ("high", 200)):
            path = manual / "LOLdataset" / folder / role / f"{n}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((8, 8, 3), value + n, np.uint8)).save(path)


@pytest.fixture(scope="module")
def lol_data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lol")
    _write_lol(root / "manual")
    builders.build("lol", root / "manual", root / "data")
    return root / "data"


# -- API ---------------------------------------------------------------------


def test_builders_registry_names_match_tfds_names():
    for name, cls in builders.BUILDERS.items():
        assert cls.name == name
        assert "Official source:" in cls.MANUAL_DOWNLOAD_INSTRUCTIONS, name


def test_data_source_reads_prepared_split(lol_data_dir):
    source = builders.data_source("lol", "train", lol_data_dir)
    assert len(source) == 2
    record = source[1]
    assert record["name"] == b"2.png"
    assert record["input"].dtype == np.uint8 and record["input"].shape == (8, 8, 3)
    assert int(record["input"][0, 0, 0]) == 12 and int(record["target"][0, 0, 0]) == 202


def test_split_arithmetic_is_passed_to_tfds(lol_data_dir):
    assert len(builders.data_source("lol", "train+test", lol_data_dir)) == 3


def test_plain_tfds_data_source_finds_registered_builder(lol_data_dir):
    import tensorflow_datasets as tfds

    source = tfds.data_source("lol", split="test", data_dir=str(lol_data_dir))
    assert len(source) == 1 and source[0]["name"] == b"3.png"


def test_grain_serves_the_data_source(lol_data_dir):
    import grain

    dataset = grain.MapDataset.source(builders.data_source("lol", "train", lol_data_dir)).map(
        lambda r: r["target"].astype(np.float32) / 255.0)
    assert [float(x[0, 0, 0]) for x in dataset] == pytest.approx([201 / 255, 202 / 255])


def test_build_reuses_prepared_dataset(lol_data_dir, tmp_path):
    # Once prepared, the manual files are no longer needed.
    builders.build("lol", tmp_path / "deleted_manual_dir", lol_data_dir)
    assert len(builders.data_source("lol", "test", lol_data_dir)) == 1


def test_reading_needs_no_tensorflow(lol_data_dir):
    code = ("import sys; from data_pipelines import builders; "
            f"s = builders.data_source('lol', 'train', {str(lol_data_dir)!r}); s[0]; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[1])


# -- errors ------------------------------------------------------------------


def test_unknown_dataset_and_config_are_value_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'gopr'"):
        builders.build("gopr", tmp_path, tmp_path)
    with pytest.raises(ValueError, match="no config 'gamma'.*blur_gamma"):
        builders.data_source("gopro/gamma", "test", tmp_path)


def test_unknown_split_is_value_error(lol_data_dir):
    with pytest.raises(ValueError, match="validation"):
        builders.data_source("lol", "validation", lol_data_dir)


def test_unprepared_dataset_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="'hide' is not prepared"):
        builders.data_source("hide", "test", tmp_path)


@pytest.mark.parametrize("name", sorted(builders.BUILDERS))
def test_missing_manual_dir_names_path_and_layout(name, tmp_path):
    missing = tmp_path / "not_downloaded"
    with pytest.raises(FileNotFoundError) as info:
        builders.build(name, missing, tmp_path / "data")
    message = str(info.value)
    assert str(missing) in message
    assert builders.BUILDERS[name].MANUAL_DOWNLOAD_INSTRUCTIONS in message


@pytest.mark.parametrize("name", sorted(builders.BUILDERS))
def test_manual_dir_without_dataset_names_path_and_layout(name, tmp_path):
    manual = tmp_path / "manual"
    (manual / "unrelated").mkdir(parents=True)
    (manual / "unrelated" / "notes.txt").write_text("not a dataset")
    with pytest.raises(FileNotFoundError) as info:
        builders.build(name, manual, tmp_path / "data")
    message = str(info.value)
    assert str(manual) in message and "Official source:" in message


def test_missing_partner_file_is_named(tmp_path):
    manual = tmp_path / "manual"
    _write_lol(manual)
    (manual / "LOLdataset" / "our485" / "high" / "2.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no target for input .*our485/low/2\.png.*our485/high"):
        builders.build("lol", manual, tmp_path / "data")


def test_hazy_image_without_clear_image_is_named(tmp_path):
    hazy = tmp_path / "manual" / "SOTS" / "outdoor" / "hazy" / "0007_0.8_0.2.jpg"
    hazy.parent.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(hazy)
    (hazy.parents[1] / "gt").mkdir()
    with pytest.raises(FileNotFoundError, match=r"0007_0\.8_0\.2\.jpg.*expected 0007\."):
        builders.build("sots_outdoor", tmp_path / "manual", tmp_path / "data")


def test_realblur_list_entry_missing_on_disk_is_named(tmp_path):
    root = tmp_path / "manual"
    root.mkdir()
    (root / "RealBlur_J_test_list.txt").write_text("RB/scene1/gt/gt_1.png RB/scene1/blur/blur_1.png\n")
    with pytest.raises(FileNotFoundError, match=r"lists .*RB/scene1/(gt/gt_1|blur/blur_1)\.png"):
        builders.build("realblur_j", root, tmp_path / "data")


def test_duplicate_ids_are_rejected(tmp_path):
    # '1.png' and '1.jpg' in one folder: which one is the target is ambiguous.
    lol = tmp_path / "lol" / "LOLdataset" / "eval15"
    for role in ("low", "high"):
        (lol / role).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(lol / role / "1.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(lol / "high" / "1.jpg")
    with pytest.raises(ValueError, match="same id '1'"):
        builders.build("lol", tmp_path / "lol", tmp_path / "data")


# -- encoding ----------------------------------------------------------------


def _encoded(image: Image.Image, fmt: str, **save_kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_kwargs)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def test_rgb_png_and_jpeg_files_are_stored_unchanged(tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 7, 3), dtype=np.uint8))
    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG")):
        path = tmp_path / f"x{suffix}"
        path.write_bytes(_encoded(rgb, fmt))
        assert base.encode_image(path) == path.read_bytes()


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK"])
def test_other_modes_become_rgb_png(mode, tmp_path):
    rgb = Image.fromarray(np.random.default_rng(1).integers(0, 255, (6, 5, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    path = tmp_path / ("x.jpg" if fmt == "JPEG" else "x.png")
    path.write_bytes(_encoded(image, fmt))
    decoded = _decode(base.encode_image(path))
    assert decoded.shape == (6, 5, 3) and decoded.dtype == np.uint8
    with Image.open(path) as original:
        np.testing.assert_array_equal(decoded, np.asarray(original.convert("RGB")))


def test_bmp_and_tiff_are_reencoded_losslessly(tmp_path):
    array = np.random.default_rng(2).integers(0, 255, (4, 6, 3), dtype=np.uint8)
    for suffix in (".bmp", ".tif"):
        path = tmp_path / f"x{suffix}"
        Image.fromarray(array).save(path)
        data = base.encode_image(path)
        assert data.startswith(b"\x89PNG")
        np.testing.assert_array_equal(_decode(data), array)


def test_sixteen_bit_grey_is_scaled_to_eight_bits(tmp_path):
    grey = np.array([[0, 257, 65535], [128, 32896, 1000]], np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    decoded = _decode(base.encode_image(path))
    np.testing.assert_array_equal(decoded[..., 0], np.round(grey / 257).astype(np.uint8))
    assert (decoded == decoded[..., :1]).all()


def test_arrays_are_encoded_as_png():
    array = np.random.default_rng(3).integers(0, 255, (5, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode(base.encode_image(array)), array)
    np.testing.assert_array_equal(_decode(base.encode_image(array[..., 0]))[..., 2], array[..., 0])
    with pytest.raises(ValueError, match="dtype float32"):
        base.encode_image(array.astype(np.float32))


def test_unreadable_image_names_path(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.png"):
        base.encode_image(path)


def test_empty_manual_dir_is_file_not_found_with_layout(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        builders.build("gopro", empty, tmp_path / "data")
    assert str(empty) in str(info.value) and "GOPRO_Large/train/" in str(info.value)
