"""Reference implementations (torchvision, timm) for parity tests.

torchvision from the package index is a CUDA build whose compiled operators do not
load against the CPU torch used here; its model code is pure Python and runs once
the two operator schemas it registers at import exist (see ../shared/README.md).
Nothing in the package itself needs torchvision or timm.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest


@functools.lru_cache(maxsize=None)
def torchvision_models():
    """``torchvision.models``, importable on a CPU-only torch (skips if torch is absent)."""
    torch = pytest.importorskip("torch")
    try:
        import torchvision  # noqa: F401
    except RuntimeError:
        torchvision_models._lib = lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision.models

    return torchvision.models


def torch_reference(reference: str, **kwargs):
    """Build ``"torchvision:NAME"`` or ``"timm:NAME"`` randomly initialised, in eval mode,
    with non-trivial BatchNorm statistics so that BN conversion is really tested."""
    import torch

    library, name = reference.split(":", 1)
    torch.manual_seed(0)
    if library == "torchvision":
        model = getattr(torchvision_models(), name)(weights=None, **kwargs)
    else:
        torchvision_models()  # timm imports torchvision: apply the CPU workaround first
        timm = pytest.importorskip("timm")
        model = timm.create_model(name, pretrained=False, **kwargs)
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
