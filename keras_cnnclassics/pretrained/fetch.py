"""The original file of a :class:`~keras_cnnclassics.pretrained.catalogue.WeightSource`:
found in a cache, or downloaded and verified.

Caches looked in first, without network: this package's downloads folder
(``<cache>/downloads``, see :func:`cache_dir`), a mirror folder
(``CNNCLASSICS_WEIGHTS_MIRROR``), torch's hub cache (``$TORCH_HOME/hub/checkpoints``,
where ``torch.hub`` and timm keep the files they download) and, for ``hf://`` files,
the Hugging Face cache (``HF_HUB_CACHE``/``HF_HOME``).

Downloads use the ecosystem's tools: ``keras.utils.get_file`` for ``http(s)://`` (its
progress bar; every socket operation times out after ``CNNCLASSICS_DOWNLOAD_TIMEOUT``
seconds, default 60, so a stalled server fails instead of hanging) and
``huggingface_hub.hf_hub_download`` for ``hf://`` (it honours ``HF_ENDPOINT``,
``HF_HUB_OFFLINE`` and ``HF_TOKEN``). A download lands in a private temporary folder,
is checked (not an HTML page; the sha256 or its prefix when one is known, as
``torch.hub`` checks torchvision's file names) and is kept only once the caller's
conversion succeeded; on any failure it is deleted and nothing is cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import urllib.parse

__all__ = ["DownloadError", "cache_dir", "downloads_dir", "hf_hub_cache", "original", "torch_hub_checkpoints",
           "writable_folder"]

ENV_CACHE = "CNNCLASSICS_CACHE"
ENV_TIMEOUT = "CNNCLASSICS_DOWNLOAD_TIMEOUT"
ENV_MIRROR = "CNNCLASSICS_WEIGHTS_MIRROR"
ENV_OFFLINE = "CNNCLASSICS_OFFLINE"
DEFAULT_TIMEOUT = 60.0
_TRUE = ("1", "true", "yes", "on")


class DownloadError(OSError):
    """A file that could not be downloaded or failed its check (message: one line)."""


def _home(variable, *default):
    value = os.environ.get(variable)
    return os.path.expanduser(value) if value else os.path.join(*default)


def cache_dir() -> str:
    """``$CNNCLASSICS_CACHE``, else ``$KERAS_HOME/cnnclassics`` (``~/.keras/cnnclassics``)."""
    if os.environ.get(ENV_CACHE):
        return os.path.expanduser(os.environ[ENV_CACHE])
    return os.path.join(_home("KERAS_HOME", os.path.expanduser("~"), ".keras"), "cnnclassics")


def downloads_dir() -> str:
    """Where downloaded originals are kept: ``<cache>/downloads``."""
    return os.path.join(cache_dir(), "downloads")


def torch_hub_checkpoints() -> str:
    """``torch.hub.get_dir()/checkpoints``, computed without importing torch."""
    xdg = _home("XDG_CACHE_HOME", os.path.expanduser("~"), ".cache")
    return os.path.join(_home("TORCH_HOME", xdg, "torch"), "hub", "checkpoints")


def hf_hub_cache() -> str:
    """The Hugging Face Hub cache folder, read from the environment at call time."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return os.path.expanduser(os.environ[variable])
    xdg = _home("XDG_CACHE_HOME", os.path.expanduser("~"), ".cache")
    return os.path.join(_home("HF_HOME", xdg, "huggingface"), "hub")


def _flag(variable) -> bool:
    return os.environ.get(variable, "").strip().lower() in _TRUE


def timeout() -> float:
    """Seconds a socket operation of a download may stall (``CNNCLASSICS_DOWNLOAD_TIMEOUT``)."""
    text = os.environ.get(ENV_TIMEOUT, "")
    try:
        value = float(text) if text else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"{ENV_TIMEOUT}={text!r} must be a number of seconds.") from None
    if not value > 0:
        raise ValueError(f"{ENV_TIMEOUT}={text!r} must be a positive number of seconds.")
    return value


def is_hf(source) -> bool:
    return source.url.lower().startswith("hf://")


def download_name(source) -> str:
    """The file's name in the downloads folder: the published name, or for a user's URL
    the name prefixed with a digest of the URL (two URLs may end in the same name)."""
    if source.entry is not None:
        return source.file
    return f"url-{hashlib.sha256(source.url.encode()).hexdigest()[:12]}-{source.file}"


def _mirror():
    return os.environ.get(ENV_MIRROR, "").strip()


def _local_candidates(source):
    yield os.path.join(downloads_dir(), download_name(source))
    mirror = _mirror()
    if mirror and "://" not in mirror:
        yield os.path.join(os.path.expanduser(mirror), source.file)
    if source.entry is not None and not is_hf(source):
        yield os.path.join(torch_hub_checkpoints(), source.file)


def cached_original(source):
    """The path of ``source``'s original file in a cache (no network), or None."""
    for path in _local_candidates(source):
        if os.path.isfile(path):
            return path
    return _hf_cached(source) if is_hf(source) else None


@contextlib.contextmanager
def original(source):
    """Yield the path of ``source``'s verified original file.

    A cached file is used as it is. A downloaded one is kept in :func:`downloads_dir`
    (or the Hugging Face cache) only when the ``with`` block succeeds.
    """
    path = cached_original(source)
    if path is not None:
        yield path
        return
    if _offline(source):
        raise DownloadError(_offline_message(source, "downloads are switched off"))
    download = _hf_download if is_hf(source) else _http_download
    with download(source) as path:
        yield path


