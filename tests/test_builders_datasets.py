"""Every benchmark builder on a tiny fixture tree in its official layout.

Each fixture image encodes its pair id in red (4 * id) and its role in green
(input 40, target 80, left view 120, right view 160), so a decoded record
proves which files were paired, whatever the file format (flat colours
survive JPEG within +-2).
"""

from __future__ import annotations

import pathlib
import struct
import sys
import zlib

import numpy as np
import pytest
import scipy.io
from PIL import Image

from data_pipelines import builders

ROLE_CODES = {"input": 40, "target": 80, "input_left": 120, "input_right": 160}
SIZE = 16


def pixels(ident: int, role: str, blue: int = 200) -> np.ndarray:
    assert 0 < ident < 64
    return np.broadcast_to(np.array([4 * ident, ROLE_CODES[role], blue], np.uint8), (SIZE, SIZE, 3)).copy()


def put(path: pathlib.Path, ident: int, role: str, *, blue: int = 200, grey: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = pixels(ident, role, blue)
    image = Image.fromarray(array[..., 0]) if grey else Image.fromarray(array)
    image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)


def put_png16(path: pathlib.Path, ident: int, role: str) -> None:
    """16-bit RGB PNG (as DPDD ships), written by hand: Pillow cannot write 48-bit PNGs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = pixels(ident, role).astype(np.uint16) * 256 + 0x7F  # a low byte 8-bit decoders lose
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def decode_ident(image: np.ndarray) -> tuple[int, str]:
    if image.dtype == np.uint16:  # 16-bit datasets (DPDD): the codes are in the high byte
        image = (image >> 8).astype(np.uint8)
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 3), (image.dtype, image.shape)
    red, green = image[..., 0].astype(int), image[..., 1].astype(int)
    assert red.max() - red.min() <= 4 and green.max() - green.min() <= 4, "fixture images are flat"
    if (image == image[..., :1]).all():  # greyscale fixtures (clean targets) come back replicated to RGB
        return int(round(np.median(red) / 4)), "target"
    role = min(ROLE_CODES, key=lambda r: abs(ROLE_CODES[r] - int(np.median(green))))
    return int(round(np.median(red) / 4)), role


# --------------------------------------------------------------------------
# Fixture trees: each writes the official layout under `m` and returns
# {split: {record name: ident or (ident, {extra feature: value})}}.


def fx_gopro(m):
    root, ident, expected = m / "GOPRO_Large", 0, {"train": {}, "test": {}}
    for split, scenes in (("train", ("GOPR0372_07_00", "GOPR0374_11_00")), ("test", ("GOPR0384_11_00",))):
        for scene in scenes:
            for frame in ("000047.png", "000048.png"):
                ident += 1
                put(root / split / scene / "blur" / frame, ident, "input")
                put(root / split / scene / "blur_gamma" / frame, ident, "input", blue=100)
                put(root / split / scene / "sharp" / frame, ident, "target")
                expected[split][f"{scene}/{frame}"] = (ident, {"scene": scene})
    return expected


def fx_hide(m):
    root = m / "HIDE_dataset"
    files = {"train": [("", "10fromGOPR0950.png"), ("", "11fromGOPR1086.png")],
             "test": [("test-close-ups", "1fromGOPR0950.png"), ("test-long-shot", "20fromGOPR1096.png"),
                      ("test-long-shot", "21fromGOPR1096.png")]}
    expected, ident = {"train": {}, "test": {}}, 0
    for split, entries in files.items():
        for subset, name in entries:
            ident += 1
            put(root / split / subset / name, ident, "input")
            put(root / "GT" / name, ident, "target")
            record = f"{subset}/{name}" if subset else name
            expected[split][record] = (ident, {"scene": subset.removeprefix("test-")})
    put(root / "GT" / "unused.png", 60, "target")  # GT holds more than the listed frames
    return expected


def _realblur(m, variant, folder):
    root, expected, lines, ident = m / "RealBlur", {"train": {}, "test": {}}, {"train": [], "test": []}, 0
    for split, scene, numbers in (("train", "scene001", (1, 2)), ("test", "scene002", (7,))):
        for n in numbers:
            ident += 1
            put(root / folder / scene / "blur" / f"blur_{n}.png", ident, "input")
            put(root / folder / scene / "gt" / f"gt_{n}.png", ident, "target")
            lines[split].append(f"{folder}/{scene}/gt/gt_{n}.png {folder}/{scene}/blur/blur_{n}.png")
            expected[split][f"{scene}/blur_{n}.png"] = (ident, {"scene": scene})
    for split, split_lines in lines.items():
        (root / f"RealBlur_{variant}_{split}_list.txt").write_text("\n".join(split_lines) + "\n")
    return expected


def fx_realblur_j(m):
    return _realblur(m, "J", "RealBlur-J_ECC_IMCORR_centroid_itensity_ref")


def fx_realblur_r(m):
    return _realblur(m, "R", "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref")


def fx_dpdd(m):
    root, expected, ident = m / "dd_dp_dataset_canon", {"train": {}, "validation": {}, "test": {}}, 0
    for split, folder, ids in (("train", "train", ("1P0A0917", "1P0A0984")), ("validation", "val", ("1P0A1002",)),
                               ("test", "test", ("1P0A2031", "1P0A2067"))):
        for image_id in ids:
            ident += 1
            put_png16(root / f"{folder}_c" / "source" / f"{image_id}.png", ident, "input")
            put_png16(root / f"{folder}_c" / "target" / f"{image_id}.png", ident, "target")
            put_png16(root / f"{folder}_l" / "source" / f"{image_id}_L.png", ident, "input_left")
            put_png16(root / f"{folder}_r" / "source" / f"{image_id}_R.png", ident, "input_right")
            expected[split][f"{image_id}.png"] = ident
    return expected


def fx_realdof(m):
    for ident, name in enumerate(("0001.png", "0002.png"), start=1):
        put(m / "RealDOF" / "source" / name, ident, "input")
        put(m / "RealDOF" / "target" / name, ident, "target")
    return {"test": {"0001.png": 1, "0002.png": 2}}


def fx_lfdof(m):
    root = m / "LFDOF"
    for k in (1, 2):  # a scene folder of several renderings
        put(root / "train_data" / "input" / "IMG_0001" / f"IMG_0001_{k}.png", 1, "input")
    put(root / "train_data" / "input" / "IMG_0002.png", 2, "input")  # a single rendering
    put(root / "train_data" / "ground_truth" / "IMG_0001.png", 1, "target")
    put(root / "train_data" / "ground_truth" / "IMG_0002.png", 2, "target")
    put(root / "test_data" / "input" / "IMG_2162.png", 3, "input")
    put(root / "test_data" / "ground_truth" / "IMG_2162.png", 3, "target")
    return {"train": {"IMG_0001/IMG_0001_1.png": (1, {"scene": "IMG_0001"}),
                      "IMG_0001/IMG_0001_2.png": (1, {"scene": "IMG_0001"}),
                      "IMG_0002.png": (2, {"scene": "IMG_0002"})},
            "test": {"IMG_2162.png": (3, {"scene": "IMG_2162"})}}


def fx_reside_its(m):
    for name, ident in (("1_1_0.90179.png", 1), ("1_2_0.8.png", 1), ("2_1_0.7.png", 2)):
        put(m / "ITS" / "hazy" / name, ident, "input")
    put(m / "ITS" / "clear" / "1.png", 1, "target")
    put(m / "ITS" / "clear" / "2.png", 2, "target")
    put(m / "ITS" / "trans" / "1_1.png", 9, "target")  # transmission maps are not records
    return {"train": {"1_1_0.90179.png": 1, "1_2_0.8.png": 1, "2_1_0.7.png": 2}}


def fx_reside_ots(m):
    put(m / "OTS" / "hazy" / "part1" / "0025_0.8_0.1.jpg", 5, "input")
    put(m / "OTS" / "hazy" / "part2" / "0026_0.9_0.2.jpg", 6, "input")
    put(m / "OTS" / "hazy" / "part2" / "0025_1_0.16.jpg", 5, "input")
    put(m / "OTS" / "clear" / "0025.jpg", 5, "target")
    put(m / "OTS" / "clear" / "0026.jpg", 6, "target")
    return {"train": {"part1/0025_0.8_0.1.jpg": 5, "part2/0026_0.9_0.2.jpg": 6, "part2/0025_1_0.16.jpg": 5}}


def _sots(m):
    for name, ident in (("1400_1.png", 10), ("1400_2.png", 10), ("1401_1.png", 11)):
        put(m / "SOTS" / "indoor" / "hazy" / name, ident, "input")
    put(m / "SOTS" / "indoor" / "gt" / "1400.png", 10, "target")
    put(m / "SOTS" / "indoor" / "gt" / "1401.png", 11, "target")
    for name, ident in (("0001_0.8_0.2.jpg", 20), ("0002_0.9_0.16.jpg", 21)):
        put(m / "SOTS" / "outdoor" / "hazy" / name, ident, "input")
    put(m / "SOTS" / "outdoor" / "gt" / "0001.png", 20, "target")
    put(m / "SOTS" / "outdoor" / "gt" / "0002.png", 21, "target")


def fx_sots_indoor(m):
    _sots(m)
    return {"test": {"1400_1.png": 10, "1400_2.png": 10, "1401_1.png": 11}}


def fx_sots_outdoor(m):
    _sots(m)
    return {"test": {"0001_0.8_0.2.jpg": 20, "0002_0.9_0.16.jpg": 21}}


def _ntire(hazy_dir, gt_dir, template, ext, numbers_by_split):
    expected = {}
    for split, numbers in numbers_by_split.items():
        expected[split] = {}
        for n in numbers:
            put(hazy_dir / template.format(n=n, role="hazy", ext=ext), n, "input")
            put(gt_dir / template.format(n=n, role="GT", ext=ext), n, "target")
            expected[split][template.format(n=n, role="hazy", ext=ext)] = n
    return expected


def fx_nh_haze(m):
    folder = m / "NH-HAZE"
    return _ntire(folder, folder, "{n:02d}_{role}.{ext}", "png", {"train": (1, 2), "validation": (46,), "test": (51,)})


def fx_dense_haze(m):
    folder = m / "Dense_Haze"
    return _ntire(folder / "hazy", folder / "GT", "{n:02d}_{role}.{ext}", "png",
                  {"train": (3,), "validation": (47,), "test": (52, 55)})


def fx_o_haze(m):
    folder = m / "O-HAZE" / "# O-HAZY NTIRE 2018"
    return _ntire(folder / "hazy", folder / "GT", "{n:02d}_outdoor_{role}.{ext}", "jpg",
                  {"train": (1, 35), "validation": (36,), "test": (41, 45)})


def fx_rain100l(m):
    for n in (1, 2):  # PReNet / official RainTrainL: rain-N next to norain-N
        put(m / "RainTrainL" / f"rain-{n}.png", n, "input")
        put(m / "RainTrainL" / f"norain-{n}.png", n, "target")
    for n in (3, 4):  # JORDER test archive: rainy norain-Nx2 under rain/X2
        put(m / "rain_data_test_Light" / "rain" / "X2" / f"norain-{n}x2.png", n, "input")
        put(m / "rain_data_test_Light" / "norain" / f"norain-{n}.png", n, "target")
    return {"train": {"rain-1.png": 1, "rain-2.png": 2},
            "test": {"rain/X2/norain-3x2.png": 3, "rain/X2/norain-4x2.png": 4}}


def fx_rain100h(m):
    for n in (5, 6):  # Restormer/MPRNet test folders: input/ and target/ of equal names
        put(m / "test" / "Rain100H" / "input" / f"{n}.png", n, "input")
        put(m / "test" / "Rain100H" / "target" / f"{n}.png", n, "target")
    put(m / "RainTrainH" / "rain-007.png", 7, "input")
    put(m / "RainTrainH" / "norain-007.png", 7, "target")
    return {"train": {"rain-007.png": 7}, "test": {"input/5.png": 5, "input/6.png": 6}}


def fx_rain13k(m):
    for ident, name in ((1, "1.jpg"), (2, "rain_2.png")):
        put(m / "train" / "Rain13K" / "input" / name, ident, "input")
        put(m / "train" / "Rain13K" / "target" / name, ident, "target")
    return {"train": {"1.jpg": 1, "rain_2.png": 2}}


def _clean(folder, names, grey=False, ext_first=1):
    expected = {}
    for ident, name in enumerate(names, start=ext_first):
        put(folder / name, ident, "target", grey=grey)
        expected[name] = ident
    return expected


def fx_bsd400(m):
    return {"train": _clean(m / "Train400", ("test_001.png", "test_002.png", "test_003.png"), grey=True)}


def fx_wed(m):
    return {"train": _clean(m / "exploration_database_and_code" / "pristine_images", ("00001.bmp", "00002.bmp"))}


def fx_bsd68(m):
    return {"test": _clean(m / "BSD68", ("test001.png", "test002.png"), grey=True)}


def fx_cbsd68(m):
    put(m / "CBSD68" / "noisy25" / "0000.png", 50, "input")  # noisy copies are ignored
    return {"test": _clean(m / "CBSD68" / "original_png", ("0000.png", "0001.png"))}


def fx_kodak24(m):
    return {"test": _clean(m, ("kodim01.png", "kodim02.png"))}  # loose files straight in manual_dir


def fx_urban100(m):
    folder = m / "Urban100" / "image_SRF_2"
    put(folder / "img_001_SRF_2_HR.png", 1, "target")
    put(folder / "img_001_SRF_2_LR.png", 30, "input")
    put(folder / "img_002_SRF_2_HR.png", 2, "target")
    put(m / "Urban100" / "image_SRF_4" / "img_001_SRF_4_HR.png", 40, "target")
    return {"test": {"img_001.png": 1, "img_002.png": 2}}


def fx_sidd(m):
    expected = {"train": {}, "validation": {}}
    data, ident = m / "SIDD_Medium_Srgb" / "Data", 0
    for scene in ("0001_001_S6_00100_00060_3200_L", "0002_001_S6_00100_00020_3200_N"):
        for k in ("010", "011"):
            ident += 1
            prefix = scene[:4]
            put(data / scene / f"{prefix}_NOISY_SRGB_{k}.PNG", ident, "input")
            put(data / scene / f"{prefix}_GT_SRGB_{k}.PNG", ident, "target")
            expected["train"][f"{scene}/{prefix}_NOISY_SRGB_{k}.PNG"] = (ident, {"scene": scene})
    noisy = np.zeros((2, 3, SIZE, SIZE, 3), np.uint8)
    gt = np.zeros_like(noisy)
    for i in range(2):
        for j in range(3):
            ident += 1
            noisy[i, j], gt[i, j] = pixels(ident, "input"), pixels(ident, "target")
            expected["validation"][f"{i:02d}_{j:02d}"] = (ident, {"scene": ""})
    scipy.io.savemat(m / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(m / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": gt})
    return expected


def fx_snow100k(m):
    expected, ident = {}, 0
    folders = {"train": m / "Snow100K-training" / "all"}
    for size in "SML":
        folders[f"test_{size.lower()}"] = (m / "Snow100K-testset" / "media" / "jdway" / "GameSSD" / "overlapping" / "test"
                                         / f"Snow100K-{size}")
    for split, folder in folders.items():
        ident += 1
        name = f"beautiful_smile_{ident:05d}.jpg"
        put(folder / "synthetic" / name, ident, "input")
        put(folder / "gt" / name, ident, "target")
        put(folder / "mask" / name, 60, "target")
        expected[split] = {name: ident}
    return expected


def fx_csd(m):
    for split, folder, ident in (("train", "Train", 1), ("train", "Train", 2), ("test", "Test", 3)):
        put(m / "CSD" / folder / "Snow" / f"{ident}.tif", ident, "input")
        put(m / "CSD" / folder / "Gt" / f"{ident}.tif", ident, "target")
        put(m / "CSD" / folder / "Mask" / f"{ident}.tif", 60, "target")
    return {"train": {"1.tif": 1, "2.tif": 2}, "test": {"3.tif": 3}}


def fx_srrs(m):
    for folder, ident in (("train2500", 4), ("test2000", 5)):
        put(m / "SRRS" / folder / "Snow" / f"{ident:05d}.jpg", ident, "input")
        put(m / "SRRS" / folder / "Gt" / f"{ident:05d}.jpg", ident, "target")
    return {"train": {"00004.jpg": 4}, "test": {"00005.jpg": 5}}


def fx_lol(m):
    for split, folder, ident in (("train", "our485", 2), ("train", "our485", 5), ("test", "eval15", 1)):
        put(m / "LOLdataset" / folder / "low" / f"{ident}.png", ident, "input")
        put(m / "LOLdataset" / folder / "high" / f"{ident}.png", ident, "target")
    return {"train": {"2.png": 2, "5.png": 5}, "test": {"1.png": 1}}


def fx_awtd(m):
    put(m / "AWTD" / "train" / "input" / "im_0001.png", 1, "input")
    put(m / "AWTD" / "train" / "target" / "im_0001.png", 1, "target")
    put(m / "AWTD" / "train" / "input" / "snow_7.jpg", 7, "input")
    put(m / "AWTD" / "train" / "target" / "snow_7.jpg", 7, "target")
    put(m / "AWTD" / "test" / "RainDS-syn" / "input" / "3.png", 3, "input")
    put(m / "AWTD" / "test" / "RainDS-syn" / "target" / "3.png", 3, "target")
    put(m / "AWTD" / "test" / "FoggyCityscapes" / "input" / "9.png", 9, "input")
    put(m / "AWTD" / "test" / "FoggyCityscapes" / "target" / "9.png", 9, "target")
    return {"train": {"im_0001.png": 1, "snow_7.jpg": 7}, "test_raindssyn": {"3.png": 3},
            "test_foggy_cityscapes": {"9.png": 9}}


def fx_cdd11(m):
    """OneRestore's layout: <split>/clear/<name>.png and <split>/<combination>/<same name>.png."""
    root, expected, ident = m / "CDD-11", {}, 0
    for split, combinations, names in (("train", ("low", "haze_snow"), ("000001.png", "000002.png")),
                                       ("test", ("low_haze_rain", "rain"), ("000101.png",))):
        for name in names:
            ident += 1
            put(root / split / "clear" / name, ident, "target")
            for combination in combinations:
                put(root / split / combination / name, ident, "input", blue=100 + len(combination))
                key = "train" if split == "train" else f"test_{combination}"
                expected.setdefault(key, {})[f"{combination}/{name}"] = (ident, {"degradation": combination})
    return expected


