"""Random-access image sources for the Grain pipelines.

Every source follows Grain's `RandomAccessDataSource` protocol (`__len__`,
`__getitem__`) and returns one record per index: a dict of HWC numpy images
(uint8, or uint16 for 16-bit files) under 'target' and, for paired
data, 'input' (or dual-pixel 'input_left'/'input_right'), plus a 'name' string.
Sources are picklable so they can be used by Grain's multiprocessing workers.
Where cheap, a source also offers `image_hw(index)` (the target's (H, W)
without decoding the pixels), which the eval pipeline uses to batch by size.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")

Record = dict[str, Any]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# IHDR colour type (byte 25 of the file) -> samples per pixel; palette PNGs are never 16-bit.
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def is_png16(header: bytes) -> bool:
    """Whether file bytes (the first 25 suffice) start a PNG of 16 bits per sample."""
    # IHDR is always the first chunk; its bit depth is byte 24 of the file.
    return header.startswith(_PNG_SIGNATURE) and len(header) > 24 and header[24] == 16


def decode_png16(data: bytes) -> np.ndarray:
    """HxWxC uint16 array (C = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) of a 16-bit PNG, at full precision.

    Pillow reads 16-bit colour PNGs as 8 bits (high byte only), so these are
    decoded with OpenCV (libpng). C follows the file's colour type (an alpha
    channel OpenCV derives from a tRNS chunk is dropped). Sample values are
    returned as stored: an sBIT chunk does not rescale them. Raises
    ValueError for a corrupt or non-16-bit PNG.
    """
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 26:
        raise ValueError("not a PNG file")
    if data[24] != 16:
        raise ValueError(f"expected a 16-bit PNG, got {data[24]} bits per sample")
    channels = _PNG_CHANNELS.get(data[25])
    if channels is None:
        raise ValueError(f"corrupt 16-bit PNG: invalid colour type {data[25]}")
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16:
        raise ValueError("corrupt 16-bit PNG: OpenCV could not decode it")
    # OpenCV orders colour BGR(A), expands grey+alpha to BGRA and may add alpha from a tRNS chunk.
    decoded = np.atleast_3d(decoded)
    if channels == 1 and decoded.shape[-1] == 1:
        return decoded
    if channels == 2 and decoded.shape[-1] == 4:
        return np.stack([decoded[..., 0], decoded[..., 3]], axis=-1)
    if channels == 3 and decoded.shape[-1] in (3, 4):
        return cv2.cvtColor(decoded[..., :3], cv2.COLOR_BGR2RGB)
    if channels == 4 and decoded.shape[-1] == 4:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA)
    raise ValueError(f"corrupt 16-bit PNG: {decoded.shape[-1]} channels decoded for colour type {data[25]}")


def _to_rgb(array: np.ndarray) -> np.ndarray:
    """HxWxC (C in 1..4) -> HxWx3: grey replicated, alpha dropped."""
    if array.shape[-1] <= 2:
        return np.repeat(array[..., :1], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def _pil_to_rgb_array(image: Image.Image) -> np.ndarray:
    """RGB HWC array: uint8 for 8-bit images, uint16 for 16-bit greyscale."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow keeps 16-bit greyscale as integer mode 'I'; convert('RGB') would clip it to 8 bits.
        grey = np.asarray(image)
        if grey.max(initial=0) > 65535 or grey.min(initial=0) < 0:
            raise ValueError("32-bit integer images are not supported")
        return _to_rgb(grey.astype(np.uint16)[..., None])
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Loads an image file as an RGB HWC numpy array: uint8, or uint16 for 16-bit files.

    16-bit PNGs (grey, RGB, with or without alpha) are decoded at full
    precision with OpenCV; everything else with PIL. Greyscale and palette
    images are converted to RGB and alpha is dropped. Raises
    FileNotFoundError for a missing file and ValueError naming the path for
    a file that cannot be decoded.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as file:
            header = file.read(32)
            if is_png16(header):
                return _to_rgb(decode_png16(header + file.read()))
        with Image.open(path) as image:
            image.load()
            return _pil_to_rgb_array(image)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e


