"""Loading and saving weight files with clear errors and atomic writes.

Keras' own loaders either warn and skip, or fail with a message about a variable
path. Here a weights file is first read as a *manifest* (layer name -> variable
shapes) and compared with the model, so a file for another architecture, depth
or head size fails with a ``ValueError`` naming the layers and shapes, before a
single variable is assigned. Only layers are compared: the optimizer state Keras saves
beside them for a compiled model (``save_weights`` after ``fit``) is left out, as
``model.load_weights`` leaves it out for a model that is not compiled. Writes go to a
temporary file in the destination folder and are renamed into place, so a crash never
leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import tempfile
import zipfile

import h5py
import keras

__all__ = [
    "load_weights", "save_weights", "save_model", "load_model_file", "atomic_path", "file_manifest",
    "model_manifest",
]


def model_manifest(model) -> dict[str, list[tuple]]:
    """Layer name -> shapes of its variables, in saving order, for every layer with weights."""
    manifest = {}
    for layer in _leaf_layers(model):
        if layer.weights:
            manifest[layer.name] = [tuple(v.shape) for v in _saved_variables(layer)]
    return manifest


def _saved_variables(layer):
    # Keras saves a layer's own variables as trainable + non-trainable.
    return list(layer.trainable_weights) + list(layer.non_trainable_weights)


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def file_manifest(path) -> dict[str, list[tuple]]:
    """Layer name -> variable shapes stored in a Keras 3 / legacy weights file."""
    path = os.fspath(path)
    try:
        if path.endswith(".keras"):
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as h5:
                return _keras3_manifest(h5)
        with h5py.File(path, "r") as h5:
            if "model_weights" in h5 or "layer_names" in h5.attrs:
                return _legacy_manifest(h5)
            return _keras3_manifest(h5)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"Cannot read weights file {path!r}: {err}. It is not a complete Keras "
            ".weights.h5/.keras/.h5 file (truncated or another format?)."
        ) from None


# Groups Keras 3 writes beside a model's layers: ``optimizer/`` once the model is compiled
# (``model.save_weights`` after ``fit``). They hold no layer weights, so they are not compared.
_NON_LAYER_GROUPS = frozenset({"optimizer"})


def _is_layer_group(group_path):
    """True unless ``group_path`` lies in a model's non-layer group (``optimizer/...``).

    A group named ``optimizer`` right under ``layers/`` is a layer (Keras names layer groups
    after their class), so only a model-level ``optimizer`` group is left out.
    """
    parts = group_path.split("/")
    return not any(
        part in _NON_LAYER_GROUPS and (index == 0 or parts[index - 1] != "layers")
        for index, part in enumerate(parts)
    )


def _keras3_manifest(h5):
    """Layer name -> variable shapes of a Keras 3 ``.weights.h5``, its layer groups only."""
    manifest = {}

    def visit(group_path, obj):
        if not _is_layer_group(group_path):
            return
        if isinstance(obj, h5py.Group) and "vars" in obj and len(obj["vars"]):
            name = obj["vars"].attrs.get("name", group_path.rsplit("/", 1)[-1])
            name = name.decode() if isinstance(name, bytes) else str(name)
            variables = obj["vars"]
            manifest[name] = [tuple(variables[k].shape) for k in sorted(variables, key=int)]

    h5.visititems(visit)
    return manifest


def _legacy_manifest(h5):
    group = h5["model_weights"] if "model_weights" in h5 else h5
    manifest = {}
    for raw in group.attrs["layer_names"]:
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        names = group[name].attrs.get("weight_names", [])
        shapes = [tuple(group[name][w.decode() if isinstance(w, bytes) else w].shape) for w in names]
        if shapes:
            manifest[name] = shapes
    return manifest


def compare_manifests(expected, found, max_lines=8):
    """Human-readable differences between two manifests (empty list if they match)."""
    missing = [n for n in expected if n not in found]
    unexpected = [n for n in found if n not in expected]
    mismatched = [
        f"{n}: model expects {expected[n]}, file has {found[n]}"
        for n in expected
        if n in found and expected[n] != found[n]
    ]
    problems = []
    for title, items in (
        ("shape mismatch", mismatched),
        ("missing from the file", missing),
        ("in the file but not in the model", unexpected),
    ):
        if items:
            shown = "; ".join(items[:max_lines])
            more = f" (+{len(items) - max_lines} more)" if len(items) > max_lines else ""
            problems.append(f"{title} ({len(items)}): {shown}{more}")
    return problems


def load_weights(model, path):
    """Load ``path`` into ``model`` after checking that every layer and shape matches."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"weights must be the path of a .weights.h5/.keras/.h5 file; got {path!r}.")
    path = os.fspath(path)
    found = file_manifest(path)
    expected = model_manifest(model)
    problems = compare_manifests(expected, found)
    if problems:
        hint = _head_hint(expected, found)
        raise ValueError(
            f"Weights file {path!r} does not fit model {model.name!r}: "
            + " | ".join(problems)
            + (f". {hint}" if hint else ". Is it a file for another architecture or depth?")
        )
    model.load_weights(path)
    return model


