"""The torch-free ``.pth`` reader: both ``torch.save`` layouts, exact values, refusals.

torch only writes the fixture files here; the reader never imports it, which a child
process where ``import torch`` fails checks on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections import OrderedDict

import keras
import numpy as np
import pytest

from keras_cnnclassics.checkpoints import CheckpointError, read_checkpoint

from support.reference import require, torch_reference

torch = require("torch")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYOUTS = pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])


def save(obj, path, legacy=False):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return str(path)


def expected_array(tensor):
    """What the reader promises for ``tensor``: its values, floating point as float32."""
    tensor = tensor.detach()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()


def assert_same_state(arrays, state):
    assert list(arrays) == list(state)
    for key, tensor in state.items():
        want = expected_array(tensor)
        assert arrays[key].dtype == want.dtype, key
        assert arrays[key].shape == want.shape, key
        np.testing.assert_array_equal(arrays[key], want, err_msg=key)


def odd_tensors():
    """Views, shared and broadcast storages, every supported dtype, parameters."""
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=gen)
    bf16 = torch.randn(3, 5, generator=gen).bfloat16()
    with_state = torch.nn.Parameter(torch.randn(2, 2, generator=gen))
    with_state.note = "kept by _rebuild_parameter_with_state"
    return OrderedDict(
        base=base, transposed=base.t(), block=base[1:3, 2:5], every_other=base[:, ::2],
        broadcast=torch.arange(3.0).expand(4, 3), scalar=torch.tensor(2.5), empty=torch.zeros(0, 3),
        half=torch.randn(3, 5, generator=gen).half(), bf16=bf16, bf16_transposed=bf16.t(),
        float64=torch.randn(2, 3, generator=gen, dtype=torch.float64),
        int64=torch.arange(-5, 5), int32=torch.arange(7, dtype=torch.int32),
        int16=torch.tensor([-300, 7], dtype=torch.int16), int8=torch.tensor([-8, 9], dtype=torch.int8),
        uint8=torch.tensor([0, 255], dtype=torch.uint8), bool=torch.tensor([True, False, True]),
        uint16=torch.tensor([1, 65535], dtype=torch.uint16), num_batches_tracked=torch.tensor(12),
        parameter=torch.nn.Parameter(torch.randn(3, generator=gen)), parameter_with_state=with_state,
    )


@pytest.fixture(scope="module")
def published_states():
    """State dicts of a torchvision and a timm model, random weights and BN statistics."""
    return {name: torch_reference(name).state_dict() for name in ("torchvision:resnet18", "timm:resnetv2_18")}


@LAYOUTS
@pytest.mark.parametrize("name", ["torchvision:resnet18", "timm:resnetv2_18"])
def test_model_state_dicts_read_exactly(published_states, name, legacy, tmp_path):
    state = published_states[name]
    assert_same_state(read_checkpoint(save(state, tmp_path / "model.pth", legacy)), state)


@LAYOUTS
def test_views_dtypes_and_parameters_read_exactly(legacy, tmp_path):
    state = odd_tensors()
    assert_same_state(read_checkpoint(save(state, tmp_path / "odd.pth", legacy), progress=True), state)


@LAYOUTS
def test_training_checkpoints_unwrap_without_reading_other_tensors(legacy, tmp_path):
    state = odd_tensors()
    checkpoint = {"epoch": 3, "best": 0.75, "tags": {"a", "b"}, "raw": b"\x00\xff",
                  "state_dict": OrderedDict((f"module.{k}", v) for k, v in state.items()),
                  "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": [{"lr": 0.1}]}}
    assert_same_state(read_checkpoint(save(checkpoint, tmp_path / "train.pth", legacy)), state)


def rewrite_zip(source, target, change):
    """Copy a torch.save zip member by member, ``change(name, data)`` giving the new bytes."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as new:
        for info in old.infolist():
            new.writestr(info, change(info.filename, old.read(info)))
    return str(target)


def test_big_endian_zip_files_are_read(tmp_path):
    state = OrderedDict(f32=torch.randn(2, 3), bf16=torch.randn(4).bfloat16(), i64=torch.arange(-2, 3),
                        f16=torch.randn(3).half())
    codes = ["<f4", "<u2", "<i8", "<f2"]  # storage "i" is tensor i: one storage each, in order

    def to_big_endian(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        folder, _, key = name.rpartition("/")
        return np.frombuffer(data, codes[int(key)]).byteswap().tobytes() if folder.endswith("/data") else data

    path = rewrite_zip(save(state, tmp_path / "little.pth"), tmp_path / "big.pth", to_big_endian)
    loaded = torch.load(path, weights_only=True)  # torch agrees that the fixture is right
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert_same_state(read_checkpoint(path), state)


def write_old_legacy_file(path, values, offset, view):
    """A legacy-layout file as PyTorch before 1.0 wrote it: ``_rebuild_tensor`` and a storage view."""
    storage = ("storage", torch.FloatStorage, "root", "cpu", len(values), ("view", *view))

    class OldTensor:
        def __reduce__(self):
            return torch._utils._rebuild_tensor, (storage, offset, (2, 2), (1, 2))

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return obj if obj is storage else None

    with open(path, "wb") as handle:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, handle, protocol=2)
        Pickler(handle, protocol=2).dump({"w": OldTensor()})
        pickle.dump(["root"], handle, protocol=2)
        handle.write(struct.pack("<q", len(values)) + np.asarray(values, "<f4").tobytes())
    return str(path)


