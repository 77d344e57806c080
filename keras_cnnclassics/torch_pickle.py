"""Reading ``torch.save`` files into numpy without torch and without running their code.

A ``.pth``/``.pt`` file is a pickle whose tensors point to raw storages kept beside it
(PyTorch's ``torch/serialization.py`` defines both layouts):

* the zip format (the default since PyTorch 1.6): ``<folder>/data.pkl``, one member
  ``<folder>/data/<key>`` of raw bytes per storage, and a ``<folder>/byteorder`` record;
* the legacy format (``_use_new_zipfile_serialization=False``, and older published
  files): the pickled magic number, protocol version and system information, the main
  pickle, the pickled list of storage keys, then per storage an 8-byte little-endian
  element count and its little-endian bytes.

The pickle is read by :class:`RestrictedUnpickler`, which names in ``find_class`` the
few globals a state dict needs (ordered dicts, tensor-rebuild functions, storage types,
dtypes) and refuses anything else before it runs: the promise of
``torch.load(weights_only=True)``. Tensors stay :class:`TensorRef` records while the
pickle is read; :meth:`TorchFile.array` turns one into a numpy array (``bfloat16``
widened to ``float32``) from its storage's bytes, checking it lies inside them.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict

import numpy as np

__all__ = ["CheckpointError", "RestrictedUnpickler", "TensorRef", "TorchFile", "array_from_bytes"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# torch dtype name -> numpy type code of its bytes (bfloat16 is decoded by hand).
DTYPE_CODES = {
    "float32": "f4", "float64": "f8", "float16": "f2", "bfloat16": "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1", "bool": "?",
    "uint16": "u2", "uint32": "u4", "uint64": "u8",
}
# Storage class name (``torch.FloatStorage``, ``torch.cuda.FloatStorage``) -> dtype name.
STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "UntypedStorage": "uint8",
}
_CHUNK = 64 * 2**20


class CheckpointError(ValueError):
    """A file that cannot be read as a PyTorch state dict (message: one line)."""


class _Frozen:
    """An object a pickle's BUILD opcode cannot change (no ``__dict__``, no setattr)."""

    __slots__ = ()

    def __init__(self, **fields):
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class DType(_Frozen):
    """A ``torch.<dtype>`` named in the pickle."""

    __slots__ = ("name",)


class StorageType(_Frozen):
    """A ``torch.<Type>Storage`` class named in the pickle: only its dtype is kept."""

    __slots__ = ("dtype",)


class StorageRef(_Frozen):
    """A storage of the file, by key; ``byte_offset`` for the legacy format's storage views."""

    __slots__ = ("key", "dtype", "byte_offset")


class TensorRef(_Frozen):
    """A tensor as the pickle describes it: storage, dtype, offset, shape and stride (elements)."""

    __slots__ = ("storage", "dtype", "offset", "shape", "stride")


class _Callable(_Frozen):
    """An allowed function of the pickle, frozen so that the pickle cannot alter it."""

    __slots__ = ("name", "function")

    def __call__(self, *args):
        return self.function(*args)