def read_image_hw(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from e
    return height, width


def _list_images(directory: pathlib.Path, extensions: Sequence[str]) -> dict[str, pathlib.Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"image directory not found: {directory}")
    by_stem: dict[str, pathlib.Path] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix.lower() in extensions:
            if path.stem in by_stem:
                raise ValueError(
                    f"two images with the same stem '{path.stem}' in {directory}: "
                    f"{by_stem[path.stem].name} and {path.name}"
                )
            by_stem[path.stem] = path
    return by_stem


class ImageFolders:
    """Images from several folders matched by file stem, one record key per folder.

    `ImageFolders({'input': 'rain/', 'target': 'gt/'})` yields records
    `{'input': ..., 'target': ..., 'name': stem}` in sorted stem order. Every
    stem must exist in every folder; otherwise a ValueError lists the unpaired
    files. Extensions may differ between folders (a.png pairs with a.jpg).
    """

    def __init__(self, folders: Mapping[str, str | os.PathLike], *,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS):
        if not folders:
            raise ValueError("ImageFolders needs at least one folder")
        if "name" in folders:
            raise ValueError("'name' is reserved for the file stem; use another record key")
        extensions = tuple(e.lower() for e in extensions)
        listings = {key: _list_images(pathlib.Path(d), extensions) for key, d in folders.items()}
        all_stems = set().union(*(set(files) for files in listings.values()))
        problems = []
        for key, files in listings.items():
            missing = sorted(all_stems - set(files))
            if missing:
                shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                problems.append(f"{len(missing)} stem(s) missing from '{key}' folder "
                                f"{folders[key]}: {shown}")
        if problems:
            raise ValueError("unpaired images: " + "; ".join(problems))
        if not all_stems:
            raise ValueError(f"no images with extensions {extensions} in {dict(folders)}")
        self._keys = tuple(folders)
        self._stems = sorted(all_stems)
        self._paths = [{key: str(listings[key][stem]) for key in self._keys} for stem in self._stems]

    def __len__(self) -> int:
        return len(self._stems)

    def __getitem__(self, index: int) -> Record:
        paths = self._paths[index]
        record: Record = {key: load_image(paths[key]) for key in self._keys}
        record["name"] = self._stems[index]
        return record

    def image_hw(self, index: int) -> tuple[int, int]:
        key = "target" if "target" in self._keys else self._keys[0]
        return read_image_hw(self._paths[index][key])

    def paths(self, index: int) -> dict[str, str]:
        return dict(self._paths[index])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(keys={self._keys}, len={len(self)})"


class PairedFolder(ImageFolders):
    """Degraded/clean pairs: `input_dir` and `target_dir` matched by file stem."""

    def __init__(self, input_dir: str | os.PathLike, target_dir: str | os.PathLike, **kwargs):
        super().__init__({"input": input_dir, "target": target_dir}, **kwargs)


class CleanFolder(ImageFolders):
    """Clean images only ('target'); degradations are synthesised on device."""

    def __init__(self, directory: str | os.PathLike, **kwargs):
        super().__init__({"target": directory}, **kwargs)


def _motorcycle(view: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data
        return data.stereo_motorcycle()[view]
    return load


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data
        return getattr(data, name)()
    return load


def _sklearn(filename: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_image
        return load_sample_image(filename)
    return load


# name -> (split group, loader). Photos sharing a group (the two views of one
# stereo pair) always land in the same split so held-out scenes never leak.
# `skimage.data.cat` is the same photo as `chelsea`, so only chelsea is listed.
_COLOUR_PHOTOS: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
    "astronaut": ("astronaut", _skimage("astronaut")),
    "chelsea": ("chelsea", _skimage("chelsea")),
    "coffee": ("coffee", _skimage("coffee")),
    "rocket": ("rocket", _skimage("rocket")),
    "immunohistochemistry": ("immunohistochemistry", _skimage("immunohistochemistry")),
    "hubble_deep_field": ("hubble_deep_field", _skimage("hubble_deep_field")),
    "retina": ("retina", _skimage("retina")),
    "motorcycle_left": ("motorcycle", _motorcycle(0)),
    "motorcycle_right": ("motorcycle", _motorcycle(1)),
    "china": ("china", _sklearn("china.jpg")),
    "flower": ("flower", _sklearn("flower.jpg")),
}
_GREY_PHOTOS = ("camera", "coins", "moon", "clock", "page", "text", "grass", "gravel", "brick", "cell")


def _split_rank(group: str) -> str:
    # A hash of the name orders groups independently of which photos exist offline.
    return hashlib.sha256(group.encode()).hexdigest()


class BundledPhotos:
    """The photos shipped inside scikit-image and scikit-learn, as clean 'target' records.

    Only photos that load offline in the installed versions are used (scikit-image
    fetches some with pooch; those are skipped). The split is fixed: photo groups
    are ranked by a hash of their name and the first `heldout` groups form the
    'heldout' split, the rest 'train', so a held-out photo is never in train.
    With `include_grayscale=True` scikit-image's greyscale photos are added as RGB.
    """

    def __init__(self, split: str = "train", heldout: int = 3, *, include_grayscale: bool = False):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        catalogue = dict(_COLOUR_PHOTOS)
        if include_grayscale:
            catalogue.update({name: (name, _skimage(name)) for name in _GREY_PHOTOS})
        loaded = {name: self._try_load(loader) for name, (_, loader) in catalogue.items()}
        available = {name: catalogue[name] for name, image in loaded.items() if image is not None}
        groups = sorted({group for group, _ in available.values()}, key=_split_rank)
        if not 0 < heldout < len(groups):
            raise ValueError(f"heldout must be between 1 and {len(groups) - 1} "
                             f"(there are {len(groups)} photo groups), got {heldout}")
        chosen = set(groups[:heldout]) if split == "heldout" else set(groups[heldout:])
        self.split = split
        self.names = sorted(name for name, (group, _) in available.items() if group in chosen)
        self._loaders = {name: available[name][1] for name in self.names}
        self._cache: dict[str, np.ndarray] = {}
        for name in self.names:
            self._cache[name] = self._as_rgb(name, loaded[name])

    @staticmethod
    def _try_load(loader: Callable[[], np.ndarray]) -> np.ndarray | None:
        try:
            return np.asarray(loader())
        except (ImportError, OSError, ValueError):  # pooch missing / file not bundled
            return None

    @staticmethod
    def _as_rgb(name: str, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.dtype != np.uint8 or image.shape[-1] != 3:
            raise ValueError(f"bundled photo '{name}' is not an 8-bit RGB image: "
                             f"{image.dtype} {image.shape}")
        return image

    def _photo(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._as_rgb(name, np.asarray(self._loaders[name]()))
        return self._cache[name]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Record:
        name = self.names[index]
        return {"target": self._photo(name), "name": name}

    def image_hw(self, index: int) -> tuple[int, int]:
        return tuple(self._photo(self.names[index]).shape[:2])

    def __getstate__(self):
        # Workers reload photos themselves rather than receive them pickled.
        state = dict(self.__dict__)
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        return f"BundledPhotos(split={self.split!r}, names={self.names})"


class TfdsSource:
    """Records from a prepared TFDS dataset through `tfds.data_source` (no TensorFlow).

    `features` selects record keys: None keeps every feature; a sequence keeps
    those; a mapping `{record_key: tfds_feature}` selects and renames. Byte
    strings (e.g. 'name') are decoded to str.
    """

    def __init__(self, name: str, split: str, data_dir: str | os.PathLike | None = None, *,
                 features: Sequence[str] | Mapping[str, str] | None = None):
        import tensorflow_datasets as tfds

        import data_pipelines.builders  # noqa: F401  (registers jaxir's builders and their configs with tfds)

        data_dir = None if data_dir is None else os.path.expanduser(os.fspath(data_dir))
        try:
            self._source = tfds.data_source(name, split=split, data_dir=data_dir)
        except Exception as e:  # tfds raises several types for "not prepared"/"unknown split"
            raise FileNotFoundError(
                f"cannot open TFDS dataset '{name}' split '{split}' in data_dir {data_dir!r}: {e}"
            ) from e
        if features is None:
            self._features = None
        elif isinstance(features, Mapping):
            self._features = dict(features)
        else:
            self._features = {key: key for key in features}
        if self._features is not None and len(self._source):
            missing = sorted(set(self._features.values()) - set(self._source[0]))
            if missing:
                raise ValueError(f"TFDS dataset '{name}' has no feature(s) {missing}; "
                                 f"it has {sorted(self._source[0])}")
        self.name, self.split = name, split

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Record:
        raw = self._source[index]
        pairs = raw.items() if self._features is None else (
            (key, raw[feature]) for key, feature in self._features.items())
        record: Record = {}
        for key, value in pairs:
            if isinstance(value, bytes):
                value = value.decode("utf-8")
            elif isinstance(value, np.ndarray) and value.dtype.kind in "SO" and value.ndim == 0:
                value = value.item().decode("utf-8") if isinstance(value.item(), bytes) else value.item()
            record[key] = value
        return record

    def __repr__(self) -> str:
        return f"TfdsSource({self.name!r}, split={self.split!r}, len={len(self)})"


class ConcatSource:
    """Several sources read as one (e.g. BSD400 + WED as a single denoising set)."""

    def __init__(self, sources: Sequence[Any]):
        if not sources:
            raise ValueError("ConcatSource needs at least one source")
        self._sources = list(sources)
        self._offsets = np.cumsum([0] + [len(s) for s in self._sources])

    def _locate(self, index: int) -> tuple[Any, int]:
        if not 0 <= index < self._offsets[-1]:
            raise IndexError(f"index {index} out of range for ConcatSource of length {len(self)}")
        part = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self._sources[part], index - int(self._offsets[part])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __getitem__(self, index: int) -> Record:
        source, local = self._locate(index)
        return source[local]

    def image_hw(self, index: int) -> tuple[int, int]:
        source, local = self._locate(index)
        return source_image_hw(source, local)

    def __repr__(self) -> str:
        return f"ConcatSource({self._sources})"


def source_image_hw(source: Any, index: int) -> tuple[int, int]:
    """(H, W) of a record's target, from the source's `image_hw` when it has one."""
    if hasattr(source, "image_hw"):
        return tuple(int(v) for v in source.image_hw(index))
    record = source[index]
    if "target" not in record:
        raise ValueError(f"record {index} of {source!r} has no 'target' image")
    return tuple(int(v) for v in np.shape(record["target"])[:2])
