"""Read a PyTorch state dict saved in the legacy format, without torch and without running its code.

A `.pth` file written by `torch.save(model.state_dict(), path)` before PyTorch 1.6 (or later with
`_use_new_zipfile_serialization=False`) is not one pickle but five, then raw bytes
(`torch/serialization.py`, `_legacy_save` and `_legacy_load`; checked on a real file with
`pickletools.dis`, which only lists opcodes and executes nothing):

1. the magic number `0x1950a86a20f9469cfc6c` (a pickled integer);
2. the protocol version, `1001`;
3. system information: `{"protocol_version": 1001, "little_endian": True, "type_sizes": {...}}`;
4. the state dict itself: `collections.OrderedDict` of parameter name -> tensor, each tensor pickled
   as a call `torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
   requires_grad, backward_hooks)`. A storage is not inside the pickle but a *persistent id*
   `("storage", torch.FloatStorage, key, location, numel, view_metadata)`;
5. the list of storage keys, in the order their bytes follow;

then, for each key of that list, an 8-byte little-endian element count and the storage's raw
little-endian elements (`numel * itemsize` bytes). A tensor is a strided view of its storage:
element `[i, j, ...]` is `storage[offset + i * stride[0] + j * stride[1] + ...]`.

**Security rule.** Unpickling runs code: a pickle may call any importable function
(`os.system`, `builtins.eval`, `subprocess.Popen`) through its GLOBAL/STACK_GLOBAL + REDUCE opcodes
(Python docs, `pickle`, "Restricting Globals"; the reason torch >= 2.6 defaults to
`torch.load(weights_only=True)`). This reader never uses torch and never imports a name from the
file: its `pickle.Unpickler.find_class` maps the few names a tensor state dict needs to inert
stand-ins defined here (`collections.OrderedDict` to itself, `torch._utils._rebuild_tensor_v2` /
`_rebuild_tensor` / `_rebuild_parameter` to functions that only record shape, stride and offset,
`torch.<Type>Storage` to a dtype) and raises `WeightsFileError` naming any other global. The first
three pickles and the key list may not name any global at all. Nothing else in a pickle can reach
code: REDUCE and BUILD only call what `find_class` or `persistent_load` returned.

Element types read: float32, float64, float16, int64, int32, int16, int8, uint8 and bool storages;
bfloat16 and complex storages raise `WeightsFileError` ("unsupported dtype"). The newer zip format
(torch >= 1.6 default) is recognised and refused with a message saying so.

Usage:

    state_dict = load_state_dict("efficientnet-lite0-57934424.pth")   # {name: np.ndarray}
    state_dict["_conv_stem.weight"].shape                             # (32, 3, 3, 3), float32
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C   # first pickle of every legacy torch file
PROTOCOL_VERSION = 1001                 # second pickle
_ZIP_SIGNATURE = b"PK\x03\x04"          # torch >= 1.6 files are zip archives
_TAR_SIGNATURE = (257, b"ustar")        # torch < 0.1.10 files were tar archives

# torch storage class -> little-endian element type. Storage classes torch can write but NumPy
# cannot hold exactly are accepted by name only to say "unsupported dtype" instead of "forbidden".
_STORAGE_DTYPES: dict[str, np.dtype | None] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "BFloat16Storage": None,
    "ComplexFloatStorage": None,
    "ComplexDoubleStorage": None,
    "QInt8Storage": None,
    "QUInt8Storage": None,
    "QInt32Storage": None,
}


class WeightsFileError(ValueError):
    """A weights file that cannot be read as a legacy PyTorch state dict, and why.

    Attributes:
        path: the file (`pathlib.Path`).
        reason: what is wrong, e.g. "truncated: ...", "refused global 'os.system' ...".
        refused_global: for a forbidden name, `"module.name"` (e.g. "os.system"); else None.
    """

    def __init__(self, path: str | os.PathLike, reason: str, refused_global: str | None = None):
        self.path = Path(path)
        self.reason = reason
        self.refused_global = refused_global
        super().__init__(f"cannot read {self.path} as a legacy PyTorch state dict: {reason}")

    def __reduce__(self):  # picklable (multiprocessing)
        return (type(self), (self.path, self.reason, self.refused_global))


# --- inert stand-ins for the names a state dict pickle uses --------------------------------------
class _FileFormatError(Exception):
    """Raised inside unpickling; `load_state_dict` adds the path and re-raises `WeightsFileError`."""

    def __init__(self, reason: str, refused_global: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.refused_global = refused_global


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageType:
    """Stand-in for a class such as `torch.FloatStorage`: only its name and element type."""

    name: str
    dtype: np.dtype | None


@dataclasses.dataclass(frozen=True, slots=True)
class _StorageRef:
    """A storage named by a persistent id; its bytes are read after the pickles.

    `view` is None for a whole storage, else `(offset, numel)` inside the storage `key`.
    """

    key: str
    dtype: np.dtype
    numel: int
    view: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class _TensorRef:
    """What `_rebuild_tensor_v2` would build: a strided view of a storage (units: elements)."""

    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rebuild_tensor(storage, storage_offset, size, stride) -> _TensorRef:
    """Stand-in for `torch._utils._rebuild_tensor`: checks the arguments, records the view."""
    if not isinstance(storage, _StorageRef):
        raise _FileFormatError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    if not (_is_int(storage_offset) and isinstance(size, tuple) and isinstance(stride, tuple)
            and len(size) == len(stride) and all(map(_is_int, size + stride))):
        raise _FileFormatError(f"a tensor has a malformed offset/size/stride "
                               f"({storage_offset!r}, {size!r}, {stride!r})")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> _TensorRef:
    """Stand-in for `torch._utils._rebuild_tensor_v2` (gradient flags and hooks are ignored)."""
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> _TensorRef:
    """Stand-in for `torch._utils._rebuild_parameter`: an `nn.Parameter` is its tensor here."""
    if not isinstance(data, _TensorRef):
        raise _FileFormatError(f"a parameter wraps a {type(data).__name__}, not a tensor")
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data (numbers, strings, tuples, lists, dicts); refuses every global."""

    allowed: dict = {}

    def find_class(self, module: str, name: str):
        if (module, name) in self.allowed:
            return self.allowed[(module, name)]
        raise _FileFormatError(
            f"refused global '{module}.{name}': a weights file may only name "
            f"{self._allowed_names()}; this file tries to import something else, which can run "
            f"code (do not open it with torch.load(..., weights_only=False))",
            refused_global=f"{module}.{name}")

    def _allowed_names(self) -> str:
        return ", ".join(f"{m}.{n}" for m, n in self.allowed) or "no globals here"

    def persistent_load(self, pid):
        raise _FileFormatError(f"unexpected persistent id {pid!r} outside the state dict")


