"""Desnowing: Snow100K, CSD, SRRS."""

from __future__ import annotations

import pathlib
from typing import ClassVar

from data_pipelines.builders.base import (
    RestorationBuilder, child_dir, find_dirs, instructions, pair_folders)


class _SnowFolders(RestorationBuilder, skip_registration=True):
    """Splits stored as folders holding a snowy and a clean sub-folder with equal file names."""

    # split -> accepted folder names; the snowy/clean sub-folder names.
    SPLIT_FOLDERS: ClassVar[dict[str, tuple[str, ...]]] = {}
    SNOWY: ClassVar[tuple[str, ...]] = ("Snow",)
    CLEAN: ClassVar[tuple[str, ...]] = ("Gt",)
    SEARCH_DEPTH = 0  # manual_dir is the root; split folders are searched below it

    def _pair_dirs(self, folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
        snowy, clean = child_dir(folder, *self.SNOWY), child_dir(folder, *self.CLEAN)
        return (snowy, clean) if snowy and clean else None

    def _split_dirs(self, root: pathlib.Path) -> dict[str, pathlib.Path]:
        found = {}
        for split, names in self.SPLIT_FOLDERS.items():
            lowered = {n.lower() for n in names}
            # Deep search: the Snow100K test archive nests its sets under media/<user>/<disk>/.../test/.
            matches = find_dirs(root, lambda d: d.name.lower() in lowered and self._pair_dirs(d) is not None,
                                max_depth=9)
            if matches:
                found[split] = matches[0]
        return found

    def _is_root(self, path):
        return bool(self._split_dirs(path))

    def _find_records(self, root):
        return {split: pair_folders(*self._pair_dirs(folder)) for split, folder in self._split_dirs(root).items()}


class Snow100k(_SnowFolders):
    """Snow100K (Liu et al., DesnowNet, TIP 2018): 50000 training pairs; test sets S, M, L."""

    name = "snow100k"
    SPLIT_FOLDERS = {"train": ("all",), "test_s": ("Snow100K-S",), "test_m": ("Snow100K-M",),
                     "test_l": ("Snow100K-L",)}
    SNOWY = ("synthetic",)
    CLEAN = ("gt",)
    HOMEPAGE = "https://sites.google.com/view/yunfuliu/desnownet"
    ARCHIVES = ("Snow100K-training.tar.gz", "Snow100K-testset.tar.gz")
    EXPECTED_SIZES = {"train": 50000}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://sites.google.com/view/yunfuliu/desnownet (Snow100K-training, Snow100K-testset)",
        "Snow100K-training.tar.gz, Snow100K-testset.tar.gz or their extracted folders",
        "  Snow100K-training/all/{synthetic,gt}/<f>.jpg\n"
        "  .../Snow100K-S/{synthetic,gt}/<f>.jpg   (likewise Snow100K-M, Snow100K-L; any depth)",
        "Splits: train, test_s, test_m, test_l. The mask/ folders and the unpaired 'realistic' set "
        "are not used.")


class Csd(_SnowFolders):
    """CSD (Chen et al., HDCW-Net, ICCV 2021): snowy/clean pairs, 8000 train / 2000 test.

    Also reads the re-packed train2500/test2000 folders that ConvIR/FocalNet/SFNet evaluate on.
    """

    name = "csd"
    SPLIT_FOLDERS = {"train": ("Train", "train2500"), "test": ("Test", "test2000")}
    HOMEPAGE = "https://github.com/weitingchen83/ICCV2021-Single-Image-Desnowing-HDCWNet"
    ARCHIVES = ("CSD.zip", "CSD.tar.gz")
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/weitingchen83/ICCV2021-Single-Image-Desnowing-HDCWNet (CSD)",
        "the CSD archive or its extracted folder",
        "  CSD/Train/{Snow,Gt}/<f>     CSD/Test/{Snow,Gt}/<f>   (Mask/ unused)\n"
        "  or CSD/train2500/{Snow,Gt}/<f>, CSD/test2000/{Snow,Gt}/<f>")


class Srrs(_SnowFolders):
    """SRRS (Chen et al., JSTASR, ECCV 2020): synthetic snow with veiling effect.

    The release has no train/test partition; the benchmark split of
    HDCW-Net/ConvIR/FocalNet (train2500/test2000 folders) is read as train/test.
    A plain release folder (Syn/ with Gt/) is built as a single 'full' split.
    """

    name = "srrs"
    SPLIT_FOLDERS = {"train": ("train2500",), "test": ("test2000",)}
    HOMEPAGE = "https://github.com/weitingchen83/JSTASR-DesnowNet-ECCV-2020"
    ARCHIVES = ("SRRS.zip",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/weitingchen83/JSTASR-DesnowNet-ECCV-2020 (SRRS); benchmark split: "
        "https://github.com/c-yn/FocalNet Desnowing README",
        "the benchmark split folders, or the release folder",
        "  SRRS/train2500/{Snow,Gt}/<f>, SRRS/test2000/{Snow,Gt}/<f>\n"
        "  or <release>/Syn/<f> with <release>/Gt/<f>   (split 'full')")

    def _release_dirs(self, root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
        for folder in find_dirs(root, lambda d: child_dir(d, "Syn") is not None, max_depth=4):
            clean = child_dir(folder, "Gt", "gt_new", "GT")
            if clean:
                return child_dir(folder, "Syn"), clean
        return None

    def _is_root(self, path):
        return super()._is_root(path) or self._release_dirs(path) is not None

    def _find_records(self, root):
        splits = super()._find_records(root)
        if not splits:
            splits = {"full": pair_folders(*self._release_dirs(root))}
        return splits
