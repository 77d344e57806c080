"""Published weights (``weights="imagenet"``, tags, URLs): download, verification, cache.

Nothing here reaches the internet: a web server on 127.0.0.1 (:class:`LoopbackServer`)
serves random-initialised torchvision ResNet-18 and timm ResNetV2-18 checkpoints saved
as their libraries publish them (``torch.save`` state dict; ``model.safetensors`` in a
Hub repo), and :func:`refuse_internet` makes any other connection fail at once. Every
test gets its own ``KERAS_HOME``, ``TORCH_HOME`` and ``HF_HOME`` (:func:`caches`).
The published table is compared with the installed torchvision and timm.
"""

from __future__ import annotations

import copy
import hashlib
import http.server
import io
import json
import os
import runpy
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import keras
import keras_cnnclassics as kc
from keras_cnnclassics import cli, pretrained
from keras_cnnclassics.pretrained import catalogue, fetch, store
from keras_cnnclassics.registry import all_specs, get_spec, model_info

from support.parity_tolerance import assert_logits_close, calibration_images, condition_batchnorm
from support.reference import require, torch_logits, torch_reference
from test_cli_success import NO_TORCH as HIDE_TORCH  # torch, torchvision and timm look not installed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Service unavailable</h1></body></html>\n"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
TIMM_REPO = "timm/resnetv2_18.ra4_e3600_r224_in1k"  # preact_resnet18's default tag on the Hub


# ----------------------------------------------------------------------------------
# A web server on 127.0.0.1, and no other network
# ----------------------------------------------------------------------------------