def test_pre_1_0_legacy_files_with_storage_views_are_read(tmp_path):
    path = write_old_legacy_file(tmp_path / "old.pth", np.arange(10.0), offset=1, view=(3, 6))
    want = torch.load(path, weights_only=True)["w"]
    np.testing.assert_array_equal(want.numpy(), [[4.0, 6.0], [5.0, 7.0]])
    assert_same_state(read_checkpoint(path), {"w": want})


class RunsCode:
    """Unpickling this runs ``touch MARKER`` (what a hostile checkpoint would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@LAYOUTS
def test_code_in_a_checkpoint_is_refused_before_it_runs(legacy, tmp_path):
    marker = tmp_path / "MARKER"
    path = save({"w": torch.zeros(2), "payload": RunsCode(marker)}, tmp_path / "code.pth", legacy)
    with pytest.raises(CheckpointError, match=r"refuses to load posix\.system: checkpoints may hold tensors"):
        read_checkpoint(path)
    assert not marker.exists()
    with open(tmp_path / "plain.pkl", "wb") as handle:
        pickle.dump(RunsCode(marker), handle, protocol=2)
    with pytest.raises(CheckpointError, match="refuses to load posix.system"):
        read_checkpoint(tmp_path / "plain.pkl")
    assert not marker.exists()


@LAYOUTS
@pytest.mark.parametrize("what, name", [
    (lambda: {"state_dict": {"w": torch.ones(1)}, "args": argparse.Namespace(lr=0.1)}, "argparse.Namespace"),
    (lambda: torch.nn.Linear(2, 2), "torch.nn.modules.linear.Linear"),
    (lambda: {"w": np.ones(2)}, "numpy"),
], ids=["namespace", "whole model", "numpy array"])
def test_objects_other_than_tensors_are_refused(what, name, legacy, tmp_path):
    path = save(what(), tmp_path / "objects.pth", legacy)
    with pytest.raises(CheckpointError, match=f"refuses to load {name}") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value) and repr(path) in str(info.value)


@LAYOUTS
def test_truncated_files_are_refused(legacy, tmp_path):
    # Every cut point: the storage order of the legacy layout follows memory addresses, so a
    # storage with no elements can land last, where only its 8-byte element count is left to cut.
    data = open(save(odd_tensors(), tmp_path / "whole.pth", legacy), "rb").read()
    for end in range(4, len(data)):  # below 4 bytes a zip's signature is cut, and the file unrecognised
        (tmp_path / "cut.pth").write_bytes(data[:end])
        with pytest.raises(CheckpointError, match="is truncated or corrupted") as info:
            read_checkpoint(tmp_path / "cut.pth")
        assert "\n" not in str(info.value)


def test_storages_shorter_than_their_tensors_are_refused(tmp_path):
    def shorten(name, data):
        return data[: len(data) // 2] if name.endswith("/data/0") else data

    path = rewrite_zip(save({"w": torch.randn(8, 8)}, tmp_path / "whole.pth"), tmp_path / "short.pth", shorten)
    with pytest.raises(CheckpointError, match=r"tensor 'w' needs bytes 0\.\.256 of a storage of 128"):
        read_checkpoint(path)


def test_foreign_archives_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("weights/readme.txt", "no pickle here")
    with pytest.raises(CheckpointError, match="is a zip archive but not a torch.save checkpoint"):
        read_checkpoint(tmp_path / "other.zip")
    (tmp_path / "sys_info").write_bytes(b"{}")
    with tarfile.open(tmp_path / "old.tar", "w") as archive:
        archive.add(tmp_path / "sys_info", "sys_info")
    with pytest.raises(CheckpointError, match=r"\.tar layout of PyTorch before 0\.1\.10"):
        read_checkpoint(tmp_path / "old.tar")
    with open(tmp_path / "numbers.pkl", "wb") as handle:
        pickle.dump({"w": [1.0, 2.0]}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="is a pickle but not a torch.save checkpoint"):
        read_checkpoint(tmp_path / "numbers.pkl")


CHILD = """
import json, sys
sys.modules["torch"] = None  # import torch now fails, as where it is not installed
import numpy as np
from keras_cnnclassics.checkpoints import read_checkpoint
for path, expected in json.loads(sys.argv[1]).items():
    arrays, want = read_checkpoint(path), np.load(expected)
    assert sorted(arrays) == sorted(want.files), (path, list(arrays))
    for key in want.files:
        assert arrays[key].dtype == want[key].dtype and np.array_equal(arrays[key], want[key]), (path, key)
assert sys.modules["torch"] is None
print("read", len(json.loads(sys.argv[1])), "files without torch")
"""


def test_files_are_read_where_torch_cannot_be_imported(tmp_path):
    from safetensors.torch import save_file

    state = odd_tensors()
    np.savez(tmp_path / "expected.npz", **{k: expected_array(v) for k, v in state.items()})
    bf16 = {"w": torch.randn(3, 4).bfloat16(), "b": torch.randn(4)}
    save_file(bf16, str(tmp_path / "bf16.safetensors"))
    np.savez(tmp_path / "bf16.npz", **{k: expected_array(v) for k, v in bf16.items()})
    files = {save(state, tmp_path / "zip.pth"): str(tmp_path / "expected.npz"),
             save(state, tmp_path / "legacy.pth", legacy=True): str(tmp_path / "expected.npz"),
             str(tmp_path / "bf16.safetensors"): str(tmp_path / "bf16.npz")}
    # Keras' torch backend needs torch: a user without torch has another one (numpy needs nothing).
    backend = keras.backend.backend() if keras.backend.backend() != "torch" else "numpy"
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(files)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "KERAS_BACKEND": backend})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "read 3 files without torch" in done.stdout