FIXTURES = {name.removeprefix("fx_"): fn for name, fn in dict(globals()).items() if name.startswith("fx_")}


def test_every_builder_has_a_fixture():
    assert set(FIXTURES) == set(builders.BUILDERS)


def check_records(name: str, data_dir: pathlib.Path, expected: dict) -> None:
    image_keys = builders.BUILDERS[name.partition("/")[0]].IMAGE_KEYS
    prepared = builders.builder(name, data_dir).info.splits
    assert set(prepared.keys()) == set(expected), f"{name}: built splits {sorted(prepared.keys())}"
    for split, by_name in expected.items():
        source = builders.data_source(name, split, data_dir)
        assert len(source) == len(by_name), f"{name}/{split}"
        seen = set()
        for index in range(len(source)):
            record = source[index]
            record_name = record["name"].decode()
            assert record_name in by_name, f"{name}/{split}: unexpected record {record_name}"
            ident, extras = by_name[record_name] if isinstance(by_name[record_name], tuple) else (by_name[record_name], {})
            for key in image_keys:
                assert decode_ident(record[key]) == (ident, key), f"{name}/{split}/{record_name}/{key}"
            for key, value in extras.items():
                assert record[key].decode() == value, f"{name}/{split}/{record_name}/{key}"
            seen.add(record_name)
        assert seen == set(by_name)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_builder_pairs_splits_and_decodes(name, tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    expected = FIXTURES[name](manual)
    builders.build(name, manual, tmp_path / "data")
    check_records(name, tmp_path / "data", expected)
    assert "tensorflow" not in sys.modules


def test_gopro_blur_gamma_config_reads_gamma_frames(tmp_path):
    expected = fx_gopro(tmp_path / "manual")
    builders.build("gopro/blur_gamma", tmp_path / "manual", tmp_path / "data")
    check_records("gopro/blur_gamma", tmp_path / "data", expected)
    record = builders.data_source("gopro/blur_gamma", "test", tmp_path / "data")[0]
    assert int(record["input"][0, 0, 2]) == 100 and int(record["target"][0, 0, 2]) == 200


def test_gopro_default_config_uses_linear_blur(tmp_path):
    fx_gopro(tmp_path / "manual")
    builders.build("gopro", tmp_path / "manual", tmp_path / "data")
    record = builders.data_source("gopro", "train", tmp_path / "data")[0]
    assert int(record["input"][0, 0, 2]) == 200


# BSD400 'color': the BSDS500 train + test photographs the all-in-one methods train on.


def _bsds500_tree(m):
    """BSR_bsds500.tgz's layout: train/ and test/ form BSD400; val/ holds BSD68's sources and is left out."""
    images = m / "BSR" / "BSDS500" / "data" / "images"
    expected = {}
    for ident, (folder, name) in enumerate(
            (("train", "100075.jpg"), ("train", "2092.jpg"), ("test", "100007.jpg"), ("test", "2018.jpg")), start=1):
        put(images / folder / name, ident, "target")
        expected[name] = ident
    put(images / "val" / "3096.jpg", 30, "target")
    (images / "train" / "Thumbs.db").write_bytes(b"\0" * 8)  # shipped in every folder of the archive
    return {"train": expected}


def _assert_colour_targets(name, data_dir):
    source = builders.data_source(name, "train", data_dir)
    for index in range(len(source)):
        target = source[index]["target"]
        assert not (target == target[..., :1]).all(), f"{name}: record {index} came back grey"


def test_bsd400_color_reads_bsds500_train_and_test_not_val(tmp_path):
    expected = _bsds500_tree(tmp_path / "manual")
    builders.build("bsd400/color", tmp_path / "manual", tmp_path / "data")
    assert builders.builder("bsd400/color", tmp_path / "data").info.splits["train"].num_examples == 4
    check_records("bsd400/color", tmp_path / "data", expected)
    _assert_colour_targets("bsd400/color", tmp_path / "data")


def test_bsd400_color_extracts_official_bsds500_archive(tmp_path):
    import shutil

    expected = _bsds500_tree(tmp_path / "tree")
    manual = tmp_path / "manual"
    manual.mkdir()
    archive = shutil.make_archive(str(tmp_path / "BSR_bsds500"), "gztar", root_dir=tmp_path / "tree")
    pathlib.Path(archive).rename(manual / "BSR_bsds500.tgz")  # the official name
    builders.build("bsd400/color", manual, tmp_path / "data")
    check_records("bsd400/color", tmp_path / "data", expected)


def _moce_ir_tree(m):
    """MoCE-IR: <data>/denoising/BSD400/*.jpg next to <data>/denoising/WaterlooED/*.bmp."""
    put(m / "denoising" / "WaterlooED" / "00001.bmp", 50, "target")
    return {"train": _clean(m / "denoising" / "BSD400", ("100075.jpg", "2018.jpg"))}


def _promptir_tree(m):
    """PromptIR/AirNet: BSD400's 'a<id>.jpg' and WED's '<n>.bmp' together in data/Train/Denoise/."""
    put(m / "data" / "Train" / "Denoise" / "00001.bmp", 50, "target")
    return {"train": _clean(m / "data" / "Train" / "Denoise", ("a100007.jpg", "a100075.jpg", "a2092.jpg"))}


@pytest.mark.parametrize("tree", [_moce_ir_tree, _promptir_tree], ids=["moce_ir", "promptir"])
def test_bsd400_color_reads_allinone_layouts_without_wed(tree, tmp_path):
    expected = tree(tmp_path / "manual")
    builders.build("bsd400/color", tmp_path / "manual", tmp_path / "data")
    check_records("bsd400/color", tmp_path / "data", expected)
    _assert_colour_targets("bsd400/color", tmp_path / "data")


def test_bsd400_configs_do_not_take_each_others_files(tmp_path):
    assert builders.builder("bsd400", tmp_path / "data").builder_config.name == "gray"
    _bsds500_tree(tmp_path / "colour")
    with pytest.raises(FileNotFoundError, match="no dataset folder found(.|\n)*Config 'color'"):
        builders.build("bsd400", tmp_path / "colour", tmp_path / "data")
    fx_bsd400(tmp_path / "grey")
    with pytest.raises(FileNotFoundError, match="no dataset folder found(.|\n)*BSR_bsds500.tgz"):
        builders.build("bsd400/color", tmp_path / "grey", tmp_path / "data")


def test_dpdd_reads_restormer_repacked_layout(tmp_path):
    manual = tmp_path / "manual"
    for ident, name in ((1, "a.png"), (2, "b.png")):
        for folder, role in (("inputC", "input"), ("inputL", "input_left"), ("inputR", "input_right"),
                             ("target", "target")):
            put(manual / "test" / "DPDD" / folder / name, ident, role)
    builders.build("dpdd", manual, tmp_path / "data")
    check_records("dpdd", tmp_path / "data", {"test": {"a.png": 1, "b.png": 2}})


def test_official_zip_archive_is_extracted(tmp_path):
    import shutil

    tree = tmp_path / "tree"
    expected = fx_lol(tree)
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.make_archive(str(manual / "LOLdataset"), "zip", root_dir=tree)
    builders.build("lol", manual, tmp_path / "data")
    check_records("lol", tmp_path / "data", expected)


def test_official_tar_archive_is_extracted(tmp_path):
    import shutil

    tree = tmp_path / "tree"
    expected = fx_realblur_j(tree)
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.make_archive(str(manual / "RealBlur"), "gztar", root_dir=tree)
    builders.build("realblur_j", manual, tmp_path / "data")
    check_records("realblur_j", tmp_path / "data", expected)
