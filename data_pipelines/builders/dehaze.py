"""Dehazing: RESIDE (ITS, OTS, SOTS indoor/outdoor), NH-HAZE, Dense-Haze, O-HAZE."""

from __future__ import annotations

import collections
import pathlib
import re
from typing import ClassVar

from data_pipelines.builders.base import (
    Record, RestorationBuilder, child_dir, instructions, leading_int, list_images)

_RESIDE_HOME = "https://sites.google.com/view/reside-dehaze-datasets"
_HAZY_DIRS = ("hazy", "haze")
_CLEAR_DIRS = ("clear", "gt", "clear_images")


def _clear_id(hazy: pathlib.Path) -> str:
    """RESIDE naming: hazy '1400_1.png' / '0001_0.8_0.2.jpg' is a rendering of clear '1400' / '0001'."""
    return hazy.stem.split("_")[0]


class _Reside(RestorationBuilder, skip_registration=True):
    """One RESIDE subset: every hazy image pairs with the clear image of its id prefix."""

    SPLIT: ClassVar[str] = ""
    NAME_HINTS: ClassVar[tuple[str, ...]] = ()

    def _hazy_clear(self, path: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path] | None:
        hazy, clear = child_dir(path, *_HAZY_DIRS), child_dir(path, *_CLEAR_DIRS)
        return (hazy, clear) if hazy and clear else None

    def _is_root(self, path):
        return self._hazy_clear(path) is not None

    def _prefers(self, path):
        return any(hint in path.name.lower() for hint in self.NAME_HINTS)

    def _find_records(self, root):
        hazy, clear = self._hazy_clear(root)
        clear_by_id = {}
        for path in list_images(clear, recursive=True):
            if path.stem in clear_by_id:
                raise ValueError(f"{self.name}: two clear images with id {path.stem!r}: "
                                 f"{clear_by_id[path.stem]} and {path}")
            clear_by_id[path.stem] = path
        records = []
        for path in list_images(hazy, recursive=True):
            target = clear_by_id.get(_clear_id(path))
            if target is None:
                raise FileNotFoundError(f"{self.name}: no clear image for {path}: expected "
                                        f"{_clear_id(path)}.<png|jpg> in {clear}")
            records.append(Record(name=path.relative_to(hazy).as_posix(), images={"input": path, "target": target}))
        return {self.SPLIT: records}


class ResideIts(_Reside):
    """RESIDE ITS (indoor training set, v2): 13990 hazy renderings of 1399 NYU2 clear images."""

    name = "reside_its"
    SPLIT = "train"
    NAME_HINTS = ("its", "indoor")
    HOMEPAGE = _RESIDE_HOME
    ARCHIVES = ("ITS_v2.zip", "ITS.zip")
    EXPECTED_SIZES = {"train": 13990}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        f"{_RESIDE_HOME} (RESIDE-Standard, ITS v2)",
        "ITS_v2.zip or its extracted folder",
        "  ITS/hazy/<id>_<k>_<beta>.png   (e.g. 1_1_0.90179.png)\n"
        "  ITS/clear/<id>.png             (e.g. 1.png)",
        "A 'gt' folder is accepted in place of 'clear'.")


class ResideOts(_Reside):
    """RESIDE OTS (outdoor training set): hazy '<id>_<A>_<beta>.jpg' renderings of clear '<id>.jpg'."""

    name = "reside_ots"
    SPLIT = "train"
    NAME_HINTS = ("ots", "outdoor")
    HOMEPAGE = _RESIDE_HOME
    ARCHIVES = ("OTS_BETA.zip", "OTS.zip")
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        f"{_RESIDE_HOME} (RESIDE-beta OTS)",
        "the OTS archive(s) or the extracted folder",
        "  OTS/hazy/[part*/]<id>_<A>_<beta>.jpg   (e.g. 0025_0.8_0.1.jpg)\n"
        "  OTS/clear/[...]<id>.jpg                (e.g. 0025.jpg)",
        "Hazy images may sit in sub-folders (part1..part4); 'haze'/'gt'/'clear_images' folder names "
        "are accepted too.")


class _Sots(_Reside, skip_registration=True):
    SPLIT = "test"
    ROOT_NAMES: ClassVar[tuple[str, ...]] = ()
    HOMEPAGE = _RESIDE_HOME
    ARCHIVES = ("SOTS.zip",)
    EXPECTED_SIZES = {"test": 500}

    def _is_root(self, path):
        return path.name.lower() in self.ROOT_NAMES and self._hazy_clear(path) is not None


class SotsIndoor(_Sots):
    """RESIDE SOTS indoor: 500 hazy images (10 per clear image, ids 1400-1449)."""

    name = "sots_indoor"
    ROOT_NAMES = ("indoor", "nyuhaze500")
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        f"{_RESIDE_HOME} (RESIDE-Standard SOTS)",
        "SOTS.zip or its extracted folder",
        "  SOTS/indoor/hazy/<id>_<k>.png   (e.g. 1400_1.png)\n"
        "  SOTS/indoor/gt/<id>.png         (e.g. 1400.png)",
        "RESIDE-beta's SOTS/nyuhaze500/{hazy,gt} is accepted too.")