class _StateDictUnpickler(_DataOnlyUnpickler):
    """Unpickles the state dict pickle: tensors become `_TensorRef`s, storages `_StorageRef`s."""

    allowed = _ALLOWED_GLOBALS

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}   # root storages by key, in order of use

    def _allowed_names(self) -> str:
        return ", ".join([f"{m}.{n}" for m, n in self.allowed] + ["torch.<Type>Storage"])

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            dtype = _STORAGE_DTYPES[name]
            if dtype is None:
                raise _FileFormatError(
                    f"unsupported dtype: torch.{name} (this reader handles "
                    f"{', '.join(n for n, d in _STORAGE_DTYPES.items() if d is not None)})")
            return _StorageType(name, dtype)
        return super().find_class(module, name)

    def persistent_load(self, pid) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise _FileFormatError(f"malformed storage reference {pid!r}")
        _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, _StorageType):
            raise _FileFormatError(f"storage {key!r} has type {storage_type!r}, not a storage class")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise _FileFormatError(f"malformed storage reference {pid!r}")
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, numel))
        if (root.dtype, root.numel) != (storage_type.dtype, numel):
            raise _FileFormatError(f"storage {key!r} is referenced with two different types or sizes")
        if view_metadata is None:
            return root
        if not (isinstance(view_metadata, tuple) and len(view_metadata) == 3
                and all(map(_is_int, view_metadata[1:]))):
            raise _FileFormatError(f"malformed storage view {view_metadata!r}")
        _view_key, view_offset, view_numel = view_metadata
        if view_offset < 0 or view_numel < 0 or view_offset + view_numel > numel:
            raise _FileFormatError(f"storage view {view_metadata!r} lies outside storage {key!r} "
                                   f"of {numel} elements")
        return _StorageRef(key, root.dtype, numel, (view_offset, view_numel))


