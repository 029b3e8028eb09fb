"""Defocus deblurring: DPDD (dual-pixel), RealDOF, LFDOF."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders.base import (
    Record, RestorationBuilder, child_dir, instructions, list_images, pair_folders, stem_index)

_DPDD_SPLITS = {"train": "train", "validation": "val", "test": "test"}
_VIEW_SUFFIX = re.compile(r"[_-][lrcLRC]$")


class Dpdd(RestorationBuilder):
    """DPDD (Abuolaim & Brown, ECCV 2020), Canon dual-pixel set: 350 train / 74 val / 76 test.

    Each record: 'input_left'/'input_right' (the two dual-pixel views),
    'input' (the combined centre image, the single-image benchmark input) and
    'target' (the all-in-focus capture), each HxWx3 uint16. The official files
    are 16-bit PNGs, decoded with OpenCV and stored losslessly (zlib uint16
    tensors), so records keep every bit; the pipelines divide by 65535, as the
    official loaders do. 8-bit files (e.g. a re-saved copy) are scaled by 257.
    """

    name = "dpdd"
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release (8-bit records: high byte of each 16-bit sample).",
                     "1.1.0": "Views stored as 16-bit (uint16), lossless."}
    IMAGE_KEYS = ("input_left", "input_right", "input", "target")
    IMAGE_DTYPE = np.uint16
    HOMEPAGE = "https://github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel"
    ARCHIVES = ("dd_dp_dataset_canon.zip", "dd_dp_dataset_png.zip")
    EXPECTED_SIZES = {"train": 350, "validation": 74, "test": 76}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel (Canon DP data, 16-bit PNG)",
        "dd_dp_dataset_canon.zip (or dd_dp_dataset_png.zip) or its extracted folder",
        "  dd_dp_dataset_canon/{train,val,test}_c/source/<f>.png   (combined input)\n"
        "  dd_dp_dataset_canon/{train,val,test}_c/target/<f>.png   (all-in-focus target)\n"
        "  dd_dp_dataset_canon/{train,val,test}_l/source/<f>.png   (left view)\n"
        "  dd_dp_dataset_canon/{train,val,test}_r/source/<f>.png   (right view)",
        "Also accepted: Restormer's re-packed {train,val,test}/DPDD/{inputL,inputR,inputC,target}/ folders.")

    @staticmethod
    def _restormer_dir(root: pathlib.Path, split_folder: str) -> pathlib.Path | None:
        split_dir = child_dir(root, split_folder)
        for candidate in (split_dir, child_dir(split_dir, "DPDD") if split_dir else None):
            if candidate and all(child_dir(candidate, v) for v in ("inputL", "inputR", "inputC", "target")):
                return candidate
        return None

    def _is_root(self, path):
        return any((path / f"{s}_c" / "source").is_dir() or self._restormer_dir(path, s)
                   for s in _DPDD_SPLITS.values())

    def _find_records(self, root):
        splits = {}
        for split, folder in _DPDD_SPLITS.items():
            if (root / f"{folder}_c").is_dir():
                views = {"input": root / f"{folder}_c" / "source", "target": root / f"{folder}_c" / "target",
                         "input_left": root / f"{folder}_l" / "source",
                         "input_right": root / f"{folder}_r" / "source"}
            elif repacked := self._restormer_dir(root, folder):
                views = {"input": child_dir(repacked, "inputC"), "target": child_dir(repacked, "target"),
                         "input_left": child_dir(repacked, "inputL"), "input_right": child_dir(repacked, "inputR")}
            else:
                continue
            splits[split] = self._pair_views(views)
        return splits

    def _pair_views(self, views: dict[str, pathlib.Path]) -> list[Record]:
        listed = {}
        for key, directory in views.items():
            if not directory.is_dir():
                raise FileNotFoundError(f"{self.name}: missing {directory}")
            listed[key] = list_images(directory)
        counts = {key: len(paths) for key, paths in listed.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(f"{self.name}: views have different image counts {counts} in "
                             f"{sorted(str(d) for d in views.values())}")
        # Pair by file id with any _L/_R/_C view suffix removed; the official
        # loader pairs by sorted position, which agrees whenever ids match.
        indexed = {key: stem_index(paths, key=lambda p: _VIEW_SUFFIX.sub("", p.stem) or p.stem,
                                   where=f" in {views[key]}") for key, paths in listed.items()}
        same_ids = len({frozenset(index) for index in indexed.values()}) == 1
        records = []
        for position, centre in enumerate(listed["input"]):
            if same_ids:
                image_id = _VIEW_SUFFIX.sub("", centre.stem) or centre.stem
                images = {key: indexed[key][image_id] for key in views}
            else:
                images = {key: listed[key][position] for key in views}
            records.append(Record(name=centre.name, images=images))
        return records


class Realdof(RestorationBuilder):
    """RealDOF (Lee et al., CVPR 2021): 50 real defocus/all-in-focus test pairs."""

    name = "realdof"
    HOMEPAGE = "https://github.com/codeslake/IFAN"
    ARCHIVES = ("RealDOF.zip",)
    EXPECTED_SIZES = {"test": 50}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://www.dropbox.com/s/arox1aixvg67fw5/RealDOF.zip (linked from codeslake/IFAN)",
        "RealDOF.zip or its extracted folder RealDOF/",
        "  RealDOF/source/<f>.png   (defocused)\n"
        "  RealDOF/target/<f>.png   (all-in-focus)")

    def _is_root(self, path):
        return (path / "source").is_dir() and (path / "target").is_dir()

    def _find_records(self, root):
        return {"test": pair_folders(root / "source", root / "target")}


def _scene_id(path: pathlib.Path, base: pathlib.Path) -> str:
    """Scene of an LFDOF input: its folder below input/, or its stem when it lies directly there."""
    relative = path.relative_to(base)
    return relative.parts[0] if len(relative.parts) > 1 else path.stem


class Lfdof(RestorationBuilder):
    """LFDOF (Ruan et al., TCI 2021): light-field generated defocus/all-in-focus pairs.

    Test: test_data/input/<id>.png with test_data/ground_truth/<id>.png.
    Train: train_data/input/ holds, per scene, either one file <id>.png or a
    folder <id>/ of several defocused renderings; each pairs with
    train_data/ground_truth/<id>.png. 'scene' is the ground-truth id.
    """

    name = "lfdof"
    EXTRA_FEATURES = {"scene": tfds.features.Text}
    HOMEPAGE = "https://sweb.cityu.edu.hk/miullam/AIFNET/"
    ARCHIVES = ("LFDOF.zip",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://sweb.cityu.edu.hk/miullam/AIFNET/ (LFDOF dataset)",
        "the LFDOF archive or its extracted folder LFDOF/",
        "  LFDOF/train_data/input/<id>/<k>.png  or  LFDOF/train_data/input/<id>.png\n"
        "  LFDOF/train_data/ground_truth/<id>.png\n"
        "  LFDOF/test_data/input/<id>.png\n"
        "  LFDOF/test_data/ground_truth/<id>.png")

    def _is_root(self, path):
        return any((path / s / "input").is_dir() and (path / s / "ground_truth").is_dir()
                   for s in ("train_data", "test_data"))

    def _find_records(self, root):
        splits = {}
        for split, folder in (("train", "train_data"), ("test", "test_data")):
            inputs, targets = root / folder / "input", root / folder / "ground_truth"
            if inputs.is_dir() and targets.is_dir():
                scene_of = lambda p, base=inputs: _scene_id(p, base)
                splits[split] = pair_folders(inputs, targets, recursive=True, input_key=scene_of,
                                             extras=lambda p, f=scene_of: {"scene": f(p)})
        return splits