class SotsOutdoor(_Sots):
    """RESIDE SOTS outdoor: 500 hazy/clear pairs."""

    name = "sots_outdoor"
    ROOT_NAMES = ("outdoor",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        f"{_RESIDE_HOME} (RESIDE-Standard SOTS)",
        "SOTS.zip or its extracted folder",
        "  SOTS/outdoor/hazy/<id>_<A>_<beta>.jpg   (e.g. 0001_0.8_0.2.jpg)\n"
        "  SOTS/outdoor/gt/<id>.png                (e.g. 0001.png)")


def _ntire_role(path: pathlib.Path) -> str | None:
    tokens = re.split(r"[_\-\s]+", path.stem.lower())
    return "input" if "hazy" in tokens else "target" if "gt" in tokens else None


class _NtireHaze(RestorationBuilder, skip_registration=True):
    """NTIRE real-haze sets: '<nn>_[outdoor_]hazy.<ext>' pairs with '<nn>_[outdoor_]GT.<ext>'.

    Splits follow the NTIRE challenge partition by image number (train /
    validation / test); papers that train on train+validation use the split
    string 'train+validation'.
    """

    SPLIT_IDS: ClassVar[dict[str, range]] = {}

    def _is_root(self, path):
        for folder in (path, child_dir(path, "hazy")):
            if folder and any(_ntire_role(p) == "input" and leading_int(p.name) is not None
                              for p in list_images(folder)):
                return True
        return False

    def _find_records(self, root):
        by_role: dict[str, dict[int, list[pathlib.Path]]] = collections.defaultdict(
            lambda: collections.defaultdict(list))
        for path in list_images(root, recursive=True):
            role, number = _ntire_role(path), leading_int(path.name)
            if role and number is not None:
                by_role[role][number].append(path)
        for number, paths in by_role["target"].items():
            if len(paths) > 1:
                raise ValueError(f"{self.name}: several ground-truth images numbered {number}: {paths}")
        splits = {split: [] for split in self.SPLIT_IDS}
        for number in sorted(by_role["input"]):
            if number not in by_role["target"]:
                raise FileNotFoundError(f"{self.name}: no ground truth for {by_role['input'][number][0]}: "
                                        f"expected a file named {number:02d}_..._GT.<ext> under {root}")
            split = next((s for s, ids in self.SPLIT_IDS.items() if number in ids), None)
            if split is None:
                continue
            for hazy in by_role["input"][number]:
                splits[split].append(Record(name=hazy.name,
                                            images={"input": hazy, "target": by_role["target"][number][0]}))
        return splits


class NhHaze(_NtireHaze):
    """NH-HAZE (NTIRE 2020, non-homogeneous haze): 55 pairs; 1-45 train, 46-50 validation, 51-55 test."""

    name = "nh_haze"
    HOMEPAGE = "https://data.vision.ee.ethz.ch/cvl/ntire20/nh-haze/"
    ARCHIVES = ("NH-HAZE.zip",)
    SPLIT_IDS = {"train": range(1, 46), "validation": range(46, 51), "test": range(51, 56)}
    EXPECTED_SIZES = {"train": 45, "validation": 5, "test": 5}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://data.vision.ee.ethz.ch/cvl/ntire20/nh-haze/",
        "NH-HAZE.zip or its extracted folder",
        "  NH-HAZE/<nn>_hazy.png\n"
        "  NH-HAZE/<nn>_GT.png")


class DenseHaze(_NtireHaze):
    """Dense-Haze (NTIRE 2019): 55 pairs; 1-45 train, 46-50 validation, 51-55 test."""

    name = "dense_haze"
    HOMEPAGE = "https://data.vision.ee.ethz.ch/cvl/ntire19/dense-haze/"
    ARCHIVES = ("Dense_Haze_NTIRE19.zip", "Dense-Haze.zip")
    SPLIT_IDS = {"train": range(1, 46), "validation": range(46, 51), "test": range(51, 56)}
    EXPECTED_SIZES = {"train": 45, "validation": 5, "test": 5}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://data.vision.ee.ethz.ch/cvl/ntire19/dense-haze/",
        "Dense_Haze_NTIRE19.zip or its extracted folder",
        "  Dense_Haze/hazy/<nn>_hazy.png\n"
        "  Dense_Haze/GT/<nn>_GT.png")


class OHaze(_NtireHaze):
    """O-HAZE (NTIRE 2018, outdoor): 45 pairs; 1-35 train, 36-40 validation, 41-45 test."""

    name = "o_haze"
    HOMEPAGE = "https://data.vision.ee.ethz.ch/cvl/ntire18/o-haze/"
    ARCHIVES = ("O-HAZE.zip",)
    SPLIT_IDS = {"train": range(1, 36), "validation": range(36, 41), "test": range(41, 46)}
    EXPECTED_SIZES = {"train": 35, "validation": 5, "test": 5}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://data.vision.ee.ethz.ch/cvl/ntire18/o-haze/",
        "O-HAZE.zip or its extracted folder",
        "  O-HAZE/# O-HAZY NTIRE 2018/hazy/<nn>_outdoor_hazy.jpg\n"
        "  O-HAZE/# O-HAZY NTIRE 2018/GT/<nn>_outdoor_GT.jpg")