def _head_hint(expected, found):
    only_head = [n for n in expected if n in found and expected[n] != found[n]]
    if len(only_head) == 1 and len(expected) == len(found):
        name = only_head[0]
        file_classes = found[name][-1][-1] if found[name] and found[name][-1] else None
        return (
            f"Only the head {name!r} differs: the file was saved with {file_classes} "
            f"classes; pass classes={file_classes} (or convert with --classes)."
        )
    return ""


def check_output_path(path, overwrite=False, replace_hint="pass overwrite/--force to replace it"):
    """The folder of the file ``path`` is to become; one clear error for a folder given as
    ``path``, an existing file (unless ``overwrite``) or a missing or blocked folder."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder; give a file name.")
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path!r} already exists; {replace_hint}.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist; create it first"
        raise FileNotFoundError(f"Output folder {folder!r} {what}.")
    return folder


@contextlib.contextmanager
def atomic_path(path, overwrite=False):
    """Yield a temporary path next to ``path``; rename it into place on success.

    Refuses to replace an existing file unless ``overwrite``. On any exception the
    temporary file is removed and ``path`` is left exactly as it was.
    """
    path = os.fspath(path)
    folder = check_output_path(path, overwrite)
    base = os.path.basename(path)
    # Keep the full suffix (.weights.h5, .keras) so Keras accepts the temp name.
    suffix = base[base.index(".") :] if "." in base else ""
    remove_stale_temporaries(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{_HOST}-{os.getpid()}-", suffix=suffix, dir=folder)
    except OSError as err:
        raise type(err)(err.errno, f"cannot write in folder {folder!r}: {err.strerror}") from None
    os.close(fd)
    try:
        yield tmp
        if os.path.isfile(tmp) and os.stat(tmp).st_mode & 0o777 == 0o600:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


_TMP_PREFIX = ".tmp-"
# Host names in temporary names: a process on another machine sharing the folder is never
# mistaken for a dead one here.
_HOST = re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname())[:40] or "host"
_TMP_NAME = re.compile(re.escape(_TMP_PREFIX) + r"(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-")


def remove_stale_temporaries(folder) -> list:
    """Remove the temporary files that killed processes (SIGKILL, power loss) left in ``folder``.

    Only this module's ``.tmp-<host>-<pid>-*`` names of this host whose process is gone are
    removed; a live writer's file is never touched. Returns the removed names.
    """
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TMP_NAME.match(name)
        if not match or match["host"] != _HOST or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, name))
            removed.append(name)
    return removed


def _alive(pid) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: keep its file
    return True


def load_model_file(path, **kwargs):
    """``keras.saving.load_model(path, compile=False)`` with one clear error for a damaged file.

    Keras reports a truncated or foreign ``.keras`` file as "File not found"; here the file is
    first checked to be a complete zip archive with the model's config and weights.
    ``safe_mode`` stays Keras' default (True): no Python lambdas are deserialized.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file {path!r} does not exist.")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"{path!r} is not a readable .keras file ({err}); truncated, empty or another format?"
        ) from None
    missing = {"config.json", "model.weights.h5"} - names
    if missing or damaged:
        problem = f"it lacks {', '.join(sorted(missing))}" if missing else f"{damaged} is corrupted"
        raise ValueError(f"{path!r} is not a complete .keras model file: {problem}.")
    import keras_cnnclassics.models  # noqa: F401  (every family: registers the layers their files name)

    from keras_cnnclassics.applications import deep_graph_recursion

    kwargs.setdefault("compile", False)
    try:
        with deep_graph_recursion():  # a 1,000-layer network maps its graph recursively
            return keras.saving.load_model(path, **kwargs)
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"{path!r} cannot be loaded as a Keras model: {err}") from None


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_weights(model, path, overwrite=False):
    """Atomically write ``model``'s weights to a ``.weights.h5`` file.

    As with ``model.save_weights``, a compiled model's optimizer state is saved too;
    ``weights=`` reads the layers only.
    """
    if not os.fspath(path).endswith(".weights.h5"):
        raise ValueError(f"Weights file name must end in .weights.h5; got {path!r}.")
    with atomic_path(path, overwrite) as tmp:
        model.save_weights(tmp, overwrite=True)
    return path


def save_model(model, path, overwrite=False):
    """Atomically write ``model`` to a ``.keras`` file."""
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"Model file name must end in .keras; got {path!r}.")
    with atomic_path(path, overwrite) as tmp:
        model.save(tmp, overwrite=True)
    return path