# --- reading ---------------------------------------------------------------------------------------
def _unpickle(file, unpickler_class, what: str):
    """One pickle from `file`; every failure becomes `_FileFormatError` naming `what`."""
    unpickler = unpickler_class(file)
    try:
        return unpickler.load(), unpickler
    except _FileFormatError:
        raise
    except Exception as error:  # noqa: BLE001 - any malformed pickle is a corrupt file
        if isinstance(error, EOFError) or not file.read(1):   # stopped at the end of the file
            raise _FileFormatError(f"truncated: the file ends inside the {what}") from None
        raise _FileFormatError(f"corrupt {what} ({type(error).__name__}: {error})") from error


def _check_header(file, size_bytes: int) -> None:
    """The first three pickles: magic number, protocol version, system information."""
    head = file.peek(512)[:512] if hasattr(file, "peek") else b""
    if head.startswith(_ZIP_SIGNATURE):
        raise _FileFormatError(
            "this is the zip format of torch >= 1.6, not the legacy format this reader handles; "
            "re-save it with torch.save(state_dict, path, _use_new_zipfile_serialization=False)")
    offset, signature = _TAR_SIGNATURE
    if head[offset:offset + len(signature)] == signature:
        raise _FileFormatError("this is the tar format of torch < 0.1.10, not supported")
    if not head.startswith(b"\x80"):
        raise _FileFormatError(f"not a legacy PyTorch file: it does not start with a pickle "
                               f"(first bytes {head[:8]!r}, {size_bytes:,} bytes)")
    magic, _ = _unpickle(file, _DataOnlyUnpickler, "magic number")
    if magic != MAGIC_NUMBER:
        raise _FileFormatError(f"not a legacy PyTorch file: the first pickle is {magic!r:.80}, "
                               f"not the magic number {MAGIC_NUMBER:#x}")
    version, _ = _unpickle(file, _DataOnlyUnpickler, "protocol version")
    if version != PROTOCOL_VERSION:
        raise _FileFormatError(f"unsupported legacy protocol version {version!r:.80} "
                               f"(expected {PROTOCOL_VERSION})")
    system_info, _ = _unpickle(file, _DataOnlyUnpickler, "system information")
    if not isinstance(system_info, dict):
        raise _FileFormatError(f"corrupt system information {system_info!r:.80}")
    if system_info.get("little_endian") is not True:
        raise _FileFormatError("the file was written on a big-endian machine: not supported")


def _read_storages(file, path: Path, storages: dict[str, _StorageRef],
                   keys: list[str]) -> dict[str, np.ndarray]:
    """The raw storages after the pickles: `{key: 1-D array}`, sizes checked against the pickle."""
    if sorted(keys) != sorted(storages):
        missing = sorted(set(storages) - set(keys))[:3]
        extra = sorted(set(keys) - set(storages))[:3]
        raise _FileFormatError(f"the storage key list does not match the tensors' storages "
                               f"(missing {missing}, unexpected {extra})")
    arrays = {}
    for key in keys:
        storage = storages[key]
        position = file.tell()
        header = file.read(8)
        if len(header) < 8:
            raise _FileFormatError(f"truncated: the file ends at byte {position + len(header):,} "
                                   f"before storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise _FileFormatError(f"storage size mismatch: storage {key!r} has {numel:,} elements "
                                   f"in the data but {storage.numel:,} in the pickle")
        size_bytes = numel * storage.dtype.itemsize
        data = bytearray(size_bytes)
        if file.readinto(data) < size_bytes:
            raise _FileFormatError(f"truncated: storage {key!r} needs {size_bytes:,} bytes from "
                                   f"byte {position + 8:,}, the file has {path.stat().st_size:,}")
        arrays[key] = np.frombuffer(data, dtype=storage.dtype)
    trailing = len(file.read(1 << 20))
    if trailing:
        raise _FileFormatError(f"corrupt: {trailing:,}+ unexpected bytes after the last storage")
    return arrays


