"""Reading PyTorch checkpoints safely: ``.pth``/``.pt`` and ``.safetensors`` to numpy.

* ``.pth``/``.pt`` files are read with ``torch.load(..., weights_only=True,
  map_location="cpu")`` and nothing else: PyTorch's restricted unpickler accepts
  tensors and plain containers only, so a pickle that carries code (``os.system``
  in a ``__reduce__``) is refused before anything runs.
* ``.safetensors`` files are read with the safetensors library into numpy arrays;
  torch is not needed.

The format is recognised from the file's first bytes (zip archive, legacy pickle,
safetensors JSON header), not from its name. Training checkpoints are unwrapped:
``{"state_dict": ...}``, ``{"model": ...}`` and similar containers, and the
``module.`` prefix of ``DataParallel`` (``_orig_mod.`` of ``torch.compile``).
Every failure is a :class:`CheckpointError` (a ``ValueError``) with one line that
says what is wrong with the file.
"""

from __future__ import annotations

import os
import struct

import numpy as np

__all__ = ["CheckpointError", "read_checkpoint", "unwrap_state_dict"]

# Where training scripts put the model's state dict inside a checkpoint, in the order tried.
CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema", "net", "module")
# Prefixes added by wrappers: DataParallel/DistributedDataParallel, torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL = 0x80
_MAX_SAFETENSORS_HEADER = 100 * 2**20  # the safetensors library's own limit


class CheckpointError(ValueError):
    """A file that cannot be read as a PyTorch state dict (message: one line)."""


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
        head = f.read(16)
    if _looks_like_safetensors(head):
        state = _read_safetensors(path, progress)
    elif head.startswith(_ZIP_MAGIC) or head[:1] == bytes([_PICKLE_PROTOCOL]):
        state = unwrap_state_dict(_torch_load(path, mmap=head.startswith(_ZIP_MAGIC)), path)
    else:
        raise CheckpointError(
            f"{path!r} is not a PyTorch checkpoint: it is neither a torch.save file "
            "(.pth/.pt) nor a .safetensors file."
        )
    return _as_numpy(state, progress, path)


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
    except TypeError:
        return _read_safetensors_with_torch(path)  # bfloat16 has no numpy dtype
    except Exception as err:  # SafetensorError is not importable by a stable name
        raise CheckpointError(
            f"{path!r} is not a readable .safetensors file ({_first_line(err)}); "
            "truncated or corrupted?"
        ) from None


def _read_safetensors_with_torch(path):
    _import_torch(path)
    from safetensors.torch import load_file

    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}


def _import_torch(path):
    try:
        import torch
    except ImportError:
        raise CheckpointError(
            f"Reading {path!r} needs PyTorch: pip install torch (or keras-cnnclassics[convert]); "
            "or save the state dict as .safetensors, which needs no torch."
        ) from None
    return torch


def _torch_load(path, mmap):
    torch = _import_torch(path)
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes from the restricted unpickler
            return torch.load(path, weights_only=True, map_location="cpu", mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text:
            culprit = next(
                (line.strip() for line in text.splitlines() if "GLOBAL" in line or "Unsupported" in line),
                "objects other than tensors",
            )
            raise CheckpointError(
                f"Refusing to load {path!r}: it contains Python objects besides tensors, which "
                f"could run code when unpickled ({culprit}). Only plain state dicts are read "
                "(torch.load weights_only=True); re-save with torch.save(model.state_dict(), ...) "
                "from a trusted environment."
            ) from None
        raise CheckpointError(f"{path!r} is not a PyTorch checkpoint ({_first_line(err)}).") from None
    except RuntimeError as err:
        if "zip archive" in str(err) or "PytorchStreamReader" in str(err):
            raise CheckpointError(
                f"{path!r} is truncated or corrupted: not a complete torch.save zip archive."
            ) from None
        raise CheckpointError(f"Cannot read {path!r}: {_first_line(err)}") from None
    except (EOFError, KeyError, ValueError, IndexError, TypeError, AttributeError) as err:
        kind = "truncated" if isinstance(err, EOFError) else "not a PyTorch checkpoint"
        raise CheckpointError(
            f"{path!r} is {kind} (torch.load: {type(err).__name__} {_first_line(err)})."
        ) from None


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


def _as_numpy(state, progress, path):
    arrays = {}
    for key in progress_bar(list(state), progress, "converting"):
        value = state[key]
        if hasattr(value, "detach"):  # a torch tensor
            value = value.detach().cpu()
            if value.is_floating_point():
                value = value.float()
            value = value.numpy()
        value = np.asarray(value)
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

