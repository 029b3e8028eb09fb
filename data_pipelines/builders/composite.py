"""Composite degradations: CDD-11 (OneRestore, ECCV 2024), 11 combinations of low light, haze, rain and snow."""

from __future__ import annotations

import tensorflow_datasets as tfds

from data_pipelines.builders.base import RestorationBuilder, child_dir, instructions, pair_folders

# The degraded folders beside clear/, in the order of gy65896/OneRestore img_file/cal_psnr_ssim.py
# (degradation_types) and eduardzamfir/MoCE-IR README.md (CDD11 [DEG_CONFIG]).
CDD11_COMBINATIONS = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
                      "low_haze_rain", "low_haze_snow")
# Split folder names: OneRestore's README layout (data/train, data/test) and its commands' (CDD-11_train/_test).
_SPLIT_FOLDERS = {"train": ("train", "CDD-11_train"), "test": ("test", "CDD-11_test")}


class Cdd11(RestorationBuilder):
    """CDD-11: train/ and test/, each a clear/ folder and one folder per combination whose images have the
    clear image's file name. Splits: 'train' (all 11 combinations; feature 'degradation' names each
    record's) and one 'test_<combination>' per combination (e.g. 'test_low_haze_rain')."""

    name = "cdd11"
    EXTRA_FEATURES = {"degradation": tfds.features.Text}
    HOMEPAGE = "https://github.com/gy65896/OneRestore"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://huggingface.co/datasets/gy65896/CDD-11 (linked from github.com/gy65896/OneRestore README, "
        "'Prepare Dataset')",
        "the train and test folders (or their archives extracted into manual_dir)",
        "  <root>/train/{clear,low,haze,rain,snow,low_haze,low_rain,low_snow,haze_rain,haze_snow,low_haze_rain,"
        "low_haze_snow}/<name>.png\n"
        "  <root>/test/<same folders>/<name>.png\n"
        "  (CDD-11_train/ and CDD-11_test/ are accepted for train/ and test/)",
        "Splits: 'train' and 'test_<combination>' (e.g. 'test_low', 'test_haze_snow').")

    @staticmethod
    def _split_dir(path, split):
        for folder in _SPLIT_FOLDERS[split]:
            directory = child_dir(path, folder)
            if directory is not None and child_dir(directory, "clear") is not None:
                return directory
        return None

    def _is_root(self, path):
        return any(self._split_dir(path, split) is not None for split in _SPLIT_FOLDERS)

    @staticmethod
    def _pairs(split_dir, combination):
        degraded = child_dir(split_dir, combination)
        if degraded is None:
            return []
        return pair_folders(degraded, child_dir(split_dir, "clear"), name_prefix=f"{combination}/",
                            extras=lambda _: {"degradation": combination})

    def _find_records(self, root):
        splits = {}
        train = self._split_dir(root, "train")
        if train is not None:
            splits["train"] = [r for c in CDD11_COMBINATIONS for r in self._pairs(train, c)]
        test = self._split_dir(root, "test")
        if test is not None:
            for combination in CDD11_COMBINATIONS:
                splits[f"test_{combination}"] = self._pairs(test, combination)
        return splits
