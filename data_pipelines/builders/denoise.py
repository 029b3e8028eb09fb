"""Denoising: clean sets (BSD400 grey/colour, WED, BSD68, CBSD68, Kodak24, Urban100) and SIDD.

Clean sets hold 'target' only: the noise is synthesised on device
(`jaxir.degradations.synthesize`). Greyscale files (BSD400 'gray', BSD68) are
stored as 3 identical channels.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders.base import (
    Record, RestorationBuilder, child_dir, clean_records, find_dirs, find_files, instructions, is_image,
    list_images, stem_index)


class _CleanImages(RestorationBuilder, skip_registration=True):
    """A folder of clean images forming one split."""

    IMAGE_KEYS = ("target",)
    SPLIT: ClassVar[str] = "test"
    FOLDER_NAMES: ClassVar[tuple[str, ...]] = ()
    # Preferred sub-folder holding the clean images (e.g. CBSD68's original_png/).
    SUBFOLDERS: ClassVar[tuple[str, ...]] = ()

    def _image_dir(self, path: pathlib.Path) -> pathlib.Path:
        return child_dir(path, *self.SUBFOLDERS) or path

    def _is_root(self, path):
        return path.name.lower() in {n.lower() for n in self.FOLDER_NAMES} and \
            any(is_image(p) for p in self._image_dir(path).iterdir())

    def _fallback_root(self, manual_dir):
        # Loose image files straight in manual_dir.
        return manual_dir if any(is_image(p) for p in manual_dir.iterdir()) else None

    def _find_records(self, root):
        return {self.SPLIT: clean_records(self._image_dir(root))}


@dataclasses.dataclass
class Bsd400Config(tfds.core.BuilderConfig):
    """Which BSD400: where its files are found and which of them belong to it."""

    suffixes: tuple[str, ...] = (".png",)
    folder_names: tuple[str, ...] = ()
    archives: tuple[str, ...] = ()
    # Also read the official BSDS500 tree, taking its train/ and test/ folders.
    bsds500_layout: bool = False


_BSDS500_URL = "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html"
_ALLINONE_BSD400_URL = "https://drive.google.com/file/d/1idKFDkAHJGAFDn1OyXZxsTbOSBx9GS8N"


class Bsd400(_CleanImages):
    """BSD400: 400 Berkeley Segmentation Dataset images for denoising training.

    Config 'gray' (default): DnCNN's Train400, 400 greyscale 180x180 PNG crops.
    Config 'color': the 400 full-size colour BSDS500 train + test photographs
    (481x321 JPEG; val/ is left out, it holds the BSD68/CBSD68 test images),
    which the all-in-one methods (AirNet, PromptIR, MoCE-IR) train on with WED.
    """

    name = "bsd400"
    BUILDER_CONFIGS: ClassVar[list[Bsd400Config]] = [
        Bsd400Config(name="gray", description="DnCNN's Train400: 400 greyscale 180x180 PNG crops",
                     suffixes=(".png",), folder_names=("BSD400", "Train400")),
        Bsd400Config(name="color", description="BSDS500 train + test: 400 colour JPEG photographs "
                     "(the all-in-one protocols' BSD400)",
                     suffixes=(".jpg", ".jpeg"), folder_names=("BSD400", "CBSD400", "Denoise"),
                     archives=("BSR_bsds500.tgz",), bsds500_layout=True),
    ]
    HOMEPAGE = "https://github.com/cszn/DnCNN"
    EXPECTED_SIZES = {"train": 400}
    # The extracted archive puts the images 5 levels down: BSR_bsds500.tgz/BSR/BSDS500/data/images.
    SEARCH_DEPTH = 5
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Config 'gray' (the default, 'bsd400' or 'bsd400/gray'):\n" + instructions(
            "https://github.com/cszn/DnCNN/tree/master/TrainingCodes/DnCNN_TrainingCodes_v1.0/data/Train400",
            "the 400 PNG files",
            "  Train400/<f>.png   (or BSD400/, or the files directly in manual_dir)")
        + "\n\nConfig 'color' ('bsd400/color', the all-in-one protocols' training set):\n" + instructions(
            f"{_BSDS500_URL} (BSR_bsds500.tgz); the all-in-one repositories' copy (PromptIR INSTALL.md, "
            f"AirNet README): {_ALLINONE_BSD400_URL}",
            "BSR_bsds500.tgz or its extracted BSR/ folder, or the 400 .jpg files",
            "  BSR/BSDS500/data/images/train/<id>.jpg and .../images/test/<id>.jpg   (200 + 200; val/ is not used)\n"
            "  or BSD400/<id>.jpg   (MoCE-IR: <data>/denoising/BSD400/), or PromptIR's and AirNet's\n"
            "  data/Train/Denoise/ (its .jpg files; WED's .bmp files there belong to the 'wed' builder)",
            "Only .jpg files are read, so DnCNN's greyscale PNGs are never taken for the colour set."))

    @property
    def ARCHIVES(self) -> tuple[str, ...]:  # noqa: N802  (the base class reads it per instance)
        return self.builder_config.archives

    def _images(self, directory: pathlib.Path) -> list[pathlib.Path]:
        return [p for p in list_images(directory) if p.suffix.lower() in self.builder_config.suffixes]

    def _bsds500_split_dirs(self, path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
        """(train, test) image folders of the official BSDS500 layout (BSR/BSDS500/data/images)."""
        if not self.builder_config.bsds500_layout or path.name.lower() not in ("images", "bsds500"):
            return None
        train, test = child_dir(path, "train"), child_dir(path, "test")
        return (train, test) if train and test and self._images(train) and self._images(test) else None

    def _is_root(self, path):
        if self._bsds500_split_dirs(path):
            return True
        names = {n.lower() for n in self.builder_config.folder_names}
        return path.name.lower() in names and bool(self._images(path))

    def _fallback_root(self, manual_dir):
        return manual_dir if self._images(manual_dir) else None

    def _find_records(self, root):
        split_dirs = self._bsds500_split_dirs(root) or (root,)
        return {"train": [Record(name=p.name, images={"target": p})
                          for directory in split_dirs for p in self._images(directory)]}


class Wed(_CleanImages):
    """Waterloo Exploration Database: 4744 pristine colour images (denoising training)."""

    name = "wed"
    SPLIT = "train"
    FOLDER_NAMES = ("pristine_images", "WED")
    HOMEPAGE = "https://ece.uwaterloo.ca/~k29ma/exploration/"
    ARCHIVES = ("exploration_database_and_code.rar", "exploration_database_and_code.zip")
    EXPECTED_SIZES = {"train": 4744}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://ece.uwaterloo.ca/~k29ma/exploration/",
        "exploration_database_and_code (zip, or extract the .rar yourself: rar is not supported)",
        "  exploration_database_and_code/pristine_images/<nnnnn>.bmp")


class Bsd68(_CleanImages):
    """BSD68: 68 greyscale Berkeley test images (the grey denoising benchmark)."""

    name = "bsd68"
    FOLDER_NAMES = ("BSD68", "Set68")
    HOMEPAGE = "https://github.com/cszn/DnCNN/tree/master/testsets/BSD68"
    EXPECTED_SIZES = {"test": 68}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/cszn/DnCNN/tree/master/testsets/BSD68",
        "the 68 PNG files",
        "  BSD68/test<nnn>.png   (or the files directly in manual_dir)")


class Cbsd68(_CleanImages):
    """CBSD68: the 68 BSD test images in colour."""

    name = "cbsd68"
    FOLDER_NAMES = ("CBSD68", "CBSD68-dataset")
    SUBFOLDERS = ("original_png", "original")
    HOMEPAGE = "https://github.com/clausmichele/CBSD68-dataset"
    EXPECTED_SIZES = {"test": 68}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/clausmichele/CBSD68-dataset (or cszn/FFDNet testsets/CBSD68)",
        "the 68 clean PNG files",
        "  CBSD68/original_png/<id>.png   (or CBSD68/<id>.png, or the files directly in manual_dir)",
        "Only the clean images are read; the noisy<sigma>/ folders are ignored (noise is synthesised).")


class Kodak24(_CleanImages):
    """Kodak24: the 24 Kodak PhotoCD images kodim01-kodim24."""

    name = "kodak24"
    FOLDER_NAMES = ("Kodak24", "Kodak", "kodak24")
    HOMEPAGE = "https://r0k.us/graphics/kodak/"
    EXPECTED_SIZES = {"test": 24}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://r0k.us/graphics/kodak/",
        "kodim01.png ... kodim24.png",
        "  Kodak24/kodim<nn>.png   (or the files directly in manual_dir)")


class Urban100(_CleanImages):
    """Urban100 (Huang et al., CVPR 2015): 100 clean high-resolution urban images."""

    name = "urban100"
    FOLDER_NAMES = ("Urban100",)
    SUBFOLDERS = ("HR",)
    HOMEPAGE = "https://github.com/jbhuang0604/SelfExSR"
    ARCHIVES = ("Urban100_SR.zip", "Urban100.zip")
    EXPECTED_SIZES = {"test": 100}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/jbhuang0604/SelfExSR (Urban100_SR.zip)",
        "Urban100_SR.zip or the clean images",
        "  Urban100/image_SRF_2/img_<nnn>_SRF_2_HR.png   (the SR release: the HR files are used)\n"
        "  or Urban100/HR/img_<nnn>.png, or Urban100/img_<nnn>.png")

    def _image_dir(self, path):
        return child_dir(path, "image_SRF_2") or super()._image_dir(path)

    def _find_records(self, root):
        image_dir = self._image_dir(root)
        if image_dir.name.lower() != "image_srf_2":
            return super()._find_records(root)
        return {"test": [Record(name=p.name.replace("_SRF_2_HR", ""), images={"target": p})
                         for p in list_images(image_dir) if p.stem.endswith("_HR")]}


_SIDD_MATS = {"noisy": "ValidationNoisyBlocksSrgb.mat", "gt": "ValidationGtBlocksSrgb.mat"}


def load_mat_blocks(path: pathlib.Path, key: str) -> np.ndarray:
    """The (images, blocks, H, W, 3) uint8 array stored under `key` in a SIDD .mat file."""
    import scipy.io

    try:
        contents = scipy.io.loadmat(path)
    except NotImplementedError as e:  # MATLAB v7.3 files are HDF5
        raise ValueError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; "
                         "re-save it with MATLAB's -v7 flag") from e
    if key not in contents:
        raise ValueError(f"{path} has no variable {key!r}; it has {sorted(k for k in contents if not k.startswith('__'))}")
    blocks = np.asarray(contents[key])
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise ValueError(f"{path}: expected {key} as uint8 (images, blocks, H, W, 3), "
                         f"got {blocks.dtype} {blocks.shape}")
    return blocks


class Sidd(RestorationBuilder):
    """SIDD (Abdelhamed et al., CVPR 2018), sRGB.

    train: SIDD-Medium sRGB, 160 scene instances x 2 = 320 full-size pairs;
    'scene' is the scene-instance folder. validation: the 1280 256x256 blocks
    (40 images x 32) of ValidationNoisyBlocksSrgb.mat / ValidationGtBlocksSrgb.mat,
    named '<image>_<block>'. The online benchmark blocks have no public ground
    truth and are not built.
    """

    name = "sidd"
    EXTRA_FEATURES = {"scene": tfds.features.Text}
    HOMEPAGE = "https://abdokamel.github.io/sidd/"
    ARCHIVES = ("SIDD_Medium_Srgb.zip",)
    EXPECTED_SIZES = {"train": 320, "validation": 1280}
    SEARCH_DEPTH = 0  # manual_dir is the root; its parts are searched below it
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://abdokamel.github.io/sidd/ (SIDD-Medium sRGB, sRGB validation blocks)",
        "SIDD_Medium_Srgb.zip (or its folder) and/or the two validation .mat files",
        "  SIDD_Medium_Srgb/Data/<scene instance>/<nnnn>_{GT,NOISY}_SRGB_<nnn>.PNG\n"
        "  ValidationNoisyBlocksSrgb.mat, ValidationGtBlocksSrgb.mat",
        "The .mat files are read with scipy.io.loadmat (MATLAB v5/v7 format, as distributed).")

    @staticmethod
    def _medium_data_dir(path: pathlib.Path) -> pathlib.Path | None:
        def holds_scenes(d: pathlib.Path) -> bool:
            scene = next((c for c in sorted(d.iterdir()) if c.is_dir()), None)
            return scene is not None and any("_GT_SRGB_" in f.name.upper() for f in scene.iterdir())

        found = find_dirs(path, lambda d: d.name == "Data" and holds_scenes(d), max_depth=3)
        return found[0] if found else None

    def _is_root(self, path):
        return self._medium_data_dir(path) is not None or len(find_files(path, list(_SIDD_MATS.values()), 3)) == 2

    def _find_records(self, root):
        splits = {}
        data_dir = self._medium_data_dir(root)
        if data_dir is not None:
            records = []
            for scene in sorted(p for p in data_dir.iterdir() if p.is_dir()):
                images = list_images(scene)
                gt_by_stem = stem_index((p for p in images if "_GT_" in p.name), where=f" in {scene}")
                for noisy in (p for p in images if "_NOISY_" in p.name):
                    gt_stem = noisy.stem.replace("_NOISY_", "_GT_")
                    if gt_stem not in gt_by_stem:
                        raise FileNotFoundError(f"{self.name}: no ground truth for {noisy}: expected "
                                                f"{scene / gt_stem}{noisy.suffix}")
                    records.append(Record(name=f"{scene.name}/{noisy.name}",
                                          images={"input": noisy, "target": gt_by_stem[gt_stem]},
                                          extras={"scene": scene.name}))
            splits["train"] = records
        mats = find_files(root, list(_SIDD_MATS.values()), max_depth=3)
        if len(mats) == 1:
            present = next(iter(mats.values()))
            raise FileNotFoundError(f"{self.name}: found {present} but not its partner "
                                    f"{set(_SIDD_MATS.values()) - set(mats)} (both are needed for 'validation')")
        if mats:
            noisy = load_mat_blocks(mats[_SIDD_MATS["noisy"]], re.sub(r"\.mat$", "", _SIDD_MATS["noisy"]))
            gt = load_mat_blocks(mats[_SIDD_MATS["gt"]], re.sub(r"\.mat$", "", _SIDD_MATS["gt"]))
            if noisy.shape != gt.shape:
                raise ValueError(f"{self.name}: noisy blocks {noisy.shape} and ground truth {gt.shape} differ")
            splits["validation"] = [
                Record(name=f"{i:02d}_{j:02d}", images={"input": noisy[i, j], "target": gt[i, j]},
                       extras={"scene": ""})
                for i in range(noisy.shape[0]) for j in range(noisy.shape[1])]
        return splits
