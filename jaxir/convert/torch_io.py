"""Read official checkpoints into `{name: numpy array}` without importing torch.

PyTorch files (torch >= 1.6 zip format) are unpickled with an allow-list: every
global the pickle names is looked up in `_ALLOWED_GLOBALS`, which maps the few torch
functions and classes needed to rebuild tensors onto numpy code of our own. Any
other global (`os.system`, `builtins.eval`, a model class, ...) raises
`UnsafeCheckpointError` before anything is called. safetensors and .npz files are
read through their own libraries.

Checkpoints often wrap the state dict (`{'params': sd}`, `{'state_dict': sd}`,
`{'model': sd, 'optimizer': ...}`); `load_state_dict` finds it, or takes `key=`.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import pathlib
import pickle
import pickletools
import zipfile
from collections.abc import Mapping
from typing import Any, Callable

import ml_dtypes  # registers bfloat16/float8 with numpy (a jax dependency, always present)
import numpy as np

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "load_state_dict",
    "load_checkpoint",
    "select_state_dict",
]


class CheckpointError(ValueError):
    """A checkpoint could not be read or its state dict could not be identified."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint's pickle names a global outside the tensor allow-list."""

    def __init__(self, message: str, global_name: str | None = None):
        super().__init__(message)
        self.global_name = global_name


# torch storage class -> element dtype. `UntypedStorage` holds raw bytes (torch >= 2
# uses it for dtypes without a typed storage; `_rebuild_tensor_v3` then names the dtype).
_STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype(np.float64),
    "FloatStorage": np.dtype(np.float32),
    "HalfStorage": np.dtype(np.float16),
    "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype(np.int64),
    "IntStorage": np.dtype(np.int32),
    "ShortStorage": np.dtype(np.int16),
    "CharStorage": np.dtype(np.int8),
    "ByteStorage": np.dtype(np.uint8),
    "BoolStorage": np.dtype(np.bool_),
    "ComplexFloatStorage": np.dtype(np.complex64),
    "ComplexDoubleStorage": np.dtype(np.complex128),
    "UntypedStorage": np.dtype(np.uint8),
}

# `torch.<name>` dtype globals (their pickled form is the canonical name).
_TORCH_DTYPES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64),
    "float32": np.dtype(np.float32),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "int64": np.dtype(np.int64),
    "int32": np.dtype(np.int32),
    "int16": np.dtype(np.int16),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64),
    "complex128": np.dtype(np.complex128),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
}

# Dtypes numpy cannot compute with natively become float32 (exact: they are subsets).
_WIDEN_TO_FLOAT32 = {np.dtype(ml_dtypes.bfloat16)} | {
    v for k, v in _TORCH_DTYPES.items() if k.startswith("float8")
}

_TORCH_ZIP_HINT = "re-save it with a current torch: torch.save(torch.load(old_path), new_path) in an environment you trust"


# --------------------------------------------------------------------------------------
# Objects the unpickler hands to the pickle program. Fresh ones per use, with
# __slots__ and a refusing `__setstate__`, so a BUILD opcode cannot alter them.


class _Inert:
    __slots__ = ()

    def __setstate__(self, state):
        raise UnsafeCheckpointError(f"pickle tried to set state on {self!r}")


class _Reconstructor(_Inert):
    """An allowed global: calls our own numpy-building function."""

    __slots__ = ("name", "_fn")

    def __init__(self, name: str, fn: Callable):
        self.name = name
        self._fn = fn

    def __call__(self, *args):
        return self._fn(*args)

    def __repr__(self):
        return f"<allowed global {self.name}>"


