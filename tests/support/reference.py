"""Reference implementations (torch, torchvision, timm) for the parity tests.

Every test that needs a library outside Keras gets it through :func:`require`: a missing
or broken library skips the test on a developer's machine, and fails it when references
are required (``python tests/run.py --require-references``, as CI runs, or
``CNNCLASSICS_REQUIRE_REFERENCES=1``), so a broken reference can never turn parity
checks into silent skips. The pinned versions are in ``requirements-reference.txt``.

torchvision from the package index is a CUDA build whose compiled operators do not
load against a CPU-only torch; its model code is pure Python and runs once the two
operator schemas it registers at import exist (see ``_torchvision_models``).
Nothing in the package itself needs torchvision or timm.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import re

import numpy as np
import pytest

REQUIRE_ENV = "CNNCLASSICS_REQUIRE_REFERENCES"
PINS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "requirements-reference.txt")
# The start of every skip reason written here: tests/run.py counts these skips apart.
MISSING = "reference missing:"
_TORCHVISION_SCHEMAS = []


def references_required() -> bool:
    """True when a missing reference must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def pinned_versions() -> dict[str, str]:
    """``{"torchvision": "0.28.0", "timm": ...}`` from requirements-reference.txt."""
    with open(PINS_FILE, encoding="utf-8") as handle:
        return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", handle.read(), flags=re.M))


def install_hint(name: str) -> str:
    if name in pinned_versions():
        return "pip install --no-deps -r tests/requirements-reference.txt"
    return 'pip install -e ".[test]"'


def versions_line() -> str:
    """Installed reference versions next to the pinned ones, for the session header."""
    parts = []
    for name, pin in {"torch": None, **pinned_versions()}.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "MISSING"
        parts.append(f"{name} {installed}" + ("" if pin in (None, installed) else f" (pinned {pin})"))
    return ", ".join(parts)


def require(name: str):
    """Import ``name`` for a test: ``"torchvision"`` gives ``torchvision.models``.

    Skips (or fails, when references are required) with the reason and the install
    command when the import fails for any reason, a broken install included.
    """
    try:
        return _torchvision_models() if name == "torchvision" else _import(name)
    except Exception as err:  # noqa: BLE001 -- a broken install must be reported, whatever it raises
        message = f"{MISSING} {name} ({type(err).__name__}: {err}); install it: {install_hint(name)}"
    if references_required():
        pytest.fail(f"{message} [{REQUIRE_ENV}=1]", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def _import(name: str):
    if name == "timm":
        _torchvision_models()  # timm imports torchvision: apply the CPU workaround first
    return importlib.import_module(name)


def torchvision_models():
    """``torchvision.models`` through :func:`require`."""
    return require("torchvision")


@functools.lru_cache(maxsize=None)
def _torchvision_models():
    """``torchvision.models``, importable on a CPU-only torch (raises if it is not)."""
    import torch

    try:
        import torchvision  # noqa: F401
    except RuntimeError as err:
        if "torchvision::nms" not in str(err):
            raise
        lib = torch.library.Library("torchvision", "DEF")
        _TORCHVISION_SCHEMAS.append(lib)  # the schemas live as long as this object
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision.models

    return torchvision.models


def torch_reference(reference: str, **kwargs):
    """Build ``"torchvision:NAME"`` or ``"timm:NAME"`` randomly initialised, in eval mode,
    with non-trivial BatchNorm statistics so that BN conversion is really tested."""
    library, name = reference.split(":", 1)
    torch = require("torch")
    torch.manual_seed(0)
    if library == "torchvision":
        model = getattr(require("torchvision"), name)(weights=None, **kwargs)
    else:
        model = require("timm").create_model(name, pretrained=False, **kwargs)
    randomize_batchnorm(model)
    return model.eval()


def randomize_batchnorm(model, seed=0):
    """Give every BatchNorm random affine parameters and running statistics."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                module.bias.copy_(torch.rand(n, generator=gen) - 0.5)
                module.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)


def torch_logits(model, images_nhwc: np.ndarray) -> np.ndarray:
    """Run a torch model on NHWC float32 images; returns numpy logits."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.numpy()