def _offline(source):
    return _flag(ENV_OFFLINE) or (is_hf(source) and _flag("HF_HUB_OFFLINE"))


def _offline_message(source, reason):
    """One line: what failed, and where to put the file by hand."""
    if is_hf(source):
        place = f"the Hugging Face cache {hf_hub_cache()} (huggingface-cli download on a connected machine)"
    else:
        place = f"{os.path.join(downloads_dir(), download_name(source))}"
        if source.entry is not None:
            place += f" or {os.path.join(torch_hub_checkpoints(), source.file)}"
    return (
        f"Cannot download {source.url} ({reason}). Without network, put the file at {place}; "
        f"`cnnclassics weights download {source.model}` on a connected machine fills a folder to copy "
        f"to {cache_dir()}."
    )


# ------------------------------------------------------------------------- http(s)


def _origin(source):
    """The URL to fetch: a published file comes from ``CNNCLASSICS_WEIGHTS_MIRROR`` when
    that is an http(s) base URL."""
    mirror = _mirror()
    if source.entry is not None and "://" in mirror:
        return f"{mirror.rstrip('/')}/{urllib.parse.quote(source.file)}"
    return source.url


def writable_folder(folder, missing="this file"):
    """``folder``, created if needed; one clear error when it cannot be written (a
    read-only cache that lacks ``missing``)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"Cannot create the cache folder {folder!r} ({err.strerror}); set {ENV_CACHE} "
                            "to a writable folder.") from None
    if not os.access(folder, os.W_OK):
        raise DownloadError(f"The cache folder {folder!r} is read-only and lacks {missing}; set {ENV_CACHE} "
                            "to a writable folder, or fill it where it is writable (`cnnclassics weights "
                            "download` on a connected machine).")
    return folder


@contextlib.contextmanager
def _http_download(source):
    folder = writable_folder(downloads_dir())
    work = tempfile.mkdtemp(prefix=f".download-{os.getpid()}-", dir=folder)
    try:
        path = _get_file(source, work)
        check_file(path, source)
        yield path
        os.replace(path, os.path.join(folder, download_name(source)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _get_file(source, folder):
    """``keras.utils.get_file`` into ``folder`` with every socket operation timed out."""
    import keras

    url, seconds = _origin(source), timeout()
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        return keras.utils.get_file(fname=download_name(source), origin=url, cache_dir=folder, cache_subdir="")
    except Exception as err:  # noqa: BLE001 - get_file raises a bare Exception for HTTP/URL errors
        reason = _reason(err, seconds)
        raise DownloadError(_offline_message(source, reason) if url == source.url else
                            f"Cannot download {url} ({reason}).") from None
    finally:
        socket.setdefaulttimeout(previous)


def _reason(err, seconds):
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, TimeoutError) or "timed out" in text:
        return f"no data for {seconds:g} s: timed out; set {ENV_TIMEOUT} to wait longer"
    return text.replace("URL fetch failure on ", "")


# ------------------------------------------------------------------------- checks


def sha256_of(path, chunk=2**20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_file(path, source):
    """Refuse an HTML/text page or a file whose sha256 does not start with ``source.sha256``."""
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip()
    if not head or head[:1] == b"<" or head[:1] == b"{" and b"error" in head.lower():
        what = "an empty file" if not head else "an HTML/text page (an error or login page?)"
        raise DownloadError(f"{source.url} sent {what} instead of a weights file; nothing was cached.")
    if source.sha256:
        digest = sha256_of(path)
        if not digest.startswith(source.sha256):
            raise DownloadError(
                f"{source.url}: sha256 {digest[:16]}... does not match the expected {source.sha256[:16]}... "
                "(a truncated, corrupted or replaced file); it was deleted and nothing was cached."
            )


# ------------------------------------------------------------------------- Hugging Face


def hf_location(source):
    """``(repo_id, filename, revision)`` of ``hf://org/repo[@revision]/path/to/file``."""
    parts = urllib.parse.urlsplit(source.url)
    repo, _, path = parts.path.lstrip("/").partition("/")
    repo, _, revision = repo.partition("@")
    return f"{parts.netloc}/{repo}", path, revision or None


def _hf_arguments(source):
    repo_id, filename, revision = hf_location(source)
    from keras_cnnclassics import __version__

    return dict(repo_id=repo_id, filename=filename, revision=revision, cache_dir=hf_hub_cache(),
                endpoint=os.environ.get("HF_ENDPOINT") or None,
                library_name="keras-cnnclassics", library_version=__version__)


def _hf_download_function():
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise DownloadError("Downloading from the Hugging Face Hub needs huggingface_hub: "
                            "pip install huggingface_hub (or keras-cnnclassics[pretrained]).") from None
    return hf_hub_download


def _hf_cached(source):
    try:
        return _hf_download_function()(**_hf_arguments(source), local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the cache (or no huggingface_hub): download instead
        return None


@contextlib.contextmanager
def _hf_download(source):
    download = _hf_download_function()
    try:
        path = download(**_hf_arguments(source), etag_timeout=timeout())
    except Exception as err:  # noqa: BLE001 - huggingface_hub's errors are many classes
        raise DownloadError(_offline_message(source, " ".join(str(err).split())[:300])) from None
    try:
        check_file(path, source)
        yield path
    except BaseException:
        _forget_hf_file(path)
        raise


def _forget_hf_file(path):
    """Remove a file downloaded into the Hugging Face cache (its link and its blob)."""
    blob = os.path.realpath(path)
    for name in {path, blob}:
        with contextlib.suppress(OSError):
            os.remove(name)