class _Marker(_Inert):
    """A non-callable global (storage class, torch dtype, tensor class)."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str, dtype: np.dtype | None = None):
        self.name = name
        self.dtype = dtype

    def __repr__(self):
        return f"<{self.name}>"


class _Storage(_Inert):
    """Raw bytes of one `data/<key>` record, seen with a storage dtype."""

    __slots__ = ("key", "data", "dtype", "big_endian")

    def __init__(self, key: str, data: bytes, dtype: np.dtype, big_endian: bool):
        self.key = key
        self.data = data
        self.dtype = dtype
        self.big_endian = big_endian

    def __repr__(self):
        return f"<storage {self.key} ({len(self.data)} bytes)>"


class _NumpyDtype(_Inert):
    """`numpy.dtype(...)` for numpy scalars stored next to the weights (e.g. a best PSNR).

    numpy pickles a dtype as REDUCE then BUILD; only the byte order is taken from the
    BUILD state, so a pickle cannot create structured or object dtypes.
    """

    __slots__ = ("value",)

    def __init__(self, value: np.dtype):
        self.value = value

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "=")):
            raise UnsafeCheckpointError(f"unexpected numpy dtype state {state!r:.80}")
        self.value = self.value.newbyteorder(state[1])

    def __repr__(self):
        return f"<numpy dtype {self.value}>"


# --------------------------------------------------------------------------------------
# Our replacements for the allowed globals.


def _int_tuple(value, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise CheckpointError(f"tensor {what} must be a tuple of non-negative ints, got {value!r:.80}")
    return tuple(value)


def _tensor_from_storage(storage, storage_offset, size, stride, dtype: np.dtype) -> np.ndarray:
    """Materialise `storage[offset:]` seen through (size, stride), in elements of `dtype`.

    Returns an owned C-contiguous copy: views that share a storage come back as
    independent arrays with the values torch would show.
    """
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage must come from the archive, got {storage!r:.80}")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    (storage_offset,) = _int_tuple((storage_offset,), "storage offset")
    if len(size) != len(stride):
        raise CheckpointError(f"tensor size {size} and stride {stride} differ in length")
    output_dtype = np.dtype(np.float32) if dtype in _WIDEN_TO_FLOAT32 else dtype
    if 0 in size:
        return np.zeros(size, dtype=output_dtype)
    itemsize = dtype.itemsize
    # numpy checks that every addressed element lies inside the buffer.
    try:
        view = np.ndarray(
            size, dtype=dtype, buffer=storage.data, offset=storage_offset * itemsize,
            strides=tuple(s * itemsize for s in stride),
        )
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"tensor (size {size}, stride {stride}, offset {storage_offset}) does not fit "
            f"storage {storage.key} of {len(storage.data)} bytes: {err}"
        ) from None
    if storage.big_endian:
        view = view.byteswap()  # a native-order copy (complex: per component)
    return view.astype(output_dtype, order="C", copy=True)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    _check_hooks(backward_hooks)
    if not isinstance(storage, _Storage):
        raise CheckpointError(f"tensor storage must come from the archive, got {storage!r:.80}")
    return _tensor_from_storage(storage, storage_offset, size, stride, storage.dtype)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None):
    # torch >= 2 uses this for dtypes without a typed storage class (uint16, float8...):
    # the storage is untyped bytes and `dtype` says how to read them.
    _check_hooks(backward_hooks)
    if not (isinstance(dtype, _Marker) and dtype.dtype is not None and not dtype.name.endswith("Storage")):
        raise CheckpointError(f"_rebuild_tensor_v3 needs a torch dtype, got {dtype!r:.80}")
    return _tensor_from_storage(storage, storage_offset, size, stride, dtype.dtype)


def _check_hooks(backward_hooks):
    if backward_hooks is not None and not (isinstance(backward_hooks, Mapping) and not backward_hooks):
        raise CheckpointError("tensor has backward hooks; state dicts never do")


def _rebuild_parameter(data, requires_grad, backward_hooks):
    _check_hooks(backward_hooks)
    if not isinstance(data, np.ndarray):
        raise CheckpointError(f"Parameter data must be a tensor, got {data!r:.80}")
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    # `state` holds Python attributes set on the Parameter; they are not weights.
    return _rebuild_parameter(data, requires_grad, backward_hooks)


_TENSOR_CLASSES = ("torch.Tensor", "torch.nn.parameter.Parameter")
_TENSOR_REBUILDERS = (
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
)


def _rebuild_from_type_v2(func, new_type, args, state):
    # Tensors carrying Python attributes (or Parameter subclasses) are wrapped in this.
    if not (isinstance(func, _Reconstructor) and func.name in _TENSOR_REBUILDERS):
        raise UnsafeCheckpointError(f"_rebuild_from_type_v2 called with {func!r:.80}")
    if not (isinstance(new_type, _Marker) and new_type.name in _TENSOR_CLASSES):
        raise UnsafeCheckpointError(f"_rebuild_from_type_v2 asked for tensor class {new_type!r:.80}")
    if not isinstance(args, tuple):
        raise CheckpointError(f"_rebuild_from_type_v2 arguments must be a tuple, got {args!r:.80}")
    return func(*args)


def _ordered_dict(*args):
    if args and not (len(args) == 1 and isinstance(args[0], (list, tuple, Mapping))):
        raise CheckpointError(f"unexpected OrderedDict arguments {args!r:.80}")
    return collections.OrderedDict(*args)


def _container(kind: type) -> Callable:
    def build(*args):
        if args and not (len(args) == 1 and isinstance(args[0], (list, tuple, set, frozenset, bytes))):
            raise CheckpointError(f"unexpected {kind.__name__} arguments {args!r:.80}")
        return kind(*args)

    return build


def _complex(real=0.0, imag=0.0):
    if not all(isinstance(v, (int, float)) for v in (real, imag)):
        raise CheckpointError(f"unexpected complex arguments {(real, imag)!r:.80}")
    return complex(real, imag)


def _codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles store `bytes` as `_codecs.encode(str, 'latin1')`.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CheckpointError(f"unexpected _codecs.encode arguments {(text, encoding)!r:.80}")
    return text.encode(encoding)


def _torch_size(dims=()):
    return _int_tuple(dims, "size")


def _torch_device(*args):
    if not all(isinstance(a, (str, int)) for a in args):
        raise CheckpointError(f"unexpected torch.device arguments {args!r:.80}")
    return ":".join(str(a) for a in args)


def _numpy_dtype(spec, align=False, copy=True):
    try:
        dtype = np.dtype(spec) if isinstance(spec, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise UnsafeCheckpointError(f"numpy dtype {spec!r:.40} is not a plain numeric type")
    return _NumpyDtype(dtype)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes) or len(data) != dtype.value.itemsize:
        raise CheckpointError(f"unexpected numpy scalar arguments {(dtype, data)!r:.80}")
    return np.frombuffer(data, dtype=dtype.value)[0]


def _build_allowed_globals() -> dict[str, Callable[[str], Any]]:
    """Qualified name -> factory of the object the unpickler returns for it."""
    table: dict[str, Callable[[str], Any]] = {}

    def callable_(name: str, fn: Callable):
        table[name] = lambda n: _Reconstructor(n, fn)

    def marker(name: str, dtype: np.dtype | None = None):
        table[name] = lambda n: _Marker(n, dtype)

    callable_("torch._utils._rebuild_tensor_v2", _rebuild_tensor_v2)
    callable_("torch._utils._rebuild_tensor_v3", _rebuild_tensor_v3)
    callable_("torch._utils._rebuild_parameter", _rebuild_parameter)
    callable_("torch._utils._rebuild_parameter_with_state", _rebuild_parameter_with_state)
    callable_("torch._tensor._rebuild_from_type_v2", _rebuild_from_type_v2)
    callable_("torch.Size", _torch_size)
    callable_("torch.device", _torch_device)
    callable_("collections.OrderedDict", _ordered_dict)
    callable_("builtins.set", _container(set))
    callable_("builtins.frozenset", _container(frozenset))
    callable_("builtins.bytearray", _container(bytearray))
    callable_("builtins.complex", _complex)
    callable_("_codecs.encode", _codecs_encode)
    callable_("numpy.dtype", _numpy_dtype)
    callable_("numpy.core.multiarray.scalar", _numpy_scalar)  # numpy < 2
    callable_("numpy._core.multiarray.scalar", _numpy_scalar)
    for name, dtype in _STORAGE_DTYPES.items():
        marker(f"torch.{name}", dtype)
    marker("torch.storage.UntypedStorage", _STORAGE_DTYPES["UntypedStorage"])
    for name, dtype in _TORCH_DTYPES.items():
        marker(f"torch.{name}", dtype)
    for name in _TENSOR_CLASSES:
        marker(name)
    return table


_ALLOWED_GLOBALS = _build_allowed_globals()


# --------------------------------------------------------------------------------------
# The PyTorch zip archive.


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, read_record: Callable[[str], bytes], big_endian: bool):
        super().__init__(io.BytesIO(data), encoding="utf-8")
        self._read_record = read_record
        self._big_endian = big_endian
        self._storages: dict[str, bytes] = {}

    def find_class(self, module: str, name: str):
        # Protocol-2 pickles (torch's default) spell builtins the Python 2 way (`__builtin__.set`);
        # translate as pickle.Unpickler.find_class does before looking the name up.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        qualified = f"{module}.{name}"
        factory = _ALLOWED_GLOBALS.get(qualified)
        if factory is None:
            raise UnsafeCheckpointError(
                f"refused to load global '{qualified}' from the checkpoint's pickle "
                "(only what rebuilds tensors and plain containers is allowed; nothing was executed). "
                "If this file stores a whole model object or custom classes, re-save just "
                "`model.state_dict()` from a trusted environment.",
                global_name=qualified,
            )
        return factory(qualified)

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid
        if not (isinstance(storage_type, _Marker) and storage_type.name.endswith("Storage")):
            raise UnsafeCheckpointError(f"persistent id names {storage_type!r:.80}, not a storage class")
        if not isinstance(key, str) or not isinstance(numel, int):
            raise CheckpointError(f"malformed storage reference {pid!r:.80}")
        dtype = storage_type.dtype
        if key not in self._storages:
            self._storages[key] = self._read_record(f"data/{key}")
        data = self._storages[key]
        if len(data) < numel * dtype.itemsize:
            raise CheckpointError(
                f"storage {key} holds {len(data)} bytes, fewer than {numel} x {dtype}"
            )
        return _Storage(key, data, dtype, self._big_endian)


def _refuse_extension_opcodes(data: bytes) -> None:
    # EXT opcodes resolve objects through copyreg's process-wide cache, bypassing find_class.
    for opcode, _arg, _pos in pickletools.genops(data):
        if opcode.name.startswith("EXT"):
            raise UnsafeCheckpointError(f"pickle uses extension opcode {opcode.name}; refused")


def _load_torch_zip(path: pathlib.Path) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise CheckpointError(_not_zip_message(path)) from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
        if len(pickles) != 1:
            raise CheckpointError(
                f"{path}: not a PyTorch checkpoint (a zip archive without a single top-level data.pkl); "
                f"entries: {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}"
            )
        prefix = pickles[0][: -len("data.pkl")]
        # A TorchScript archive's data.pkl names `__torch__` classes; say what it is instead.
        if f"{prefix}constants.pkl" in names:
            raise CheckpointError(
                f"{path}: this is a TorchScript archive (torch.jit.save), not a state dict; "
                "load it with torch and save `model.state_dict()` instead"
            )
        byteorder = archive.read(f"{prefix}byteorder").decode().strip() if f"{prefix}byteorder" in names else "little"
        if byteorder not in ("little", "big"):
            raise CheckpointError(f"{path}: unknown byteorder record {byteorder!r}")

        def read_record(name: str) -> bytes:
            try:
                return archive.read(prefix + name)
            except KeyError:
                raise CheckpointError(f"the pickle refers to missing record {prefix + name}") from None

        data = archive.read(pickles[0])
        try:
            _refuse_extension_opcodes(data)
            return _RestrictedUnpickler(data, read_record, byteorder == "big").load()
        except UnsafeCheckpointError as err:
            raise UnsafeCheckpointError(f"{path}: {err}", err.global_name) from None
        except CheckpointError as err:
            raise CheckpointError(f"{path}: {err}") from None
        except Exception as err:  # malformed pickle: report it as a bad file, never run more of it
            raise CheckpointError(f"{path}: malformed checkpoint pickle ({type(err).__name__}: {err})") from None


# Legacy torch.save (before 1.6) starts its pickle stream with this magic number.
_LEGACY_TORCH_HEADER = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _not_zip_message(path: pathlib.Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_LEGACY_TORCH_HEADER):
        return f"{path}: a legacy (pre-1.6, non-zip) PyTorch file, which cannot be read safely; {_TORCH_ZIP_HINT}"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return f"{path}: a tar-format PyTorch file (torch < 0.4); {_TORCH_ZIP_HINT}"
    if head[:1] == b"\x80":
        return f"{path}: a plain pickle, not a PyTorch zip archive; it cannot be read safely; {_TORCH_ZIP_HINT}"
    if head.startswith(b"PK"):
        return f"{path}: a damaged or truncated zip archive"
    return f"{path}: not a recognised checkpoint (expected a PyTorch zip archive, .safetensors or .npz)"


# --------------------------------------------------------------------------------------
# Flat formats.


def _load_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return {name: _to_output(f.get_tensor(name)) for name in f.keys()}
    except (SafetensorError, OSError, TypeError) as err:
        raise CheckpointError(f"{path}: unreadable safetensors file ({err})") from None


def _load_npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    # np.load would try a non-zip file as a pickle; reject it first.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as err:  # object arrays need pickle: refused
        raise CheckpointError(f"{path}: .npz holds arrays that need pickle to load; refused ({err})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise CheckpointError(f"{path}: not a readable .npz file ({err})") from None


def _to_output(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype in _WIDEN_TO_FLOAT32 else array


def _strip_prefix(flat: Mapping[str, np.ndarray], prefix: str, path: pathlib.Path) -> dict[str, np.ndarray]:
    prefix = prefix.rstrip("/.")
    for sep in ("/", "."):
        picked = {k[len(prefix) + 1:]: v for k, v in flat.items() if k.startswith(prefix + sep)}
        if picked:
            return picked
    raise CheckpointError(f"{path}: no entries under prefix '{prefix}'; groups: {', '.join(_groups(flat)) or '(none)'}")


def _groups(flat: Mapping[str, Any]) -> list[str]:
    return sorted({k.split("/", 1)[0] + "/" for k in flat if "/" in k})


def _select_flat(flat: dict[str, np.ndarray], key: str | None, path: pathlib.Path) -> dict[str, np.ndarray]:
    if key is not None:
        return _strip_prefix(flat, key, path)
    groups = _groups(flat)
    # Golden parity files keep the state dict under `sd/`, next to inputs, outputs and `aux/`.
    if "sd/" in groups:
        return _strip_prefix(flat, "sd/", path)
    if len(groups) == 1:
        return _strip_prefix(flat, groups[0], path)
    if len(groups) > 1:
        raise CheckpointError(
            f"{path}: several groups of arrays ({', '.join(groups)}); pass key= to choose one"
        )
    return flat


# --------------------------------------------------------------------------------------
# Public API.


def load_checkpoint(path: str | pathlib.Path) -> Any:
    """The whole content of a checkpoint, tensors as numpy arrays (no wrapper resolution).

    `.safetensors` and `.npz` give flat dicts; anything else is read as a PyTorch zip
    archive (`.pth`, `.pt`, `.ckpt`, `.pkl`, `.bin`, ...).
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    try:
        if path.suffix == ".safetensors":
            return _load_safetensors(path)
        if path.suffix == ".npz":
            return _load_npz(path)
        return _load_torch_zip(path)
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err})") from None


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping) and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, np.ndarray) for v in obj.values())
    )