class LoopbackServer:
    """Serves ``files[path] = bytes`` from a thread; ``behaviour[path]`` misbehaves on purpose:
    ``hang`` (never answers), ``html`` (an HTML page, status 200), ``html404`` (an error page),
    ``truncate`` (announces the full length, sends half, closes). Hub paths
    ``/<org>/<repo>/resolve/<revision>/<file>`` answer as the Hugging Face Hub does for
    ``hf_hub_download`` (``X-Repo-Commit``, ``ETag`` = sha256, length). ``requests``: paths asked."""

    def __init__(self):
        self.files, self.behaviour, self.requests = {}, {}, []
        self.released = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def add_hub_file(self, repo_id, filename, data):
        self.files[f"hub:{repo_id}/{filename}"] = data

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(body=False)

            def do_GET(self):
                self.answer(body=True)

            def answer(self, body):
                path = self.path.split("?", 1)[0]
                owner.requests.append(path)
                parts = path.lstrip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self.hub(f"{parts[0]}/{parts[1]}", "/".join(parts[4:]), body)
                behaviour, data = owner.behaviour.get(path), owner.files.get(path)
                if behaviour == "hang":
                    owner.released.wait(60)
                elif behaviour in ("html", "html404") or data is None:
                    self.send(200 if behaviour == "html" else 404, HTML_PAGE, body, "text/html")
                elif behaviour == "truncate":
                    self.headers_only(200, len(data))
                    self.wfile.write(data[: len(data) // 2])
                    self.close_connection = True
                else:
                    self.send(200, data, body)

            def hub(self, repo_id, filename, body):
                data = owner.files.get(f"hub:{repo_id}/{filename}")
                if data is None:
                    return self.send(404, b"", body, extra={"X-Error-Code": "EntryNotFound"})
                self.send(200, data, body, extra={"X-Repo-Commit": hashlib.sha1(repo_id.encode()).hexdigest(),
                                                  "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})

            def headers_only(self, status, length, content_type="application/octet-stream", extra=None):
                self.send_response(status)
                for key, value in {"Content-Type": content_type, "Content-Length": str(length),
                                   **(extra or {})}.items():
                    self.send_header(key, value)
                self.end_headers()

            def send(self, status, data, body, content_type="application/octet-stream", extra=None):
                self.headers_only(status, len(data), content_type, extra)
                if body:
                    self.wfile.write(data)

        return Handler


def refuse_internet(monkeypatch):
    """Connections and name lookups beyond loopback raise at once within the test."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"test: no network beyond loopback (asked for {address[0]})")
        return connect(sock, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host is not None and host not in LOOPBACK:
            raise socket.gaierror(f"test: no name lookup beyond loopback (asked for {host})")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)


@pytest.fixture
def server():
    running = LoopbackServer()
    yield running
    running.stop()


class Caches:
    """The test's own cache folders (``KERAS_HOME``, ``TORCH_HOME``, ``HF_HOME``)."""

    def __init__(self, root):
        self.root = root
        self.keras, self.torch, self.hf = root / "keras", root / "torch", root / "hf"

    def files(self):
        """Every file below the cache folders (Keras' own keras.json aside)."""
        return sorted(os.path.relpath(os.path.join(d, f), self.root) for d, _, names in os.walk(self.root)
                      for f in names if f != "keras.json")

    def converted(self):
        return [f for f in self.files() if f.endswith(".weights.h5")]


@pytest.fixture
def caches(tmp_path, monkeypatch):
    for variable in ("CNNCLASSICS_CACHE", "CNNCLASSICS_WEIGHTS_MIRROR", "CNNCLASSICS_OFFLINE", "HF_ENDPOINT",
                     "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    folders = Caches(tmp_path / "caches")
    monkeypatch.setenv("KERAS_HOME", str(folders.keras))
    monkeypatch.setenv("TORCH_HOME", str(folders.torch))
    monkeypatch.setenv("HF_HOME", str(folders.hf))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "caches" / "xdg"))
    monkeypatch.setenv(fetch.ENV_TIMEOUT, "20")
    # The logit check of each conversion against torchvision/timm is tests/tools/test_convert.py's subject;
    # here it runs once (the URL test) and the tests compare logits themselves.
    monkeypatch.setenv(store.ENV_VERIFY, "0")
    refuse_internet(monkeypatch)
    try:  # no user-agent telemetry lookups by huggingface_hub while building request headers
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
    except ImportError:
        pass
    return folders


# ----------------------------------------------------------------------------------
# Random-initialised checkpoints saved as published, and their reference logits
# ----------------------------------------------------------------------------------


class Published:
    """A checkpoint's bytes, sha256, published file name and its torch model."""

    def __init__(self, model, data, file):
        self.model, self.data, self.file = model, data, file
        self.sha256 = hashlib.sha256(data).hexdigest()

    def logits(self, x):
        return torch_logits(self.model, x)


def _conditioned(reference):
    return condition_batchnorm(torch_reference(reference), calibration_images(224))


@pytest.fixture(scope="module")
def resnet18():
    """torchvision's ResNet-18, ``torch.save``d under a torch.hub name (``resnet18-<sha8>.pth``)."""
    torch = require("torch")
    model = _conditioned("torchvision:resnet18")
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    data = buffer.getvalue()
    return Published(model, data, f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth")


@pytest.fixture(scope="module")
def resnetv2_18():
    """timm's ResNetV2-18 as ``model.safetensors`` of its Hub repo."""
    require("timm")
    from safetensors.torch import save

    model = _conditioned("timm:resnetv2_18")
    return Published(model, save({k: v.contiguous() for k, v in model.state_dict().items()}), "model.safetensors")


def images(seed=1):
    return np.random.default_rng(seed).standard_normal((2, 224, 224, 3)).astype("float32")


def logits(model, x):
    return np.asarray(model.predict(x, verbose=0))


@pytest.fixture
def published_resnet18(monkeypatch, resnet18):
    """The table with resnet18's IMAGENET1K_V1 file replaced by the random checkpoint (same URL
    folder, its own hash in the name): ``weights="imagenet"`` then means this file."""
    table = copy.deepcopy(catalogue.table())
    info = table["models"]["resnet18"]
    entry = info["tags"]["imagenet1k_v1"]
    entry.update(url=entry["url"].rsplit("/", 1)[0] + "/" + resnet18.file, file=resnet18.file,
                 sha256_prefix=resnet18.sha256[:8])
    info["default"] = "imagenet1k_v1"
    monkeypatch.setattr(catalogue, "table", lambda: table)
    return entry


def one_line_error(excinfo, *fragments):
    message = str(excinfo.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


# ----------------------------------------------------------------------------------
# End to end
# ----------------------------------------------------------------------------------


def test_url_checkpoint_gives_torchvisions_logits_then_loads_from_the_cache(caches, server, resnet18,
                                                                             monkeypatch, capsys):
    monkeypatch.delenv(store.ENV_VERIFY)
    server.files["/" + resnet18.file] = resnet18.data
    url = f"{server.base}/{resnet18.file}#sha256={resnet18.sha256}"
    x = images()
    assert_logits_close(logits(kc.ResNet18(weights=url, classifier_activation=None), x), resnet18.logits(x))
    assert "verified against torchvision:resnet18" in capsys.readouterr().err
    assert caches.files() == sorted([
        os.path.join("keras", "cnnclassics", "downloads", fetch.download_name(catalogue.resolve("resnet18", url))),
        *caches.converted()]) and len(caches.converted()) == 1
    server.stop()  # no network from here on
    again = kc.get_model("resnet18", weights=url, classifier_activation=None)
    assert_logits_close(logits(again, x), resnet18.logits(x))
    assert server.requests == ["/" + resnet18.file]


def test_imagenet_tag_from_a_mirror_checks_the_hash_in_the_file_name(caches, server, resnet18,
                                                                      published_resnet18, monkeypatch):
    monkeypatch.setenv(fetch.ENV_MIRROR, server.base)
    server.files["/" + resnet18.file] = resnet18.data[:-1] + bytes([resnet18.data[-1] ^ 1])  # one bit off
    with pytest.raises(OSError) as excinfo:
        kc.ResNet18(weights="imagenet")
    one_line_error(excinfo, "does not match the expected", resnet18.sha256[:8], "nothing was cached")
    assert caches.files() == []
    server.files["/" + resnet18.file] = resnet18.data
    model = kc.ResNet18(weights="imagenet", classifier_activation=None)
    assert_logits_close(logits(model, images()), resnet18.logits(images()))


def test_torch_hub_cache_serves_published_weights_offline_and_heads_derive(caches, resnet18,
                                                                           published_resnet18, monkeypatch):
    hub = caches.torch / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / resnet18.file).write_bytes(resnet18.data)
    monkeypatch.setenv(fetch.ENV_OFFLINE, "1")
    x = images()
    assert_logits_close(logits(kc.ResNet18(weights="imagenet1k_v1", classifier_activation=None), x),
                        resnet18.logits(x))
    assert not (caches.keras / "cnnclassics" / "downloads").exists()  # used in place
    (hub / resnet18.file).unlink()  # heads and backbones now come from the converted file alone
    torch = require("torch")
    resnet18.model.fc, head = torch.nn.Identity(), resnet18.model.fc
    try:
        features = resnet18.logits(x)
    finally:
        resnet18.model.fc = head
    backbone = kc.ResNet18(weights="imagenet", include_top=False, pooling="avg")
    np.testing.assert_allclose(logits(backbone, x), features, rtol=1e-4, atol=1e-4 * np.abs(features).max())
    ten = kc.ResNet18(classes=10, weights=pretrained.weights_file("resnet18", classes=10))
    assert ten.output_shape == (None, 10)
    np.testing.assert_array_equal(ten.get_layer("layer4_1_conv2").get_weights()[0],
                                  backbone.get_layer("layer4_1_conv2").get_weights()[0])
    assert [f.rsplit("-", 2)[1] for f in caches.converted()] == ["notop", "top", "top10"]
    _read_only_cache_serves_it(caches)


def _read_only_cache_serves_it(caches):
    """A read-only cache folder that holds the converted file serves it, and nothing is written."""
    before = caches.files()
    folders = [caches.root / d for d, _, _ in os.walk(caches.root)]
    for folder in folders:
        folder.chmod(0o555)
    try:
        assert kc.ResNet18(weights="imagenet").output_shape == (None, 1000)
        assert caches.files() == before
    finally:
        for folder in folders:
            folder.chmod(0o755)


@pytest.mark.slow  # ~15 s: one backend per run in the default tier, every backend in --full
def test_hf_endpoint_serves_a_timm_tag_end_to_end(caches, server, resnetv2_18, monkeypatch):
    server.add_hub_file(TIMM_REPO, "model.safetensors", resnetv2_18.data)
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    x = images()
    model = kc.get_model("preact_resnet18", weights="imagenet", classifier_activation=None)
    assert_logits_close(logits(model, x), resnetv2_18.logits(x))
    assert any(f.startswith(os.path.join("hf", "hub", "models--timm--resnetv2_18")) for f in caches.files())
    server.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for converted in caches.converted():
        os.remove(caches.root / converted)  # converted again from the Hugging Face cache, offline
    again = kc.get_model("preact_resnet18", weights="ra4_e3600_r224_in1k", classifier_activation=None)
    assert_logits_close(logits(again, x), resnetv2_18.logits(x))


# ----------------------------------------------------------------------------------
# Downloads that fail leave nothing behind
# ----------------------------------------------------------------------------------


def _code_pickle(marker):
    torch = require("torch")

    class RunsCode:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(1), "payload": RunsCode()}, buffer)
    return buffer.getvalue()


BAD_DOWNLOADS = {
    "wrong hash": (None, "does not match the expected"),
    "truncated": ("truncate", "retrieval incomplete"),
    "html page": ("html", "HTML/text page"),
    "html error page": ("html404", "404"),
    "stalled server": ("hang", "timed out"),
    "pickle with code": ("code", "do not convert"),
}


@pytest.mark.parametrize("case", BAD_DOWNLOADS)
def test_a_bad_download_is_one_clear_error_and_caches_nothing(case, caches, server, resnet18, tmp_path,
                                                              monkeypatch):
    behaviour, message = BAD_DOWNLOADS[case]
    marker = tmp_path / "code ran"
    data = _code_pickle(marker) if behaviour == "code" else resnet18.data
    server.files["/" + resnet18.file] = data
    server.behaviour["/" + resnet18.file] = behaviour
    digest = "0" * 64 if case == "wrong hash" else hashlib.sha256(data).hexdigest()
    url = f"{server.base}/{resnet18.file}" + ("" if behaviour in ("html", "code") else f"#sha256={digest}")
    monkeypatch.setenv(fetch.ENV_TIMEOUT, "1")
    with pytest.raises((OSError, ValueError)) as excinfo:
        kc.ResNet18(weights=url)
    one_line_error(excinfo, message, resnet18.file)
    assert caches.files() == [] and not marker.exists()


def test_offline_without_a_cached_file_names_the_url_and_the_folders(caches, monkeypatch):
    monkeypatch.setenv(fetch.ENV_OFFLINE, "1")
    url = published_url = pretrained.published_weights("resnet18")["imagenet1k_v1"]["url"]
    with pytest.raises(OSError) as excinfo:
        kc.ResNet18(weights="imagenet1k_v1")
    one_line_error(excinfo, url, str(caches.keras / "cnnclassics" / "downloads"),
                   str(caches.torch / "hub" / "checkpoints" / published_url.rsplit("/", 1)[1]),
                   "cnnclassics weights download resnet18")
    monkeypatch.delenv(fetch.ENV_OFFLINE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as excinfo:
        kc.get_model("preact_resnet18", weights="imagenet")
    one_line_error(excinfo, f"hf://{TIMM_REPO}/model.safetensors", str(caches.hf / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(OSError) as excinfo:  # the network is down: the same advice
        kc.ResNet18(weights="imagenet")
    one_line_error(excinfo, "beyond loopback", str(caches.keras / "cnnclassics" / "downloads"))
    assert caches.files() == []


# ----------------------------------------------------------------------------------
# Requests refused before anything is built or downloaded
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, fragments", [
    ({"name": "lenet5", "weights": "imagenet"}, ["lenet5 has no published weights", "resnet50", "vgg16"]),
    ({"name": "resnet18", "weights": "imagenet1k_v3"}, ["unknown weights", "imagenet1k_v1"]),
    ({"name": "resnet50", "weights": "imagenet", "classes": 10},
     ["1000-class head", "include_top=False", "weights_file('resnet50', 'imagenet', classes=10)"]),
    ({"name": "resnet18", "weights": "https://example.org/r.pth#md5=00"}, ["#sha256=<hex digest>"]),
    ({"name": "resnet18", "weights": "https://example.org/"}, ["names no file"]),
    ({"name": "resnet18", "weights": "hf://timm"}, ["hf://<org>/<repo>/<file>"]),
    ({"name": "lenet5", "weights": "https://example.org/lenet.pth"}, ["no torchvision/timm counterpart"]),
])
def test_requests_that_cannot_be_served_are_one_line_errors(kwargs, fragments, caches):
    name = kwargs.pop("name")
    with pytest.raises((ValueError, OSError)) as excinfo:
        kc.get_model(name, **kwargs)
    one_line_error(excinfo, *fragments)
    assert caches.files() == []


def test_published_options_and_head_rules():
    googlenet = get_spec("googlenet")
    assert pretrained.weight_options(googlenet, "imagenet", {}) == {"transform_input": True}
    assert pretrained.weight_options(googlenet, "imagenet", {"transform_input": False}) == {"transform_input": False}
    assert pretrained.weight_options(googlenet, None, {}) == {}
    assert kc.ResNet18(weights=None).output_shape == (None, 1000)  # the default stays None
    assert catalogue.is_request("imagenet") and catalogue.is_request("in1k")
    assert not catalogue.is_request("model.weights.h5") and not catalogue.is_request("runs/best")


def test_model_info_lists_each_tag_with_source_hash_metrics_and_preprocessing():
    weights = model_info("resnet50")["weights"]
    assert set(weights) == {"imagenet1k_v1", "imagenet1k_v2"} and weights["imagenet1k_v2"]["default"]
    v2 = weights["imagenet1k_v2"]
    assert v2["url"].endswith(f"-{v2['sha256_prefix']}.pth") and (v2["top1"], v2["top5"]) == (80.858, 95.434)
    assert v2["preprocessing"]["resize"] == 232 and v2["input_size"] == 224
    inception = model_info("inception_v3")["weights"]["imagenet1k_v1"]["preprocessing"]
    assert (inception["resize"], inception["crop"]) == (342, 299)
    assert model_info("lenet5")["weights"] == {}


# ----------------------------------------------------------------------------------
# The table against torchvision and timm; preprocessing against torchvision's transforms
# ----------------------------------------------------------------------------------


def test_table_equals_what_the_installed_torchvision_and_timm_publish():
    require("torchvision")
    require("timm")
    from timm.models import get_pretrained_cfg
    from torchvision.models import get_model_weights

    generator = runpy.run_path(os.path.join(ROOT, "tools", "make_pretrained_table.py"))
    assert generator["build_table"]() == catalogue.table()
    for spec in (s for s in all_specs() if s.reference):
        library, name = spec.reference.split(":", 1)
        weights = pretrained.published_weights(spec.name)
        default = next((tag for tag, entry in weights.items() if entry["default"]), None)
        if library == "torchvision":
            enum = get_model_weights(name)
            assert weights[default]["url"] == enum.DEFAULT.url and default == enum.DEFAULT.name.lower()
            assert all(entry["url"].endswith(f"-{entry['sha256_prefix']}.pth") for entry in weights.values())
        elif get_pretrained_cfg(name).has_weights:
            cfg = get_pretrained_cfg(name)
            where = f"hf://{cfg.hf_hub_id}/model.safetensors" if cfg.hf_hub_id else cfg.url
            assert default == cfg.tag and weights[default]["url"] == where
        else:
            assert weights == {}, spec.name


@pytest.mark.parametrize("name", ["resnet50", "inception_v3"])
def test_preprocessing_matches_torchvisions_transforms(name):
    require("torchvision")
    import torch
    from torchvision.models import get_model_weights

    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    expected = get_model_weights(name).DEFAULT.transforms()(torch.from_numpy(image).permute(2, 0, 1))
    got = pretrained.preprocessing(name)(image)[0]
    assert got.shape == tuple(expected.permute(1, 2, 0).shape)
    difference = np.abs(got - expected.permute(1, 2, 0).numpy())
    one_level = 1 / 255 / min(pretrained.published_weights(name)["imagenet1k_v1"]["preprocessing"]["std"])
    assert difference.max() <= one_level * 1.01 and difference.mean() < 0.01 * one_level


# ----------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------


def test_weights_list_prints_tags_metrics_and_the_default(capsys):
    assert cli.main(["weights", "list", "resnet5*"]) == 0
    out = capsys.readouterr().out
    assert "imagenet1k_v2 *" in out and "80.86" in out and "232/224" in out and "resnet18" not in out
    assert cli.main(["weights", "list", "--json", "preact*"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["model"] for row in rows} == {"preact_resnet18", "preact_resnet34", "preact_resnet50",
                                              "preact_resnet101"}


@pytest.mark.slow  # ~15 s: one backend per run in the default tier, every backend in --full
def test_weights_download_fills_a_folder_and_predict_prints_top5(caches, server, resnet18, published_resnet18,
                                                                 tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(fetch.ENV_MIRROR, server.base)
    server.files["/" + resnet18.file] = resnet18.data
    folder = tmp_path / "to copy"
    assert cli.main(["weights", "download", "resnet18", "--dir", str(folder)]) == 0
    printed = capsys.readouterr().out.splitlines()  # the files only: progress and advice go to stderr
    assert len(printed) == 2 and all(os.path.dirname(p) == str(folder) for p in printed)
    assert sorted(os.listdir(folder)) == sorted(["downloads", *map(os.path.basename, printed)])
    server.stop()
    monkeypatch.setenv(fetch.ENV_CACHE, str(folder))  # the copied folder, offline
    image = tmp_path / "photo.png"
    keras.utils.save_img(image, np.random.default_rng(2).integers(0, 256, (240, 320, 3)).astype("uint8"))
    assert cli.main(["predict", "--model", "resnet18", str(image), "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert len(top) == 5 and all(row["class"] and 0 <= row["probability"] <= 1 for row in top)
    from keras_cnnclassics.imagenet import imagenet_classes

    assert {row["class"] for row in top} <= {name for _, name in imagenet_classes()}


# ----------------------------------------------------------------------------------
# Other processes: no torch, two converting at once
# ----------------------------------------------------------------------------------

NO_TORCH = HIDE_TORCH + """
import keras_cnnclassics as kc, numpy as np
out, x, url = sys.argv[1:]
for name, weights in (("preact_resnet18", "imagenet"), ("resnet18", url)):
    model = kc.get_model(name, weights=weights, classifier_activation=None)
    np.save(f"{out}-{name}.npy", np.asarray(model.predict(np.load(x), verbose=0)))
assert "torch" not in sys.modules
"""


def _run_python(code, *args, env):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_processes_without_torch_convert_and_two_at_once_share_the_cache(caches, server, resnetv2_18, resnet18,
                                                                         tmp_path):
    """``.safetensors`` from the Hub and a torchvision ``.pth`` from a URL, converted by two
    processes at once where torch, torchvision and timm are not installed."""
    server.add_hub_file(TIMM_REPO, "model.safetensors", resnetv2_18.data)
    server.files["/" + resnet18.file] = resnet18.data
    url = f"{server.base}/{resnet18.file}#sha256={resnet18.sha256}"
    backend = "jax" if keras.backend.backend() == "torch" else keras.backend.backend()  # Keras needs no torch
    env = {**os.environ, "HF_ENDPOINT": server.base, "KERAS_BACKEND": backend, "HF_HUB_DISABLE_TELEMETRY": "1"}
    x = images()
    np.save(tmp_path / "x.npy", x)
    runs = [_run_python(NO_TORCH, tmp_path / f"out{i}", tmp_path / "x.npy", url, env=env) for i in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err[-3000:]
    for i in range(2):
        assert_logits_close(np.load(tmp_path / f"out{i}-preact_resnet18.npy"), resnetv2_18.logits(x))
        assert_logits_close(np.load(tmp_path / f"out{i}-resnet18.npy"), resnet18.logits(x))
    assert len(caches.converted()) == 2 and not [f for f in caches.files() if ".tmp" in f or ".download" in f]
