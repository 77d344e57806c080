"""Image folders read from disk a batch at a time, never decoded all at once.

* :func:`list_image_folder` lists ``<folder>/<class>/.../<image>`` with
  ``os.scandir`` and checks every file's header while listing (Pillow's
  ``Image.open`` parses the header only, no pixels are decoded): empty files,
  files in another format and broken headers are skipped and counted then.
* :class:`ImageFiles` stands in for an ``(N, size, size, channels)`` ``uint8``
  array of the listed files: indexing it decodes only the files asked for, the
  way :func:`keras_cnnclassics.images.load_image_file` does (TensorFlow's
  decoders, centre crop, bilinear resize), so memory follows the batch, not the
  folder. It holds the relative paths as bytes (tens of bytes per image).
* A file with a sound header whose body cannot be decoded (a truncated JPEG) is
  found when it is read: it is replaced by the next file of the list that
  decodes, which is the same file whichever worker reads it and in whatever
  order, and it is counted in :attr:`ImageFiles.unreadable`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from keras_cnnclassics.images import image_files, load_image_file

__all__ = ["FolderListing", "ImageFiles", "has_image_header", "list_image_folder"]

# The formats keras.utils.image_dataset_from_directory (TensorFlow's decode_image) reads.
HEADER_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
HEADER_THREADS = 8


def has_image_header(path) -> bool:
    """True if Pillow recognises ``path`` as a JPEG, PNG, GIF or BMP from its header."""
    from PIL import Image

    try:
        with Image.open(path, formats=HEADER_FORMATS):
            return True
    except Image.DecompressionBombError:
        return True  # a sound header of a very large image
    except (OSError, SyntaxError, ValueError, EOFError):
        return False


def class_subfolders(folder) -> list:
    """The visible subfolders of ``folder``, sorted: one per class."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))


@dataclasses.dataclass
class FolderListing:
    """The image files of a class folder tree, in class then path order."""

    root: str
    class_names: list
    paths: np.ndarray  # relative paths, file-system bytes
    labels: np.ndarray  # int32 index into class_names
    counts: dict  # class name -> files with an image suffix (before the header check)
    unreadable: list  # relative paths whose header is not an image's

    def path(self, index) -> str:
        return os.path.join(self.root, os.fsdecode(self.paths[index]))


def list_image_folder(folder, check_headers=True) -> FolderListing:
    """Every image file of every class subfolder; unreadable headers skipped and counted.

    The headers are read by a pool of threads (the reads wait on the disk, not
    on Python).
    """
    root = os.path.abspath(os.fspath(folder))
    class_names = class_subfolders(root)
    found, labels, counts = [], [], {}
    for label, name in enumerate(class_names):
        files = image_files(os.path.join(root, name))
        counts[name] = len(files)
        found += files
        labels += [label] * len(files)
    readable = [True] * len(found)
    if check_headers:
        with ThreadPoolExecutor(HEADER_THREADS) as pool:
            readable = list(pool.map(has_image_header, found))
    relative = [os.path.relpath(path, root) for path in found]
    keep = np.array(readable, dtype=bool)
    return FolderListing(
        root, class_names,
        np.array([os.fsencode(r) for r, ok in zip(relative, readable) if ok], dtype=bytes),
        np.array(labels, dtype="int32")[keep] if found else np.zeros(0, "int32"), counts,
        [r for r, ok in zip(relative, readable) if not ok],
    )


class ImageFiles:
    """Image files decoded when indexed: ``files[indices] -> uint8 (k, size, size, channels)``.

    A numpy-like stand-in (``len``, ``shape``, ``dtype``, integer, slice and
    index-array indexing) for the decoded array it never builds.
    :meth:`head` is the lazy counterpart of ``array[:n]``.
    """

    dtype = np.dtype("uint8")
    ndim = 4

    def __init__(self, root, paths, image_size, channels, unreadable=None):
        self.root, self.paths = root, paths
        self.image_size, self.channels = image_size, channels
        # shared by the reading threads (and by head()); replaced files, by path
        self.unreadable = set() if unreadable is None else unreadable
        self._lock = threading.Lock()

    def __len__(self):
        return len(self.paths)

    @property
    def shape(self):
        return (len(self), self.image_size, self.image_size, self.channels)

    def head(self, n) -> "ImageFiles":
        """The first ``n`` files (reading them counts into the same ``unreadable``)."""
        return ImageFiles(self.root, self.paths[:n], self.image_size, self.channels, self.unreadable)

    def path(self, index) -> str:
        return os.path.join(self.root, os.fsdecode(self.paths[index]))

    def decode(self, index):
        """File ``index`` decoded; ValueError if it cannot be."""
        return load_image_file(self.path(index), self.image_size, self.channels)

    def read(self, index):
        """File ``index`` or, if it cannot be decoded, the next file of the list that can."""
        for offset in range(len(self)):
            position = (index + offset) % len(self)
            try:
                return self.decode(position)
            except ValueError:
                with self._lock:
                    self.unreadable.add(self.path(position))
        raise ValueError(f"none of the {len(self)} image files under {self.root!r} can be decoded.")

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.read(int(key))
        indices = range(*key.indices(len(self))) if isinstance(key, slice) else np.asarray(key)
        if not len(indices):
            return np.zeros((0, *self.shape[1:]), self.dtype)
        return np.stack([self.read(int(i)) for i in indices])


class Prefetcher:
    """``Prefetcher(function, workers, depth, count)(i) -> function(i)``, with
    ``function(i + 1)`` to ``function(i + depth)`` (below ``count``, if given)
    already under way in ``workers`` threads.

    ``function`` must be pure (its result depends on its index alone): then the
    threads change how soon a result is ready, never what it is, in whatever
    order the indices are asked for. At most ``depth + 1`` results exist at once.
    """

    def __init__(self, function, workers, depth, count=None):
        self.function, self.workers, self.depth, self.count = function, workers, depth, count
        self._pending = {}
        self._pool = None
        self._lock = threading.Lock()

    def _submit(self, index):
        return self._pool.submit(self.function, index)

    def __call__(self, index):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cnnclassics-data")
            future = self._pending.pop(index, None) or self._submit(index)
            for stale in [i for i in self._pending if not index < i <= index + self.depth]:
                self._pending.pop(stale).cancel()
            end = index + 1 + self.depth
            for ahead in range(index + 1, end if self.count is None else min(end, self.count)):
                if ahead not in self._pending:
                    self._pending[ahead] = self._submit(ahead)
        return future.result()

    def close(self):
        """Stop the threads (results under way are dropped); a later call starts them again."""
        with self._lock:
            pool, self._pool, self._pending = self._pool, None, {}
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def __getstate__(self):  # a copy (another process) starts without the threads
        return {"function": self.function, "workers": self.workers, "depth": self.depth,
                "count": self.count}

    def __setstate__(self, state):
        self.__init__(**state)
