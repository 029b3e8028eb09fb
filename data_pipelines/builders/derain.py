"""Deraining: Rain100L, Rain100H (with their RainTrainL/H training sets), Rain13K."""

from __future__ import annotations

import pathlib
import re
from typing import ClassVar

from data_pipelines.builders.base import (
    Record, RestorationBuilder, child_dir, find_dirs, instructions, list_images, pair_folders, stem_index)

_TARGET_FOLDERS = {"target", "gt", "norain", "groundtruth", "ground_truth", "clean"}
_INPUT_FOLDERS = {"input", "rain", "rainy", "x2"}


def _rain_role(path: pathlib.Path, split_dir: pathlib.Path) -> str | None:
    """'input' (rainy) or 'target' (clean) from the folder or the JORDER/PReNet file naming."""
    folders = {part.lower() for part in path.relative_to(split_dir).parts[:-1]}
    stem = path.stem.lower()
    if folders & _INPUT_FOLDERS:  # checked first: JORDER keeps rainy 'norain-1x2.png' under rain/X2/
        return "input"
    if folders & _TARGET_FOLDERS:
        return "target"
    if re.fullmatch(r"norain[-_]?\d+", stem):
        return "target"
    if stem.startswith("rain") or stem.endswith("x2"):
        return "input"
    return None


def _rain_id(path: pathlib.Path) -> str:
    """Shared id of a rainy/clean pair: 'rain-001', 'norain-1x2', 'norain-1' and '1' all give '1'."""
    stem = re.sub(r"x2$", "", path.stem.lower())
    stem = re.sub(r"^(no)?rain[-_]?", "", stem)
    return str(int(stem)) if stem.isdigit() else stem


def pair_rain_folder(split_dir: pathlib.Path, builder_name: str) -> list[Record]:
    """Records of one Rain100/RainTrain folder in any of its published layouts."""
    roles: dict[str, list[pathlib.Path]] = {"input": [], "target": []}
    for path in list_images(split_dir, recursive=True):
        role = _rain_role(path, split_dir)
        if role:
            roles[role].append(path)
    targets = stem_index(roles["target"], key=_rain_id, where=f" in {split_dir}")
    records = []
    for path in roles["input"]:
        target = targets.get(_rain_id(path))
        if target is None:
            raise FileNotFoundError(f"{builder_name}: no clean image for {path}: expected norain-{_rain_id(path)}"
                                    f".png (or the same name under target/) in {split_dir}")
        records.append(Record(name=path.relative_to(split_dir).as_posix(), images={"input": path, "target": target}))
    return records


class _Rain100(RestorationBuilder, skip_registration=True):
    """Rain100L/H (Yang et al., CVPR 2017, JORDER): 100 test pairs; training on RainTrainL/H."""

    SPLIT_FOLDERS: ClassVar[dict[str, tuple[str, ...]]] = {}
    SEARCH_DEPTH = 0  # the root is manual_dir (or the folder archives unpack to); split folders are searched below

    def _split_dirs(self, root: pathlib.Path) -> dict[str, pathlib.Path]:
        found = {}
        for split, names in self.SPLIT_FOLDERS.items():
            lowered = {n.lower() for n in names}
            matches = find_dirs(root, lambda d: d.name.lower() in lowered, max_depth=4)
            if matches:
                found[split] = matches[0]
        return found

    def _is_root(self, path):
        return bool(self._split_dirs(path))

    def _find_records(self, root):
        return {split: pair_rain_folder(d, self.name) for split, d in self._split_dirs(root).items()}


class Rain100l(_Rain100):
    """Rain100L (light rain): test 100 pairs; train = RainTrainL, 200 pairs."""

    name = "rain100l"
    HOMEPAGE = "https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal"
    ARCHIVES = ("Rain100L.zip", "RainTrainL.zip", "rain_data_test_Light.zip", "rain_data_train_Light.zip")
    SPLIT_FOLDERS = {"train": ("RainTrainL", "rain_data_train_Light"),
                     "test": ("Rain100L", "rain_data_test_Light")}
    EXPECTED_SIZES = {"train": 200, "test": 100}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal (Rain100L, RainTrainL)",
        "the archives or extracted folders, one per split",
        "  RainTrainL/{rain-<n>.png, norain-<n>.png}         (train; or rain_data_train_Light/)\n"
        "  Rain100L/{rain-<n>.png, norain-<n>.png}           (test; or rain_data_test_Light/)",
        "Inside a split folder these layouts are recognised: rain-<n>/norain-<n> side by side (PReNet), "
        "rain/X2/norain-<n>x2.png with norain/norain-<n>.png (JORDER), rainy/ with gt/ (PromptIR), "
        "input/ with target/ of equal names (Restormer/MPRNet).")


class Rain100h(_Rain100):
    """Rain100H (heavy rain): test 100 pairs; train = RainTrainH, 1800 pairs."""

    name = "rain100h"
    HOMEPAGE = "https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal"
    ARCHIVES = ("Rain100H.zip", "RainTrainH.zip", "rain_data_test_Heavy.zip", "rain_data_train_Heavy.zip")
    SPLIT_FOLDERS = {"train": ("RainTrainH", "rain_data_train_Heavy"),
                     "test": ("Rain100H", "rain_data_test_Heavy")}
    EXPECTED_SIZES = {"train": 1800, "test": 100}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-TPAMI-2019-Journal (Rain100H, RainTrainH)",
        "the archives or extracted folders, one per split",
        "  RainTrainH/{rain-<n>.png, norain-<n>.png}         (train; or rain_data_train_Heavy/)\n"
        "  Rain100H/{rain-<n>.png, norain-<n>.png}           (test; or rain_data_test_Heavy/)",
        "Same layouts as rain100l. PReNet drops the 546 RainTrainH images whose backgrounds appear in "
        "Rain100H; all 1800 are kept here.")


class Rain13k(RestorationBuilder):
    """Rain13K (MPRNet/Restormer deraining training set): 13712 input/target pairs."""

    name = "rain13k"
    HOMEPAGE = "https://github.com/swz30/MPRNet"
    ARCHIVES = ("train.zip", "Rain13K.zip")
    EXPECTED_SIZES = {"train": 13712}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/swz30/Restormer/blob/main/Deraining/download_data.py (Google Drive 'train' set)",
        "the training archive or its extracted folder",
        "  Rain13K/input/<f>.<jpg|png>\n"
        "  Rain13K/target/<f>.<jpg|png>   (same file names)")

    def _is_root(self, path):
        return path.name.lower() == "rain13k" and bool(child_dir(path, "input")) and bool(child_dir(path, "target"))

    def _find_records(self, root):
        return {"train": pair_folders(child_dir(root, "input"), child_dir(root, "target"))}
