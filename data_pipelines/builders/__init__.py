"""TFDS builders of the restoration benchmarks (array_record, read without TensorFlow).

    from data_pipelines import builders
    builders.build("gopro", manual_dir="~/datasets/gopro", data_dir="~/tensorflow_datasets")
    source = builders.data_source("gopro", "test", data_dir="~/tensorflow_datasets")
    record = source[0]  # {'input': uint8 HxWx3, 'target': ..., 'name': b'GOPR0384_11_00/000001.png', ...}

Importing this package registers every builder with TFDS, so
`tfds.data_source('<name>[/<config>]', ...)` also works directly.
"""

from __future__ import annotations

import os
import pathlib

import tensorflow_datasets as tfds

from data_pipelines.builders.base import Record, RestorationBuilder, encode_image
from data_pipelines.builders.composite import Cdd11
from data_pipelines.builders.defocus import Dpdd, Lfdof, Realdof
from data_pipelines.builders.dehaze import DenseHaze, NhHaze, OHaze, ResideIts, ResideOts, SotsIndoor, SotsOutdoor
from data_pipelines.builders.denoise import Bsd68, Bsd400, Cbsd68, Kodak24, Sidd, Urban100, Wed
from data_pipelines.builders.derain import Rain13k, Rain100h, Rain100l
from data_pipelines.builders.desnow import Csd, Snow100k, Srrs
from data_pipelines.builders.lowlight import Lol
from data_pipelines.builders.motion_blur import Gopro, Hide, RealblurJ, RealblurR
from data_pipelines.builders.weather import Awtd

_ALL: tuple[type[RestorationBuilder], ...] = (
    Gopro, Hide, RealblurJ, RealblurR,
    Dpdd, Realdof, Lfdof,
    ResideIts, ResideOts, SotsIndoor, SotsOutdoor, NhHaze, DenseHaze, OHaze,
    Rain100l, Rain100h, Rain13k,
    Bsd400, Wed, Bsd68, Cbsd68, Kodak24, Urban100, Sidd,
    Snow100k, Csd, Srrs,
    Lol,
    Awtd,
    Cdd11,
)

# Benchmark name (= TFDS dataset name) -> builder class.
BUILDERS: dict[str, type[RestorationBuilder]] = {cls.name: cls for cls in _ALL}

__all__ = ["BUILDERS", "Record", "RestorationBuilder", "build", "builder", "data_source", "encode_image"]


def _split_name(name: str) -> tuple[type[RestorationBuilder], str | None]:
    dataset, _, config = name.partition("/")
    if dataset not in BUILDERS:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(BUILDERS)}")
    cls = BUILDERS[dataset]
    if config:
        configs = [c.name for c in cls.BUILDER_CONFIGS]
        if config not in configs:
            raise ValueError(f"dataset {dataset!r} has no config {config!r}; configs: {configs or 'none'}")
    return cls, config or None


def builder(name: str, data_dir: str | os.PathLike) -> RestorationBuilder:
    """The builder of `name` ('gopro' or 'gopro/blur_gamma') writing array_record files to data_dir."""
    cls, config = _split_name(name)
    return cls(data_dir=os.fspath(pathlib.Path(data_dir).expanduser()), config=config,
               file_format="array_record")


def build(name: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> None:
    """Prepares dataset `name` from the official files in `manual_dir` into `data_dir`.

    Returns at once when data_dir already holds the prepared dataset. Raises ValueError for an unknown name and
    FileNotFoundError (naming the missing path and the expected layout) when
    the files are not where the builder's MANUAL_DOWNLOAD_INSTRUCTIONS says.
    """
    dataset_builder = builder(name, data_dir)
    if dataset_builder.is_prepared():
        return
    manual_dir = pathlib.Path(manual_dir).expanduser()
    if not manual_dir.is_dir():
        raise FileNotFoundError(f"{name}: manual_dir {manual_dir} does not exist.\n"
                                f"Expected layout and source:\n{dataset_builder.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    dataset_builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir)))


def data_source(name: str, split: str, data_dir: str | os.PathLike):
    """Random-access `tfds.data_source` of a prepared split (Grain-compatible, no TensorFlow).

    `split` accepts TFDS split strings ('train', 'test', 'train+validation',
    'train[:10%]'). Raises ValueError for an unknown dataset or split and
    FileNotFoundError when the dataset has not been built in data_dir.
    """
    dataset_builder = builder(name, data_dir)
    if not dataset_builder.is_prepared():
        raise FileNotFoundError(
            f"dataset {name!r} is not prepared in {dataset_builder.data_dir}; build it first "
            f"(data_pipelines.builders.build({name!r}, manual_dir, data_dir))")
    try:
        return dataset_builder.as_data_source(split=split)
    except ValueError as e:
        raise ValueError(f"dataset {name!r}: {e}") from e
