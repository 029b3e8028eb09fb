"""Shared machinery of the restoration TFDS builders (no TensorFlow needed).

TFDS encodes `tfds.features.Image` values given as numpy arrays with
`tf.image.encode_png`, which needs TensorFlow; values given as encoded bytes
are stored as they are. So every image of an 8-bit dataset is handed to TFDS
as PNG/JPEG bytes: 8-bit RGB PNG and RGB JPEG files are copied byte for byte,
everything else (greyscale, palette, alpha, 16-bit, BMP, TIFF, arrays from
.mat files) is converted to 8-bit RGB and re-encoded as PNG. Without
TensorFlow, `tfds.data_source` decodes `Image` features with PIL, which reads
16-bit RGB PNGs as 8 bits; so 16-bit datasets (`IMAGE_DTYPE = np.uint16`,
e.g. DPDD) store each view as a zlib-compressed uint16 `tfds.features.Tensor`
instead (lossless, decoded with numpy), the files decoded with OpenCV.
TFDS's own archive extractor also needs TensorFlow, so official archives are
unpacked here with `zipfile`/`tarfile`. Records are written as array_record
and read back with `tfds.data_source`.

A builder subclasses `RestorationBuilder`, writes `MANUAL_DOWNLOAD_INSTRUCTIONS`
(official URL, file names, expected layout), `_is_root(path)` (does this folder
hold the dataset?) and `_find_records(root) -> {split: [Record, ...]}`.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import inspect
import io
import logging
import os
import pathlib
import re
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image, UnidentifiedImageError
from tensorflow_datasets.core import utils as tfds_utils

from data_pipelines.sources import decode_png16, is_png16, load_image

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8"

ImageSource = pathlib.Path | np.ndarray


@dataclasses.dataclass(frozen=True)
class Record:
    """One example before encoding.

    Attributes:
      name: relative file id, unique within its split (becomes the record key).
      images: feature name ('input', 'target', ...) -> image file or uint8/uint16 array.
      extras: other feature values (e.g. 'scene').
    """

    name: str
    images: Mapping[str, ImageSource]
    extras: Mapping[str, Any] = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------
# Image encoding


def _png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _rgb_channels(array: np.ndarray) -> np.ndarray:
    """HxW or HxWxC (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) -> contiguous HxWx3, same dtype."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW or HxWxC (C in 1..4) image array, got shape {array.shape}")
    if array.shape[-1] <= 2:
        return np.repeat(array[..., :1], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _check_image_dtype(array: np.ndarray) -> None:
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 image array, got dtype {array.dtype}")


def to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """HxW or HxWxC uint8/uint16 array -> contiguous HxWx3 uint8 (16-bit scaled by 1/257, rounded)."""
    array = np.asarray(array)
    _check_image_dtype(array)
    if array.dtype == np.uint16:
        array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    return _rgb_channels(array)


def to_rgb_uint16(array: np.ndarray) -> np.ndarray:
    """HxW or HxWxC uint8/uint16 array -> contiguous HxWx3 uint16.

    uint8 is scaled by 257 (255 -> 65535), so v/255 == 257 v/65535 exactly.
    """
    array = np.asarray(array)
    _check_image_dtype(array)
    if array.dtype == np.uint8:
        array = array.astype(np.uint16) * np.uint16(257)
    return _rgb_channels(array)


def _pil_to_rgb_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        grey = np.asarray(image)
        if grey.max(initial=0) > 65535 or grey.min(initial=0) < 0:
            raise ValueError("32-bit integer images are not supported")
        return to_rgb_uint8(grey.astype(np.uint16))
    if image.mode == "F":
        raise ValueError("floating-point images are not supported")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def encode_image(source: ImageSource) -> bytes:
    """PNG/JPEG bytes of an 8-bit RGB image, without TensorFlow.

    8-bit RGB PNG and RGB JPEG files are returned unchanged (no re-encoding
    loss, no size growth); anything else is converted to 8-bit RGB (grey
    replicated to 3 channels, alpha dropped, 16-bit scaled by 1/257 and
    rounded; 16-bit PNGs are decoded with OpenCV) and re-encoded as PNG.
    16-bit datasets keep full precision with `to_rgb_uint16` instead.
    """
    if isinstance(source, np.ndarray):
        return _png_bytes(to_rgb_uint8(source))
    path = pathlib.Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    # PNG IHDR: bit depth at byte 24, colour type at byte 25 (2 = RGB).
    if data.startswith(_PNG_SIGNATURE) and len(data) > 25 and data[24] == 8 and data[25] == 2:
        return data
    if is_png16(data):
        try:
            return _png_bytes(to_rgb_uint8(decode_png16(data)))
        except ValueError as e:
            raise ValueError(f"cannot read image {path}: {e}") from e
    try:
        with Image.open(io.BytesIO(data)) as image:
            if data.startswith(_JPEG_SIGNATURE) and image.format == "JPEG" and image.mode == "RGB":
                return data
            image.load()
            array = _pil_to_rgb_uint8(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    return _png_bytes(array)


# ---------------------------------------------------------------------------
# File system helpers used by the builders


def is_image(path: pathlib.Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(directory: pathlib.Path, recursive: bool = False) -> list[pathlib.Path]:
    """Image files in `directory` (sorted by relative path); FileNotFoundError if absent."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory not found: {directory}")
    paths = directory.rglob("*") if recursive else directory.iterdir()
    return sorted((p for p in paths if is_image(p)), key=lambda p: p.relative_to(directory).as_posix())


def child_dir(parent: pathlib.Path, *names: str) -> pathlib.Path | None:
    """First sub-directory of `parent` whose name matches one of `names` (case-insensitive)."""
    for name in names:  # exact names first: no directory listing needed
        if (parent / name).is_dir():
            return parent / name
    if not parent.is_dir():
        return None
    # scandir's d_type avoids a stat per entry in folders of thousands of images.
    by_lower = {e.name.lower(): pathlib.Path(e.path) for e in sorted(os.scandir(parent), key=lambda e: e.name)
                if e.is_dir()}
    for name in names:
        if name.lower() in by_lower:
            return by_lower[name.lower()]
    return None


def walk_dirs(top: pathlib.Path, max_depth: int) -> Iterator[pathlib.Path]:
    """`top` and its sub-directories breadth-first (shallowest first), sorted per level."""
    level = [pathlib.Path(top)]
    for _ in range(max_depth + 1):
        next_level = []
        for directory in level:
            yield directory
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except (PermissionError, NotADirectoryError, FileNotFoundError):
                continue
            next_level += [pathlib.Path(e.path) for e in entries
                           if e.is_dir() and not e.name.startswith(".")]
        level = next_level


def find_dirs(top: pathlib.Path, predicate: Callable[[pathlib.Path], bool],
              max_depth: int = 6) -> list[pathlib.Path]:
    """All directories under `top` (depth <= max_depth) satisfying `predicate`, shallowest first."""
    return [d for d in walk_dirs(top, max_depth) if predicate(d)]


def find_files(top: pathlib.Path, names: Sequence[str], max_depth: int = 6) -> dict[str, pathlib.Path]:
    """Shallowest file under `top` for each of `names` (case-insensitive); absent names are omitted."""
    wanted = {n.lower(): n for n in names}
    found: dict[str, pathlib.Path] = {}
    for directory in walk_dirs(top, max_depth):
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            key = entry.name.lower()
            if key in wanted and entry.is_file() and wanted[key] not in found:
                found[wanted[key]] = pathlib.Path(entry.path)
        if len(found) == len(wanted):
            break
    return found


def stem_index(paths: Iterable[pathlib.Path], key: Callable[[pathlib.Path], str] = lambda p: p.stem,
               where: str = "") -> dict[str, pathlib.Path]:
    """{key(path): path}; ValueError when two files share a key (e.g. a.png and a.jpg)."""
    index: dict[str, pathlib.Path] = {}
    for path in paths:
        k = key(path)
        if k in index:
            raise ValueError(f"two files map to the same id {k!r}{where}: {index[k]} and {path}")
        index[k] = path
    return index


def pair_folders(input_dir: pathlib.Path, target_dir: pathlib.Path, *,
                 name_prefix: str = "", recursive: bool = False,
                 input_key: Callable[[pathlib.Path], str] | None = None,
                 target_key: Callable[[pathlib.Path], str] | None = None,
                 extras: Callable[[pathlib.Path], Mapping[str, Any]] | None = None) -> list[Record]:
    """One record per input image, paired with the target of the same id.

    Ids default to the path relative to the folder without extension (so
    'x.jpg' pairs with 'x.png'); `input_key` maps an input path to the target
    id for many-to-one datasets (e.g. hazy '1400_1.png' -> clear '1400').
    Raises FileNotFoundError naming the expected target file when one is missing.
    """
    inputs = list_images(input_dir, recursive=recursive)
    targets = list_images(target_dir, recursive=recursive)

    def relative_stem(base: pathlib.Path) -> Callable[[pathlib.Path], str]:
        return lambda p: p.relative_to(base).with_suffix("").as_posix()

    input_key = input_key or relative_stem(input_dir)
    target_key = target_key or relative_stem(target_dir)
    by_key = stem_index(targets, key=target_key, where=f" in {target_dir}")
    records = []
    for path in inputs:
        k = input_key(path)
        if k not in by_key:
            raise FileNotFoundError(
                f"no target for input {path}: expected a file named {k}.<png|jpg|...> in {target_dir}")
        records.append(Record(
            name=name_prefix + path.relative_to(input_dir).as_posix(),
            images={"input": path, "target": by_key[k]},
            extras=dict(extras(path)) if extras else {}))
    return records


def clean_records(directory: pathlib.Path) -> list[Record]:
    """Target-only records of the images in `directory` (the degradation is synthesised later)."""
    return [Record(name=p.name, images={"target": p}) for p in list_images(directory)]


def leading_int(text: str) -> int | None:
    match = re.match(r"\d+", text)
    return int(match.group()) if match else None


def safe_extract(archive: pathlib.Path, destination: pathlib.Path) -> pathlib.Path:
    """Unpacks a zip/tar archive into `destination` (once; a marker file records completion)."""
    done_marker = destination / ".extracted"
    if done_marker.exists():
        return destination
    destination.mkdir(parents=True, exist_ok=True)
    logger.info("extracting %s to %s", archive, destination)
    name = archive.name.lower()
    if name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(destination)  # zipfile drops absolute paths and '..' itself
    elif name.endswith(ARCHIVE_SUFFIXES):
        with tarfile.open(archive) as tf:
            tf.extractall(destination, filter="data")  # rejects links/paths escaping destination
    else:
        raise ValueError(f"cannot unpack {archive} (only zip and tar archives are supported); "
                         "extract it into manual_dir yourself")
    done_marker.touch()
    return destination


# ---------------------------------------------------------------------------
# Builder base


class RestorationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the paired/clean image-restoration builders.

    Features: one RGB image per entry of `IMAGE_KEYS`, 'name' (relative file
    id) and the `EXTRA_FEATURES`. With `IMAGE_DTYPE = np.uint8` (the default)
    images are PNG/JPEG `tfds.features.Image`s; with `np.uint16` they are
    zlib-compressed uint16 `tfds.features.Tensor`s of shape (H, W, 3), read
    back as uint16 arrays (8-bit files in such a dataset are scaled by 257).
    Records keep the sorted file order (shuffling disabled): evaluation order
    is reproducible and training pipelines shuffle themselves.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}

    IMAGE_KEYS: ClassVar[tuple[str, ...]] = ("input", "target")
    IMAGE_DTYPE: ClassVar[type[np.unsignedinteger]] = np.uint8
    EXTRA_FEATURES: ClassVar[dict[str, Callable[[], tfds.features.FeatureConnector]]] = {}
    DESCRIPTION: ClassVar[str] = ""
    HOMEPAGE: ClassVar[str] = ""
    CITATION: ClassVar[str] = ""
    # Official archive names accepted in manual_dir instead of the extracted folder.
    ARCHIVES: ClassVar[tuple[str, ...]] = ()
    # Official split sizes; a mismatch is logged (partial downloads still build).
    EXPECTED_SIZES: ClassVar[dict[str, int]] = {}
    # How deep below manual_dir (or an extracted archive) the dataset root may be.
    SEARCH_DEPTH: ClassVar[int] = 4

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS's default resolves package resources through the `importlib_resources`
        # backport, which is not a dependency here; the source file is all it needs.
        return epath.Path(inspect.getfile(cls))

    # -- to implement -------------------------------------------------------

    @abc.abstractmethod
    def _is_root(self, path: pathlib.Path) -> bool:
        """Whether `path` is the dataset's root folder."""

    @abc.abstractmethod
    def _find_records(self, root: pathlib.Path) -> dict[str, list[Record]]:
        """{split: records} found under the dataset root (splits absent on disk omitted)."""

    # -- TFDS hooks ---------------------------------------------------------

    def _info(self) -> tfds.core.DatasetInfo:
        features: dict[str, Any] = {key: self._image_feature() for key in self.IMAGE_KEYS}
        features["name"] = tfds.features.Text()
        features.update({key: make() for key, make in self.EXTRA_FEATURES.items()})
        paired = "input" in self.IMAGE_KEYS
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.DESCRIPTION or (self.__doc__ or "").strip(),
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("input", "target") if paired else None,
            homepage=self.HOMEPAGE or None,
            citation=self.CITATION or None,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        root = self.locate_root(self._manual_dir(dl_manager), dl_manager.download_dir / "extracted")
        splits = self._find_records(root)
        splits = {split: records for split, records in splits.items() if records}
        if not splits:
            raise FileNotFoundError(
                f"{self.name}: found the dataset folder {root} but no images in it.\n"
                f"{self._layout_help()}")
        for split, records in splits.items():
            self._check_split(split, records, root)
        missing = sorted(set(self.EXPECTED_SIZES) - set(splits))
        if missing:
            logger.warning("%s: split(s) %s not found under %s; building %s only",
                           self.name, missing, root, sorted(splits))
        return {split: self._generate_examples(records) for split, records in splits.items()}

    def _image_feature(self) -> tfds.features.FeatureConnector:
        if self.IMAGE_DTYPE == np.uint8:
            return tfds.features.Image(shape=(None, None, 3), dtype=np.uint8)
        if self.IMAGE_DTYPE == np.uint16:
            # tfds decodes Image features with PIL when TensorFlow is absent, and PIL
            # reads 16-bit RGB as 8 bits; a zlib Tensor decodes with numpy, losslessly.
            return tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint16,
                                        encoding=tfds.features.Encoding.ZLIB)
        raise ValueError(f"{self.name}: IMAGE_DTYPE must be np.uint8 or np.uint16, got {self.IMAGE_DTYPE}")

    def _generate_examples(self, records: Sequence[Record]):
        if self.IMAGE_DTYPE == np.uint16:
            views = _uint16_views(records, self.IMAGE_KEYS)
        else:
            views = ({key: encode_image(record.images[key]) for key in self.IMAGE_KEYS} for record in records)
        for record, images in zip(records, views):
            example: dict[str, Any] = dict(images)
            example["name"] = record.name
            example.update(record.extras)
            yield record.name, example

    # -- helpers --------------------------------------------------------------

    def _layout_help(self) -> str:
        return f"Expected layout and source:\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"

    def _manual_dir(self, dl_manager) -> pathlib.Path:
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: "Manual directory ... does not exist or is empty ..."
            raise FileNotFoundError(f"{self.name}: {e}") from None
        return pathlib.Path(os.fspath(manual_dir))

    def _prefers(self, path: pathlib.Path) -> bool:
        """Among several candidate roots, whether this one is preferred (e.g. its folder name fits)."""
        return True

    def _fallback_root(self, manual_dir: pathlib.Path) -> pathlib.Path | None:
        """Root to use when no folder satisfies `_is_root` (e.g. loose files in manual_dir)."""
        return None

    def _search(self, top: pathlib.Path) -> pathlib.Path | None:
        candidates = [d for d in walk_dirs(top, self.SEARCH_DEPTH) if self._is_root(d)]
        preferred = [d for d in candidates if self._prefers(d)]
        return (preferred or candidates or [None])[0]

    def locate_root(self, manual_dir: pathlib.Path, extract_dir: pathlib.Path | None = None) -> pathlib.Path:
        """The dataset root under `manual_dir`, else among the official archives found there.

        Archives are unpacked (all of them, as some datasets ship train and
        test separately) into `extract_dir/<builder name>/`. Raises
        FileNotFoundError naming manual_dir, the archives looked for and the
        expected layout.
        """
        manual_dir = pathlib.Path(manual_dir)
        root = self._search(manual_dir)
        if root is not None:
            return root
        archives = find_files(manual_dir, self.ARCHIVES, max_depth=2) if self.ARCHIVES else {}
        if archives:
            if extract_dir is None:
                raise FileNotFoundError(f"{self.name}: found archive(s) {sorted(archives)} but nowhere to extract them")
            unpacked = pathlib.Path(extract_dir) / self.name
            for name, archive in archives.items():
                safe_extract(archive, unpacked / name)
            root = self._search(unpacked)
            if root is not None:
                return root
        root = self._fallback_root(manual_dir)
        if root is not None:
            return root
        looked_for = f" nor the archive(s) {list(self.ARCHIVES)}" if self.ARCHIVES else ""
        raise FileNotFoundError(
            f"{self.name}: no dataset folder found under manual_dir {manual_dir} "
            f"(searched {self.SEARCH_DEPTH} levels deep){looked_for}.\n{self._layout_help()}")

    def _check_split(self, split: str, records: Sequence[Record], root: pathlib.Path) -> None:
        counts = collections.Counter(r.name for r in records)
        duplicates = sorted(n for n, c in counts.items() if c > 1)
        if duplicates:
            raise ValueError(f"{self.name}/{split}: duplicate record names {duplicates[:5]} under {root}")
        for record in records:
            missing_keys = set(self.IMAGE_KEYS) - set(record.images)
            if missing_keys:
                raise ValueError(f"{self.name}/{split}: record {record.name} lacks {sorted(missing_keys)}")
        expected = self.EXPECTED_SIZES.get(split)
        if expected is not None and expected != len(records):
            logger.warning("%s/%s: found %d examples under %s; the official split has %d",
                           self.name, split, len(records), root, expected)


def _uint16_views(records: Sequence[Record], keys: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """Each record's views as HxWx3 uint16, in record order: arrays as they are, files decoded here."""
    for record in records:
        yield {key: to_rgb_uint16(image if isinstance(image := record.images[key], np.ndarray)
                                  else load_image(image)) for key in keys}


def instructions(source: str, files: str, layout: str, notes: str = "") -> str:
    """MANUAL_DOWNLOAD_INSTRUCTIONS text in one format for every builder."""
    text = f"Official source: {source}\nFiles: {files}\nPlace the archive or its extracted folder in manual_dir:\n{layout}"
    return text + (f"\n{notes}" if notes else "")
