"""Motion deblurring: GoPro, HIDE, RealBlur-J, RealBlur-R."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import ClassVar

import tensorflow_datasets as tfds

from data_pipelines.builders.base import (
    Record, RestorationBuilder, child_dir, instructions, pair_folders)


def _paired_io_dir(split_dir: pathlib.Path | None) -> tuple[pathlib.Path, pathlib.Path] | None:
    """(input, target) folders of the re-packed 'split/input, split/target' layout (Restormer/MPRNet)."""
    if split_dir is None:
        return None
    inputs, targets = child_dir(split_dir, "input"), child_dir(split_dir, "target")
    return (inputs, targets) if inputs and targets else None


@dataclasses.dataclass
class GoproConfig(tfds.core.BuilderConfig):
    """Which blurred frames to use: 'blur' (linear averaging) or 'blur_gamma' (gamma-corrected)."""

    blur_folder: str = "blur"


class Gopro(RestorationBuilder):
    """GoPro (Nah et al., CVPR 2017): 2103 train / 1111 test pairs in 33 scene folders.

    Pairs: <split>/<scene>/<blur|blur_gamma>/<frame>.png with <split>/<scene>/sharp/<frame>.png.
    Config 'blur' (default, the benchmark everyone reports) or 'blur_gamma'.
    """

    name = "gopro"
    BUILDER_CONFIGS: ClassVar[list[GoproConfig]] = [
        GoproConfig(name="blur", description="blur/ frames (the standard benchmark)", blur_folder="blur"),
        GoproConfig(name="blur_gamma", description="blur_gamma/ frames", blur_folder="blur_gamma"),
    ]
    EXTRA_FEATURES = {"scene": tfds.features.Text}
    HOMEPAGE = "https://seungjunnah.github.io/Datasets/gopro"
    ARCHIVES = ("GOPRO_Large.zip",)
    EXPECTED_SIZES = {"train": 2103, "test": 1111}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://seungjunnah.github.io/Datasets/gopro (GOPRO_Large.zip)",
        "GOPRO_Large.zip, or its extracted folder GOPRO_Large/",
        "  GOPRO_Large/train/<scene, e.g. GOPR0372_07_00>/{blur,blur_gamma,sharp}/<frame>.png\n"
        "  GOPRO_Large/test/<scene, e.g. GOPR0384_11_00>/{blur,blur_gamma,sharp}/<frame>.png",
        "Also accepted (config 'blur' only): the re-packed GoPro/{train,test}/{input,target}/ folders "
        "of Restormer/MPRNet.")

    def _is_root(self, path):
        for split in ("train", "test"):
            split_dir = path / split
            if split_dir.is_dir() and any((scene / "sharp").is_dir() for scene in split_dir.iterdir()):
                return True
        if self.builder_config.blur_folder == "blur" and path.name.lower() == "gopro":
            return any(_paired_io_dir(child_dir(path, s)) for s in ("train", "test"))
        return False

    def _find_records(self, root):
        splits = {}
        for split in ("train", "test"):
            split_dir = root / split
            if not split_dir.is_dir():
                continue
            repacked = _paired_io_dir(split_dir)
            if repacked:
                splits[split] = pair_folders(*repacked, extras=lambda p: {"scene": ""})
                continue
            records = []
            for scene in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                blur_dir = scene / self.builder_config.blur_folder
                if not blur_dir.is_dir():
                    raise FileNotFoundError(f"{self.name}: missing {blur_dir} (expected next to {scene / 'sharp'})")
                records += pair_folders(blur_dir, scene / "sharp", name_prefix=f"{scene.name}/",
                                        extras=lambda p, s=scene.name: {"scene": s})
            splits[split] = records
        return splits


class Hide(RestorationBuilder):
    """HIDE (Shen et al., ICCV 2019): 6397 train / 2025 test (close-ups + long-shot) pairs.

    Blurred train/<f>.png and test/test-{close-ups,long-shot}/<f>.png pair with GT/<f>.png.
    'scene' is 'close-ups' or 'long-shot' for test records, '' for training ones.
    """

    name = "hide"
    EXTRA_FEATURES = {"scene": tfds.features.Text}
    HOMEPAGE = "https://github.com/joanshen0508/HA_deblur"
    ARCHIVES = ("HIDE_dataset.zip",)
    EXPECTED_SIZES = {"train": 6397, "test": 2025}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/joanshen0508/HA_deblur (HIDE_dataset, Google Drive link in the README)",
        "HIDE_dataset.zip or its extracted folder HIDE_dataset/",
        "  HIDE_dataset/GT/<f>.png\n"
        "  HIDE_dataset/train/<f>.png\n"
        "  HIDE_dataset/test/test-close-ups/<f>.png\n"
        "  HIDE_dataset/test/test-long-shot/<f>.png")

    def _is_root(self, path):
        return (path / "GT").is_dir() and ((path / "train").is_dir() or (path / "test").is_dir())

    def _find_records(self, root):
        gt = root / "GT"
        splits = {}
        if (root / "train").is_dir():
            splits["train"] = pair_folders(root / "train", gt, extras=lambda p: {"scene": ""})
        if (root / "test").is_dir():
            records = []
            for subset in ("test-close-ups", "test-long-shot"):
                subset_dir = root / "test" / subset
                if not subset_dir.is_dir():
                    raise FileNotFoundError(f"{self.name}: missing {subset_dir}")
                scene = subset.removeprefix("test-")
                records += pair_folders(subset_dir, gt, name_prefix=f"{subset}/",
                                        extras=lambda p, s=scene: {"scene": s})
            splits["test"] = records
        return splits


class _RealBlur(RestorationBuilder, skip_registration=True):
    """RealBlur (Rim et al., ECCV 2020): pairs listed in RealBlur_<V>_{train,test}_list.txt.

    Each list line holds a gt/ and a blur/ path relative to the RealBlur folder.
    """

    VARIANT: ClassVar[str] = ""
    FOLDER: ClassVar[str] = ""
    EXTRA_FEATURES = {"scene": tfds.features.Text}
    HOMEPAGE = "http://cg.postech.ac.kr/research/RealBlur/"
    ARCHIVES = ("RealBlur.tar.gz",)
    EXPECTED_SIZES = {"train": 3758, "test": 980}

    def _list_file(self, root: pathlib.Path, split: str) -> pathlib.Path:
        return root / f"RealBlur_{self.VARIANT}_{split}_list.txt"

    def _is_root(self, path):
        return any(self._list_file(path, s).is_file() for s in ("train", "test"))

    def _find_records(self, root):
        splits = {}
        for split in ("train", "test"):
            list_file = self._list_file(root, split)
            if list_file.is_file():
                splits[split] = self._parse_list(root, list_file)
        return splits

    def _parse_list(self, root: pathlib.Path, list_file: pathlib.Path) -> list[Record]:
        records = []
        for line_no, line in enumerate(list_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            by_role = {}
            for token in line.split():
                parts = pathlib.PurePosixPath(token).parts
                role = "target" if "gt" in parts else "input" if "blur" in parts else None
                if role:
                    by_role[role] = token
            if set(by_role) != {"input", "target"}:
                raise ValueError(f"{list_file}:{line_no}: expected a gt/ and a blur/ path, got {line!r}")
            images = {role: root / rel for role, rel in by_role.items()}
            for path in images.values():
                if not path.is_file():
                    raise FileNotFoundError(f"{self.name}: {list_file.name}:{line_no} lists {path}, which is missing")
            blur = pathlib.PurePosixPath(by_role["input"])
            scene = blur.parent.parent.name
            records.append(Record(name=f"{scene}/{blur.name}", images=images, extras={"scene": scene}))
        return records


class RealblurJ(_RealBlur):
    """RealBlur-J (camera JPEG images): 3758 train / 980 test pairs."""

    name = "realblur_j"
    VARIANT = "J"
    FOLDER = "RealBlur-J_ECC_IMCORR_centroid_itensity_ref"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "http://cg.postech.ac.kr/research/RealBlur/ (RealBlur.tar.gz)",
        "RealBlur.tar.gz or its extracted folder",
        "  RealBlur_J_train_list.txt, RealBlur_J_test_list.txt\n"
        "  RealBlur-J_ECC_IMCORR_centroid_itensity_ref/<scene>/{blur,gt}/{blur,gt}_<n>.png",
        "Each list line: '<.../gt/gt_n.png> <.../blur/blur_n.png>' relative to that folder.")


class RealblurR(_RealBlur):
    """RealBlur-R (RAW-derived images): 3758 train / 980 test pairs."""

    name = "realblur_r"
    VARIANT = "R"
    FOLDER = "RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "http://cg.postech.ac.kr/research/RealBlur/ (RealBlur.tar.gz)",
        "RealBlur.tar.gz or its extracted folder",
        "  RealBlur_R_train_list.txt, RealBlur_R_test_list.txt\n"
        "  RealBlur-R_BM3D_ECC_IMCORR_centroid_itensity_ref/<scene>/{blur,gt}/{blur,gt}_<n>.png",
        "Each list line: '<.../gt/gt_n.png> <.../blur/blur_n.png>' relative to that folder.")
