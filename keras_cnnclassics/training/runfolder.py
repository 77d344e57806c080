"""The run folder: what a training run leaves behind, written so that nothing is lost.

Layout of ``runs/NAME``::

    config.json            resolved configuration, data and device summary
    history.csv            one row per completed epoch
    curves.png             loss and accuracy curves
    best.keras             model (no optimizer) with the best validation top-1
    best.weights.h5        its weights
    last.keras             model after the last completed epoch
    last.weights.h5        its weights
    evaluation.json        final top-1/top-5/loss and confusion matrix (best model)
    confusion_matrix.png   for <= 20 classes
    checkpoint.npz         resume state: model and optimizer variables, seed
                           states, epoch counter, history, best score
    .lock                  PID of the training process holding the folder

Every file is written to a temporary name in the folder and renamed into place
(:func:`keras_cnnclassics.weights.atomic_path`), so a crash or a full disk
leaves the previous version intact. ``checkpoint.npz`` is written last at the
end of an epoch: it is the commit point ``--resume`` continues from.

The ``.lock`` file is held while a training runs (``fcntl.flock`` on Linux and
macOS, ``msvcrt.locking`` on Windows): a second training on the same folder is
refused with the holder's PID; the lock dies with its process (SIGKILL
included), so there is never a stale lock to clean up. Where neither call
exists the PID file is informative only.

In a multi-process run only process 0 opens the folder with ``writer=True``:
it holds the lock and writes every file; the other processes open it with
``writer=False``, which neither locks, creates nor writes (they read it for
``--resume`` only).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import socket
import zipfile

import numpy as np

from keras_cnnclassics.weights import atomic_path

__all__ = ["RunFolder", "RunFolderBusy", "SaveError", "ARTIFACTS"]

ARTIFACTS = (
    "config.json", "history.csv", "curves.png", "best.keras", "best.weights.h5",
    "last.keras", "last.weights.h5", "evaluation.json", "confusion_matrix.png",
    "checkpoint.npz",
)
CHECKPOINT = "checkpoint.npz"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK
LOCK = ".lock"


class RunFolderBusy(FileExistsError):
    """Another process is training in this run folder."""


class SaveError(OSError):
    """Writing an artifact failed; the previous version of every file is intact."""


class RunFolder:
    """A run folder at ``path`` (see the module docstring for its contents); ``writer``
    False for the processes of a multi-process run other than process 0."""

    def __init__(self, path, writer=True):
        self.path = os.path.abspath(os.fspath(path))
        self.writer = writer
        self._lock_fd = None

    def file(self, name) -> str:
        return os.path.join(self.path, name)

    def exists(self, name) -> bool:
        return os.path.exists(self.file(name))

    def has_run(self) -> bool:
        """True if the folder holds anything of a previous run."""
        return any(self.exists(name) for name in ARTIFACTS)

    # -- locking -----------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        """Hold the folder's lock for the block; refuse if another process holds it.

        A folder this call created is removed again if the block fails leaving nothing
        in it but the lock (a run refused or failed before its first file): no empty run
        folders are left behind by bad options or data. A reader holds nothing.
        """
        if not self.writer:
            yield self
            return
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise FileExistsError(f"run folder {self.path} is a file; choose another --output.")
        created = not os.path.exists(self.path)
        os.makedirs(self.path, exist_ok=True)
        fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        acquired = failed = False
        try:
            _try_lock(fd, self.file(LOCK))
            acquired = True
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            self._lock_fd = fd
            yield self
        except BaseException:
            failed = True
            raise
        finally:
            self._lock_fd = None
            if created and acquired and failed:
                with contextlib.suppress(OSError):
                    if os.listdir(self.path) == [LOCK]:
                        os.remove(self.file(LOCK))  # still held by us: nobody else uses it
                        os.rmdir(self.path)
            os.close(fd)  # closing releases the lock

    def prepare(self, resume: bool, force: bool) -> None:
        """Refuse to overwrite a previous run unless ``resume`` or ``force``."""
        if resume and force:
            raise ValueError("--resume and --force exclude each other.")
        if not self.writer and not resume:
            return  # process 0 checks (and clears, with force) the folder
        if resume:
            if not self.exists("config.json"):
                raise FileNotFoundError(
                    f"nothing to resume in {self.path}: it holds no config.json; start a new "
                    "run without --resume."
                )
            return
        if self.has_run():
            if not force:
                present = [n for n in ARTIFACTS if self.exists(n)]
                raise FileExistsError(
                    f"run folder {self.path} already holds a run ({', '.join(present[:4])}"
                    f"{', ...' if len(present) > 4 else ''}); pass --resume to continue it or "
                    "--force to start it over (its files are replaced)."
                )
            for name in ARTIFACTS:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.file(name))

    # -- atomic writes -----------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, name):
        """Yield a temporary path; it replaces ``name`` only if the block succeeds."""
        if not self.writer:
            raise RuntimeError(f"this process does not write {self.path} (process 0 does).")
        try:
            with atomic_path(self.file(name), overwrite=True) as tmp:
                os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; run files are ordinary files
                yield tmp
        except OSError as err:
            if isinstance(err, SaveError):
                raise
            raise SaveError(
                err.errno,
                f"could not write {self.file(name)}: {err.strerror or err}. Nothing was lost: "
                "the previous checkpoint and model files are intact; free space (or fix "
                "the folder) and continue with --resume",
            ) from err

    def write_text(self, name, text) -> None:
        with self.writing(name) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)

    def write_json(self, name, data) -> None:
        self.write_text(name, json.dumps(data, indent=2, default=_jsonable) + "\n")

    def read_json(self, name):
        try:
            with open(self.file(name), encoding="utf-8") as handle:
                return json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{self.file(name)} is damaged: not valid JSON ({err}).") from None

    def read_config(self):
        """The :class:`TrainConfig` recorded in ``config.json`` (ValueError if damaged)."""
        from keras_cnnclassics.training.config import TrainConfig

        info = self.read_json("config.json")
        if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
            raise ValueError(
                f"{self.file('config.json')} is not a training run's configuration (no 'config' "
                "entry); start the run over with --force."
            )
        try:
            return TrainConfig.from_dict(info["config"])
        except TypeError as err:
            raise ValueError(f"{self.file('config.json')} is damaged: {err}.") from None

    def write_csv(self, name, rows) -> None:
        buffer = io.StringIO()
        if rows:
            keys = list(rows[0])
            for row in rows[1:]:
                keys += [k for k in row if k not in keys]
            writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        self.write_text(name, buffer.getvalue())

    def save_model(self, model, stem) -> None:
        """``stem.keras`` and ``stem.weights.h5``, each atomically."""
        with self.writing(f"{stem}.keras") as tmp:
            model.save(tmp, overwrite=True)
        with self.writing(f"{stem}.weights.h5") as tmp:
            model.save_weights(tmp, overwrite=True)

    # -- resume state ------------------------------------------------------------
    def save_checkpoint(self, model_variables, optimizer_variables, meta) -> None:
        """Write the resume state (the epoch's commit point)."""
        arrays = {"meta": np.array(json.dumps(meta, default=_jsonable))}
        for prefix, variables in (("model", model_variables), ("optimizer", optimizer_variables)):
            arrays[f"{prefix}_shapes"] = np.array(_shapes(variables) or [""])
            for i, variable in enumerate(variables):
                arrays[f"{prefix}_{i:05d}"] = _to_numpy(variable)
        with self.writing(CHECKPOINT) as tmp:
            np.savez(tmp, **arrays)

    def load_checkpoint(self, model_variables, optimizer_variables) -> dict | None:
        """Assign the saved state to the given variables; return its metadata (None if absent)."""
        if not self.exists(CHECKPOINT):
            return None
        try:
            with np.load(self.file(CHECKPOINT), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                for prefix, variables in (("model", model_variables), ("optimizer", optimizer_variables)):
                    _check_shapes(self.file(CHECKPOINT), prefix, data, variables)
                    for i, variable in enumerate(variables):
                        variable.assign(data[f"{prefix}_{i:05d}"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, ValueError) and "does not match" in str(err):
                raise
            raise ValueError(
                f"resume checkpoint {self.file(CHECKPOINT)} cannot be read ({err}); it is "
                "damaged. Start over with --force."
            ) from None
        return meta


# Windows locks byte ranges and refuses reads of a locked range: lock one byte far past
# the PID so that a refused training can still read who holds the folder.
_WINDOWS_LOCK_OFFSET = 1 << 20


def _lock_without_waiting(fd):
    """Lock the open file ``fd`` for this process; ``OSError`` if another process holds it."""
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    try:
        import msvcrt
    except ImportError:
        return  # neither call: the PID file is informative only
    os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    finally:
        os.lseek(fd, 0, os.SEEK_SET)


def _try_lock(fd, path):
    try:
        _lock_without_waiting(fd)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):  # not "held elsewhere"
            raise
        with open(path, encoding="utf-8") as handle:
            holder = handle.read().split()
        who = f"process {holder[0]} on {holder[1]}" if len(holder) >= 2 else "another process"
        raise RunFolderBusy(
            f"run folder {os.path.dirname(path)} is in use by a training ({who}, lock file "
            f"{path}); wait for it to finish or choose another --output."
        ) from None


def _shapes(variables):
    # Shapes, not paths: Keras numbers unnamed objects per process (sgd, sgd_1, ...).
    return [f"{tuple(v.shape)}" for v in variables]


def _check_shapes(path, prefix, data, variables):
    saved = [str(p) for p in data[f"{prefix}_shapes"] if str(p)]
    current = _shapes(variables)
    if saved != current:
        first = next(
            (f"variable {i}: {a} vs {b}" for i, (a, b) in enumerate(zip(saved, current)) if a != b),
            f"{len(saved)} vs {len(current)} variables",
        )
        raise ValueError(
            f"resume checkpoint {path} does not match this model's {prefix} state ({first}); "
            "was the run folder made by another model or configuration?"
        )


def _to_numpy(variable):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable))


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return str(value)