def _materialise(name: str, tensor: _TensorRef, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """A C-contiguous copy of the strided view `tensor` of its storage."""
    storage = arrays[tensor.storage.key]
    if tensor.storage.view is not None:
        view_offset, view_numel = tensor.storage.view
        storage = storage[view_offset:view_offset + view_numel]
    shape, strides, offset = tensor.shape, tensor.strides, tensor.offset
    if offset < 0 or min(shape + strides, default=0) < 0:
        raise _FileFormatError(f"tensor {name!r} has a negative offset, size or stride")
    numel = int(np.prod(shape, dtype=np.int64))
    if numel > max(storage.size, 1):
        raise _FileFormatError(f"tensor {name!r} of shape {shape} has more elements than its "
                               f"storage ({storage.size:,}); broadcast tensors are not supported")
    if numel == 0:
        return np.zeros(shape, dtype=storage.dtype.newbyteorder("="))
    last = offset + sum((size - 1) * stride for size, stride in zip(shape, strides))
    if last >= storage.size:
        raise _FileFormatError(f"tensor {name!r} (shape {shape}, stride {strides}, offset "
                               f"{offset}) reaches element {last:,} of a storage of {storage.size:,}")
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=shape,
                                           strides=tuple(s * itemsize for s in strides),
                                           writeable=False)
    return np.array(view, dtype=storage.dtype.newbyteorder("="), order="C", copy=True)


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a legacy-format PyTorch state dict as NumPy arrays, without torch and without running code.

    Args:
        path: a `.pth`/`.pt` file written by `torch.save(state_dict)` in the legacy (non-zip)
            format (see the module docstring).

    Returns:
        `{parameter name: array}` in the file's order. Each array has the tensor's PyTorch shape and
        dtype (float32 weights, int64 `num_batches_tracked` scalars of shape `()`, ...), is
        C-contiguous and owns its memory (strides and offsets of the stored view are applied).

    Raises:
        WeightsFileError: the file is missing, empty, truncated, corrupt, not a legacy PyTorch file
            (e.g. the zip format), not a dict of tensors, uses an unsupported dtype, or names a
            global outside the allowed few (`.refused_global` says which, e.g. "os.system");
            the message names the file.
    """
    path = Path(path)
    try:
        size_bytes = path.stat().st_size
        if path.is_dir():
            raise WeightsFileError(path, "is a folder, not a weights file")
        if size_bytes == 0:
            raise WeightsFileError(path, "empty file (0 bytes)")
        with open(path, "rb") as file:
            _check_header(file, size_bytes)
            state_dict, unpickler = _unpickle(file, _StateDictUnpickler, "state dict")
            keys, _ = _unpickle(file, _DataOnlyUnpickler, "storage key list")
            if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
                raise _FileFormatError(f"corrupt storage key list {keys!r:.80}")
            if not isinstance(state_dict, dict):
                raise _FileFormatError(f"the file holds a {type(state_dict).__name__}, "
                                       f"not a state dict (a dict of tensors)")
            for name, value in state_dict.items():
                if not isinstance(name, str) or not isinstance(value, _TensorRef):
                    raise _FileFormatError(
                        f"not a state dict of tensors: entry {name!r:.60} is a "
                        f"{type(value).__name__}")
            arrays = _read_storages(file, path, unpickler.storages, keys)
            return {name: _materialise(name, tensor, arrays) for name, tensor in state_dict.items()}
    except _FileFormatError as error:
        raise WeightsFileError(path, error.reason, error.refused_global) from None
    except FileNotFoundError:
        raise WeightsFileError(path, "file not found") from None
    except OSError as error:
        raise WeightsFileError(path, f"cannot read the file ({error.strerror or error})") from None
