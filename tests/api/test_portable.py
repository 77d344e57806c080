"""Nothing Linux-only: the package imports, builds, trains and exports where
``os.sched_getaffinity`` and ``fcntl`` do not exist (as on macOS and Windows), and the
run folder's lock works with Windows' ``msvcrt.locking``."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import types

import keras
import pytest

from keras_cnnclassics.training import runfolder
from keras_cnnclassics.training.runfolder import RunFolder, RunFolderBusy

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Run by every Python started with this folder first on PYTHONPATH (export workers too).
SIMULATED_PLATFORM = textwrap.dedent(
    """
    import importlib.abc, os, sys

    del os.sched_getaffinity

    class NoFcntl(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "fcntl":
                raise ImportError("no fcntl on this platform")
            return None

    sys.modules.pop("fcntl", None)
    sys.meta_path.insert(0, NoFcntl())
    """
)

JOB = textwrap.dedent(
    """
    import json, os, sys

    assert not hasattr(os, "sched_getaffinity")
    try:
        import fcntl
    except ImportError:
        pass
    else:
        sys.exit("fcntl is importable")

    import keras
    import keras_cnnclassics as kc
    from keras_cnnclassics.training import TrainConfig, train

    built = kc.get_model("resnet18", input_shape=(32, 32, 3), classes=10)
    result = train(TrainConfig("lenet5", epochs=1, limit=64, batch_size=16, warmup_epochs=0,
                               output="run"), verbose=0)
    fmt = "tflite" if keras.backend.backend() == "tensorflow" else "onnx"
    report = kc.export_model(os.path.join(result.run_dir, "best.keras"), fmt, output=f"lenet5.{fmt}",
                             verbose=0)
    print(json.dumps({"params": built.count_params(), "epochs": len(result.history),
                      "exported": os.path.getsize(f"lenet5.{fmt}"), "fcntl": "fcntl" in sys.modules}))
    """
)


def test_imports_builds_trains_and_exports_without_sched_getaffinity_and_fcntl(tmp_path):
    platform = tmp_path / "platform"
    platform.mkdir()
    (platform / "sitecustomize.py").write_text(SIMULATED_PLATFORM)
    child = subprocess.run(
        [sys.executable, "-c", JOB], cwd=tmp_path, capture_output=True, text=True, timeout=1500,
        env={**os.environ, "KERAS_BACKEND": keras.backend.backend(),
             "PYTHONPATH": os.pathsep.join([str(platform), ROOT])},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and result["params"] > 0 and result["exported"] > 0
    assert not result["fcntl"]
    assert (tmp_path / "run" / "best.keras").exists()


class _FakeMsvcrt(types.ModuleType):
    """Windows' ``msvcrt.locking`` on Linux: byte-range locks per (file, offset), held per
    descriptor, refused with ``EACCES`` to another descriptor."""

    LK_NBLCK = 2

    def __init__(self):
        super().__init__("msvcrt")
        self.held = {}  # (device, inode, offset) -> descriptor
        self.offsets = []

    def locking(self, fd, mode, nbytes):
        assert mode == self.LK_NBLCK and nbytes == 1
        stat = os.fstat(fd)
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        self.offsets.append(offset)
        key = (stat.st_dev, stat.st_ino, offset)
        if self.held.get(key, fd) != fd:
            raise OSError(errno.EACCES, "Permission denied")
        self.held[key] = fd


def test_run_folder_lock_uses_msvcrt_where_fcntl_is_missing(tmp_path, monkeypatch):
    fake = _FakeMsvcrt()
    monkeypatch.setitem(sys.modules, "fcntl", None)  # import fcntl raises ImportError
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    run = RunFolder(tmp_path / "run")
    with run.locked():
        # the lock sits past the PID, which a refused training reads to name the holder
        assert fake.offsets == [runfolder._WINDOWS_LOCK_OFFSET]
        with pytest.raises(RunFolderBusy, match=f"in use by a training \\(process {os.getpid()} on "):
            with RunFolder(tmp_path / "run").locked():
                pass
    assert len(fake.offsets) == 2


def test_run_folder_lock_errors_other_than_held_elsewhere_are_not_reported_as_busy(tmp_path, monkeypatch):
    fake = _FakeMsvcrt()

    def unsupported(fd, mode, nbytes):
        raise OSError(errno.ENOLCK, "No locks available")

    fake.locking = unsupported
    monkeypatch.setitem(sys.modules, "fcntl", None)
    monkeypatch.setitem(sys.modules, "msvcrt", fake)
    with pytest.raises(OSError, match="No locks available"):
        with RunFolder(tmp_path / "run").locked():
            pass
