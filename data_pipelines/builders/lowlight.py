"""Low-light enhancement: LOL (LOw-Light dataset, Wei et al., BMVC 2018)."""

from __future__ import annotations

from data_pipelines.builders.base import RestorationBuilder, child_dir, instructions, pair_folders

_SPLITS = {"train": "our485", "test": "eval15"}


class Lol(RestorationBuilder):
    """LOL v1: 485 train (our485) / 15 test (eval15) low/normal-light pairs of equal file names."""

    name = "lol"
    HOMEPAGE = "https://daooshee.github.io/BMVC2018website/"
    ARCHIVES = ("LOLdataset.zip",)
    EXPECTED_SIZES = {"train": 485, "test": 15}
    MANUAL_DOWNLOAD_INSTRUCTIONS = instructions(
        "https://daooshee.github.io/BMVC2018website/ (LOLdataset.zip)",
        "LOLdataset.zip or its extracted folder",
        "  LOLdataset/our485/{low,high}/<n>.png   (train)\n"
        "  LOLdataset/eval15/{low,high}/<n>.png   (test)")

    def _is_root(self, path):
        return any(child_dir(path, folder) for folder in _SPLITS.values())

    def _find_records(self, root):
        splits = {}
        for split, folder in _SPLITS.items():
            split_dir = child_dir(root, folder)
            if split_dir is None:
                continue
            low, high = child_dir(split_dir, "low"), child_dir(split_dir, "high")
            if not (low and high):
                raise FileNotFoundError(f"{self.name}: expected {split_dir}/low and {split_dir}/high")
            splits[split] = pair_folders(low, high)
        return splits