def _tensor(storage, dtype, storage_offset, size, stride):
    if not isinstance(storage, StorageRef):
        raise ValueError(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage")
    return TensorRef(storage=storage, dtype=dtype, offset=storage_offset, shape=size, stride=stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2``: a tensor viewing ``storage``."""
    return _tensor(storage, getattr(storage, "dtype", None), storage_offset, size, stride)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, hooks, dtype, *_):
    """``torch._utils._rebuild_tensor_v3``: an untyped storage read as ``dtype``."""
    if not isinstance(dtype, DType):
        raise ValueError(f"a tensor's dtype is {type(dtype).__name__}, not a torch dtype")
    return _tensor(storage, dtype.name, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    """``torch._utils._rebuild_parameter(_with_state)``: a parameter is its tensor."""
    return data


def _latin1_bytes(text, encoding="latin1"):
    """``_codecs.encode``, as protocol-2 pickles write ``bytes``: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"bytes are encoded as {encoding!r}, not latin-1")
    return text.encode("latin1")


def _allowed_globals():
    allowed = {
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "_codecs.encode": _Callable(name="_codecs.encode", function=_latin1_bytes),
    }
    for name, function in (("_rebuild_tensor", _rebuild_tensor), ("_rebuild_tensor_v2", _rebuild_tensor),
                           ("_rebuild_tensor_v3", _rebuild_tensor_v3), ("_rebuild_parameter", _rebuild_parameter),
                           ("_rebuild_parameter_with_state", _rebuild_parameter)):
        allowed[f"torch._utils.{name}"] = _Callable(name=name, function=function)
    for module in ("torch", "torch.cuda"):
        allowed.update({f"{module}.{name}": StorageType(dtype=dtype) for name, dtype in STORAGE_DTYPES.items()})
    allowed["torch.storage.UntypedStorage"] = StorageType(dtype="uint8")
    allowed.update({f"torch.{name}": DType(name=name) for name in DTYPE_CODES})
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()
_PYTHON2_MODULES = {"__builtin__": "builtins"}  # names protocol-2 pickles write


class RestrictedUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that builds state dicts only.

    ``find_class`` returns the allowed globals and raises :class:`CheckpointError`
    for any other name before anything is called; ``persistent_load`` turns
    ``("storage", type, key, location, numel[, view])`` records into
    :class:`StorageRef` and notes each key's dtype in ``storage_dtypes``.
    """

    def __init__(self, file, path):
        super().__init__(file, encoding="utf-8")
        self.path = path
        self.storage_dtypes = {}

    def find_class(self, module, name):
        qualified = f"{_PYTHON2_MODULES.get(module, module)}.{name}"
        if qualified in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[qualified]
        if module in ("torch", "torch.cuda") and name.endswith("Storage"):
            raise CheckpointError(
                f"{self.path!r} holds {qualified} tensors, which are read with torch only; "
                "save float or integer tensors instead."
            )
        raise self.refusal(qualified)

    def refusal(self, what):
        return CheckpointError(
            f"{self.path!r}: the checkpoint reader refuses to load {what}: checkpoints may hold tensors, "
            "storages and dicts only, as other objects could run code when unpickled; re-save the weights "
            "with torch.save(model.state_dict(), path) in an environment you trust."
        )

    def persistent_load(self, pid):
        kind = _text(pid[0]) if isinstance(pid, tuple) and pid else type(pid).__name__
        if kind != "storage" or len(pid) not in (5, 6):
            raise self.refusal(f"a {kind!r} record")
        storage_type, key, view = pid[1], _text(pid[2]), pid[5] if len(pid) == 6 else None
        if not isinstance(storage_type, StorageType) or not isinstance(key, str):
            raise CheckpointError(f"{self.path!r} names a storage without a storage type; corrupted?")
        self.storage_dtypes.setdefault(key, storage_type.dtype)  # the legacy layout counts in these
        byte_offset = 0
        if view is not None:  # (view key, offset, size) of PyTorch before 1.0
            if not (isinstance(view, tuple) and len(view) == 3 and _is_index(view[1])):
                raise CheckpointError(f"{self.path!r} holds an invalid storage view {view!r}; corrupted?")
            byte_offset = view[1] * np.dtype(DTYPE_CODES[storage_type.dtype]).itemsize
        return StorageRef(key=key, dtype=storage_type.dtype, byte_offset=byte_offset)


def _is_dict(value):
    return isinstance(value, dict)


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


class TorchFile:
    """An open ``torch.save`` file: :meth:`load` its pickle, then :meth:`array` each tensor.

    Use as a context manager; storages are read once, when a tensor first needs them.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = open(self.path, "rb")
        self._buffers = {}
        self._archive = None
        self._big_endian = False
        self._legacy_storages = {}  # key -> (file offset, byte count)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._archive is not None:
            self._archive.close()
        self._file.close()
        self._buffers.clear()

    def load(self):
        """The pickled object, with :class:`TensorRef` in place of tensors."""
        try:
            if self._file.read(4) == b"PK\x03\x04":
                return self._load_zip()
            self._file.seek(0)
            return self._load_legacy()
        except CheckpointError:
            raise
        except (EOFError, zipfile.BadZipFile) as err:
            raise self._truncated(_first_line(err)) from None
        except (pickle.UnpicklingError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                struct.error, OverflowError) as err:
            if "truncated" in str(err):
                raise self._truncated(_first_line(err)) from None
            raise CheckpointError(
                f"{self.path!r} is not a readable torch.save file ({type(err).__name__}: {_first_line(err)})."
            ) from None

    def _truncated(self, detail):
        return CheckpointError(f"{self.path!r} is truncated or corrupted ({detail}).")

    def _unpickle(self, file):
        unpickler = RestrictedUnpickler(file, self.path)
        return unpickler.load(), unpickler.storage_dtypes

    def _load_zip(self):
        self._file.seek(0)
        self._archive = zipfile.ZipFile(self._file)
        pickles = [n for n in self._archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CheckpointError(
                f"{self.path!r} is a zip archive but not a torch.save checkpoint (no folder/data.pkl in it)."
            )
        self._prefix = pickles[0][: -len("data.pkl")]
        order = self._read_member("byteorder") if f"{self._prefix}byteorder" in self._archive.namelist() else b"little"
        if bytes(order) not in (b"little", b"big"):
            raise CheckpointError(f"{self.path!r} names an unknown byte order {bytes(order)[:20]!r}.")
        self._big_endian = bytes(order) == b"big"
        obj, _ = self._unpickle(io.BytesIO(self._read_member("data.pkl")))
        return obj

    def _read_member(self, name):
        """The bytes of ``<folder>/<name>`` in a writable buffer, read in chunks (one copy)."""
        info = self._archive.getinfo(self._prefix + name)
        buffer = bytearray(info.file_size)
        view, filled = memoryview(buffer), 0
        with self._archive.open(info) as member:
            while filled < len(buffer):
                chunk = member.read(min(_CHUNK, len(buffer) - filled))
                if not chunk:
                    raise EOFError(f"member {name} ends early")
                view[filled:filled + len(chunk)] = chunk
                filled += len(chunk)
        return buffer

    def _load_legacy(self):
        for is_expected in (LEGACY_MAGIC_NUMBER.__eq__, LEGACY_PROTOCOL_VERSION.__eq__, _is_dict):
            if is_expected(self._unpickle(self._file)[0]) is not True:  # magic, version, system info
                raise CheckpointError(
                    f"{self.path!r} is a pickle but not a torch.save checkpoint (no torch.save header); "
                    "save the weights with torch.save(model.state_dict(), path)."
                )
        obj, storage_dtypes = self._unpickle(self._file)
        keys, _ = self._unpickle(self._file)
        if not isinstance(keys, list) or set(keys) - set(storage_dtypes):
            raise CheckpointError(f"{self.path!r} lists storages its pickle never names; corrupted?")
        end = os.fstat(self._file.fileno()).st_size
        for key in keys:  # element count, then the bytes (always little-endian in this format)
            header = self._file.read(8)
            if len(header) != 8:
                raise self._truncated(f"storage {key} has no element count")
            count = int.from_bytes(header, "little")
            start = self._file.tell()
            nbytes = count * np.dtype(DTYPE_CODES[storage_dtypes[key]]).itemsize
            if start + nbytes > end:
                raise self._truncated(f"storage {key} needs {nbytes} bytes, {max(end - start, 0)} are left")
            self._legacy_storages[key] = (start, nbytes)
            self._file.seek(nbytes, os.SEEK_CUR)
        return obj

    def _storage_bytes(self, key):
        if key not in self._buffers:
            if self._archive is not None:
                try:
                    self._buffers[key] = self._read_member(f"data/{key}")
                except (KeyError, EOFError, zipfile.BadZipFile) as err:
                    raise self._truncated(f"storage {key}: {_first_line(err)}") from None
            elif key in self._legacy_storages:
                start, nbytes = self._legacy_storages[key]
                buffer = bytearray(nbytes)
                self._file.seek(start)
                if self._file.readinto(buffer) != nbytes:
                    raise self._truncated(f"storage {key} ends early")
                self._buffers[key] = buffer
            else:
                raise self._truncated(f"storage {key} is missing")
        return self._buffers[key]

    def array(self, tensor, name="tensor"):
        """``tensor`` (a :class:`TensorRef`) as a C-contiguous numpy array."""
        storage = tensor.storage
        buffer = self._storage_bytes(storage.key)
        try:
            return array_from_bytes(buffer, tensor.dtype, tensor.shape, tensor.stride,
                                    storage.byte_offset, tensor.offset, self._big_endian)
        except ValueError as err:
            raise CheckpointError(f"{self.path!r}: tensor {name!r} {err}; truncated or corrupted?") from None


def _is_index(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def array_from_bytes(buffer, dtype, shape, stride=None, byte_offset=0, offset=0, big_endian=False):
    """The tensor of ``dtype`` (a torch dtype name) at ``offset`` elements past ``byte_offset``.

    ``stride`` (elements) defaults to C order; the tensor must lie inside ``buffer``.
    ``bfloat16`` becomes ``float32`` (its 16 bits are the top half of a float32).
    Raises ``ValueError`` naming what does not fit.
    """
    if dtype not in DTYPE_CODES:
        raise ValueError(f"has dtype {dtype!r}, which is not read without torch")
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    stride = _c_strides(shape) if stride is None and isinstance(shape, tuple) else stride
    stride = tuple(stride) if isinstance(stride, (tuple, list)) else stride
    if not (isinstance(shape, tuple) and isinstance(stride, tuple) and len(shape) == len(stride)
            and all(map(_is_index, shape + stride + (offset, byte_offset)))):
        raise ValueError(f"has an invalid shape {shape!r}, stride {stride!r} or offset {offset!r}")
    raw = np.dtype(DTYPE_CODES[dtype]).newbyteorder(">" if big_endian else "<")
    if 0 in shape:
        return np.zeros(shape, _decoded_dtype(dtype))
    extent = 1 + sum((size - 1) * step for size, step in zip(shape, stride))
    start = byte_offset + offset * raw.itemsize
    if start + extent * raw.itemsize > len(buffer):
        raise ValueError(f"needs bytes {start}..{start + extent * raw.itemsize} of a storage of {len(buffer)}")
    flat = np.frombuffer(buffer, dtype=raw, count=extent, offset=start)
    view = np.lib.stride_tricks.as_strided(flat, shape, [s * raw.itemsize for s in stride], writeable=False)
    values = flat.reshape(shape) if view.flags.c_contiguous else view
    values = _decode(values, dtype)
    return values if values.flags.c_contiguous else values.copy(order="C")  # keeps 0-d arrays 0-d


def _c_strides(shape):
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size if _is_index(size) else 1
    return tuple(reversed(strides))


def _decoded_dtype(dtype):
    return np.float32 if dtype == "bfloat16" else np.dtype(DTYPE_CODES[dtype])


def _decode(values, dtype):
    """Native-order values; ``bfloat16`` bits shifted into the top half of ``float32``."""
    if dtype == "bfloat16":
        return (values.astype(np.uint32) << 16).view(np.float32)
    if not values.dtype.isnative:
        return values.astype(values.dtype.newbyteorder("="))
    return values


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