def _find_state_dicts(obj: Any, where: tuple[str, ...] = (), depth: int = 3) -> list[tuple[tuple[str, ...], Mapping]]:
    if _is_state_dict(obj):
        return [(where, obj)]
    if not isinstance(obj, Mapping) or depth == 0:
        return []
    found = []
    for name, value in obj.items():
        # Only string keys: optimizer state is keyed by parameter index and must not match.
        if isinstance(name, str):
            found += _find_state_dicts(value, (*where, name), depth - 1)
    return found


def _describe_keys(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return f"(the checkpoint holds a {type(obj).__name__}, not a dict)"
    return ", ".join(f"{k!r}: {_kind(v)}" for k, v in list(obj.items())[:30])


def _kind(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array{value.shape}"
    if isinstance(value, Mapping):
        return f"dict({len(value)})"
    return type(value).__name__


def _strip_data_parallel(state_dict: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # nn.DataParallel / DistributedDataParallel prefix every key with `module.`.
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def select_state_dict(checkpoint: Any, key: str | None = None, source: str = "checkpoint") -> dict[str, np.ndarray]:
    """Find the state dict inside an unpickled checkpoint.

    `key` names the entry holding it (nested entries joined by '/', e.g.
    'model/state_dict'); without it the only `{str: array}` dict within three levels
    is taken. A `module.` prefix on every key is removed.
    """
    if key is not None:
        node = checkpoint
        parts = [key] if isinstance(checkpoint, Mapping) and key in checkpoint else key.split("/")
        for part in parts:
            if not isinstance(node, Mapping) or part not in node:
                raise CheckpointError(
                    f"{source}: no entry '{key}'; top-level keys: {_describe_keys(checkpoint)}"
                )
            node = node[part]
        if not _is_state_dict(node):
            raise CheckpointError(
                f"{source}: entry '{key}' is not a dict of tensors; it holds {_describe_keys(node)}"
            )
        return _strip_data_parallel(node)

    found = _find_state_dicts(checkpoint)
    if len(found) == 1:
        return _strip_data_parallel(found[0][1])
    if not found:
        raise CheckpointError(
            f"{source}: found no dict of tensors; top-level keys: {_describe_keys(checkpoint)}"
        )
    paths = ", ".join("'" + "/".join(p) + "'" for p, _ in found)
    raise CheckpointError(
        f"{source}: several state dicts ({paths}); pass key= to choose one "
        f"(top-level keys: {_describe_keys(checkpoint)})"
    )


def load_state_dict(path: str | pathlib.Path, key: str | None = None) -> dict[str, np.ndarray]:
    """Read a checkpoint's state dict as `{name: numpy array}` without importing torch.

    Formats: PyTorch zip archives (torch >= 1.6; `.pth`, `.pt`, `.ckpt`, ...), read with
    an allow-list unpickler (anything else raises UnsafeCheckpointError, nothing is
    executed); `.safetensors`; `.npz`. bfloat16/float8 tensors become float32, other
    dtypes are kept. Wrappers such as {'params': sd}, {'state_dict': sd}, {'model': sd}
    are resolved automatically when unambiguous, else `key=` picks the entry
    ('params_ema', 'model/state_dict'); for flat formats `key` is a name prefix
    (`sd` selects 'sd/...' entries; without it `sd/` is preferred, as in golden files,
    else the only group). A DataParallel `module.` prefix is removed.
    """
    path = pathlib.Path(path)
    checkpoint = load_checkpoint(path)
    if path.suffix in (".safetensors", ".npz"):
        return _strip_data_parallel(_select_flat(checkpoint, key, path))
    return select_state_dict(checkpoint, key, source=str(path))
