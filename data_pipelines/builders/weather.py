"""All-in-one weather restoration: AWTD (MPMF-Net's all-weather traffic dataset, AAAI 2025)."""

from __future__ import annotations

from data_pipelines.builders.base import RestorationBuilder, child_dir, instructions, pair_folders

# Split name -> folder under test/ (the six test sets of chdwyb/MPMF-Net options.py Dataset_Names).
AWTD_TEST_SETS = {
    "test_foggy_cityscapes": "FoggyCityscapes",
    "test_rain_cityscapes": "RainCityscapes",
    "test_rs_cityscapes": "RSCityscapes",
    "test_snow_traffic": "SnowTrafficData",
    "test_lowlight_traffic": "LowLightTrafficData",
    "test_raindssyn": "RainDS-syn",
}


class Awtd(RestorationBuilder):
    """AWTD: one mixed training set (haze, rain, rain + streaks, snow, low light) and six test sets,
    each `input/` and `target/` folders of same-named degraded/clean images."""

    name = "awtd"
    HOMEPAGE = "https://github.com/chdwyb/MPMF-Net"
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "the Baidu Netdisk links of github.com/chdwyb/MPMF-Net README (code: awtd): the AWTD training set "
        "and the six test sets",
        "the AWTD folder (train/ and test/) or the archives extracted into it",
        "  AWTD/train/{input,target}/<image>\n"
        "  AWTD/test/<FoggyCityscapes|RainCityscapes|RSCityscapes|SnowTrafficData|LowLightTrafficData|"
        "RainDS-syn>/{input,target}/<image>",
        "Splits: 'train' and one 'test_<set>' per test set (e.g. 'test_raindssyn', MPMF-Net's validation set).")

    def _is_root(self, path):
        return child_dir(path, "train") is not None or child_dir(path, "test") is not None

    @staticmethod
    def _pairs(folder):
        inputs, targets = child_dir(folder, "input"), child_dir(folder, "target")
        if not (inputs and targets):
            raise FileNotFoundError(f"awtd: expected {folder}/input and {folder}/target")
        return pair_folders(inputs, targets)

    def _find_records(self, root):
        splits = {}
        train = child_dir(root, "train")
        if train is not None:
            splits["train"] = self._pairs(train)
        test = child_dir(root, "test")
        for split, folder in AWTD_TEST_SETS.items():
            directory = child_dir(test, folder) if test is not None else None
            if directory is not None:
                splits[split] = self._pairs(directory)
        return splits
