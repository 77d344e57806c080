"""Reading PyTorch checkpoints safely, without torch: ``.pth``/``.pt`` and ``.safetensors`` to numpy.

* ``.pth``/``.pt`` files (both layouts ``torch.save`` writes: the zip format and the
  legacy one) are read by :mod:`keras_cnnclassics.torch_pickle`, a restricted unpickler
  that accepts tensors, storages, ordered dicts and plain values only and refuses any
  other object before it runs, as ``torch.load(weights_only=True)`` does; then each
  tensor is cut from its storage's bytes with numpy. No code from the file runs, and
  torch need not be installed.
* ``.safetensors`` files are read with the safetensors library into numpy arrays
  (``bfloat16`` tensors from the file's bytes, as numpy has no such dtype).

The format is recognised from the file's first bytes (zip archive, legacy pickle,
safetensors JSON header), not from its name. Training checkpoints are unwrapped:
``{"state_dict": ...}``, ``{"model": ...}`` and similar containers, and the
``module.`` prefix of ``DataParallel`` (``_orig_mod.`` of ``torch.compile``).
Floating-point tensors come back as float32. Every failure is a
:class:`CheckpointError` (a ``ValueError``) with one line that says what is wrong
with the file.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from keras_cnnclassics.torch_pickle import CheckpointError, TorchFile, array_from_bytes

__all__ = ["CheckpointError", "read_checkpoint", "unwrap_state_dict"]

# Where training scripts put the model's state dict inside a checkpoint, in the order tried.
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema", "net", "module")
# Prefixes added by wrappers: DataParallel/DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80
_TAR_MAGIC = (257, b"ustar")  # offset and bytes of a tar header's magic
_MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors library's own limit
# safetensors dtype -> torch dtype name, as keras_cnnclassics.torch_pickle decodes them.
_SAFETENSORS_DTYPES = {
    "F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
    "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
    "U16": "uint16", "U32": "uint32", "U64": "uint64",
}


def read_checkpoint(path, progress=False) -> dict[str, np.ndarray]:
    """The state dict stored in ``path`` as ``{name: numpy array}``, floats as float32.

    ``progress`` shows a tqdm bar while tensors are converted (large files).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise CheckpointError(f"Checkpoint {path!r} {what}.")
    size = os.path.getsize(path)
    if size == 0:
        raise CheckpointError(f"Checkpoint {path!r} is empty (0 bytes).")
    with open(path, "rb") as f:
        head = f.read(512)
    if _looks_like_safetensors(head):
        return _as_numpy(_read_safetensors(path, progress), progress, path)
    if head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL]):
        return _read_torch_file(path, progress)
    if head[_TAR_MAGIC[0]:_TAR_MAGIC[0] + len(_TAR_MAGIC[1])] == _TAR_MAGIC[1]:
        raise CheckpointError(
            f"{path!r} is in the .tar layout of PyTorch before 0.1.10, which is not read here; "
            "if you trust it, re-save it with a current torch: torch.save(torch.load(old, weights_only=False), new)."
        )
    raise CheckpointError(
        f"{path!r} is not a PyTorch checkpoint: it is neither a torch.save file "
        "(.pth/.pt) nor a .safetensors file."
    )


def _read_torch_file(path, progress):
    """A ``torch.save`` file's state dict: unwrapped first, so only its tensors are read."""
    with TorchFile(path) as torch_file:
        state = unwrap_state_dict(torch_file.load(), path)
        return _as_numpy(state, progress, path, lambda value, key: torch_file.array(value, key))


def _looks_like_safetensors(head):
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    # A little-endian header length, then the JSON header (truncation is reported later).
    return head[8:9] == b"{" and 1 < header_len < _MAX_SAFETENSORS_HEADER


def _read_safetensors(path, progress):
    try:
        from safetensors import safe_open
    except ImportError:
        raise CheckpointError(
            "Reading .safetensors needs the safetensors package: pip install safetensors "
            "(or keras-cnnclassics[convert])."
        ) from None
    try:
        with safe_open(path, framework="np") as f:
            names = list(f.keys())
            return {k: f.get_tensor(k) for k in progress_bar(names, progress, "reading")}
    except TypeError:  # bfloat16 has no numpy dtype
        return _read_safetensors_bytes(path)
    except Exception as err:  # SafetensorError is not importable by a stable name
        raise CheckpointError(
            f"{path!r} is not a readable .safetensors file ({_first_line(err)}); "
            "truncated or corrupted?"
        ) from None


def _read_safetensors_bytes(path):
    """Every tensor of a ``.safetensors`` file cut from its bytes (the library checked the header)."""
    data = np.fromfile(path, dtype=np.uint8)
    (header_len,) = struct.unpack("<Q", data[:8].tobytes())
    header = json.loads(data[8:8 + header_len].tobytes())
    state = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path!r}: tensor {name!r} has dtype {entry['dtype']}, which is not read here.")
        begin = 8 + header_len + entry["data_offsets"][0]
        state[name] = array_from_bytes(data, dtype, entry["shape"], byte_offset=begin)
    return state


def _is_tensor(value):
    return hasattr(value, "shape") and hasattr(value, "dtype")


def unwrap_state_dict(obj, path="checkpoint"):
    """The ``{name: tensor}`` inside ``obj`` (see module docstring); wrapper prefixes removed."""
    seen = 0
    while isinstance(obj, dict) and not _is_state_dict(obj) and seen < 3:
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj, seen = inner, seen + 1
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        found = sorted(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(
            f"{path!r} holds no state dict of tensors (found {found}); expected "
            "torch.save(model.state_dict(), path) or a dict with a 'state_dict'/'model' entry."
        )
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def _is_state_dict(obj):
    return bool(obj) and all(isinstance(k, str) and _is_tensor(v) for k, v in obj.items())


def _as_numpy(state, progress, path, to_array=lambda value, key: value):
    """``{name: numpy array}`` from ``state``'s values (``to_array`` reads each), floats as float32."""
    arrays = {}
    for key in progress_bar(list(state), progress, "converting"):
        value = np.asarray(to_array(state[key], key))
        if value.dtype.kind == "f" or "float" in value.dtype.name:  # float16/64, ml_dtypes bfloat16
            value = value.astype(np.float32, copy=False)
        arrays[key] = value
    if not arrays:
        raise CheckpointError(f"{path!r} holds an empty state dict.")
    return arrays


def progress_bar(items, enabled, desc, unit="tensor"):
    """``items`` wrapped in a tqdm bar on stderr when ``enabled`` (and tqdm is installed)."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit=unit, leave=False)


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__

