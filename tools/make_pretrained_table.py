#!/usr/bin/env python
"""Regenerate ``keras_cnnclassics/data/pretrained_weights.json``: the published weights table.

For every registry model whose reference is a torchvision or timm model, the table
holds each published weight tag as that library describes it:

* torchvision: every entry of the model's ``Weights`` enum (``get_model_weights``):
  URL, the sha256 prefix in its file name (``torch.hub`` checks it), ImageNet-1k
  acc@1/acc@5, parameter count, file size, the eval transforms (``resize_size``,
  ``crop_size``, interpolation, mean, std) and the constructor arguments its builder
  sets when weights are loaded (``transform_input`` for GoogLeNet and Inception v3).
  ``"imagenet"`` means the enum's ``DEFAULT``.
* timm: every pretrained config of the architecture (``get_arch_pretrained_cfgs``):
  the Hugging Face Hub repo (``hf://<hf_hub_id>/model.safetensors``) or the URL timm
  downloads from (timm does not check a hash), input size, ``crop_pct`` (resize to
  ``floor(size / crop_pct)``, as timm's eval transform does), interpolation, mean
  and std. ``"imagenet"`` means timm's default tag, the first one.

    python tools/make_pretrained_table.py [--check]
"""

import argparse
import importlib.metadata
import inspect
import json
import math
import os
import re
import sys

from keras_cnnclassics.convert import import_reference_library
from keras_cnnclassics.registry import all_specs

TARGET = os.path.join(os.path.dirname(__file__), "..", "keras_cnnclassics", "data", "pretrained_weights.json")
# torch.hub.HASH_REGEX: the sha256 prefix in a published file name ("resnet50-0676ba61.pth").
HASH_REGEX = re.compile(r"-([a-f0-9]*)\.")
# Constructor arguments a torchvision builder sets when it loads weights and that change the
# network the weights are used with (aux_logits and init_weights are undone or irrelevant).
WEIGHT_OPTIONS = ("transform_input",)
HF_FILE = "model.safetensors"  # what timm reads from a Hub repo first


def _number(value):
    """A float, or None for a missing or NaN metric (JSON has no NaN)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _floats(values):
    return [float(v) for v in values]


def torchvision_tags(name):
    """``(default tag, {tag: entry})`` from torchvision's ``Weights`` enum of ``name``."""
    from torchvision.models import get_model_builder, get_model_weights

    enum = get_model_weights(name)
    source = inspect.getsource(get_model_builder(name))
    options = {
        option: True for option in WEIGHT_OPTIONS
        if re.search(rf'_ovewrite_named_param\(kwargs, "{option}", True\)', source)
    }
    tags = {}
    for weights in enum:
        transforms = weights.transforms()
        metrics = weights.meta.get("_metrics", {}).get("ImageNet-1K", {})
        file = os.path.basename(weights.url)
        match = HASH_REGEX.search(file)
        categories = weights.meta.get("categories")
        tags[weights.name.lower()] = {
            "source": f"torchvision {enum.__name__}.{weights.name}",
            "url": weights.url,
            "file": file,
            "sha256_prefix": match.group(1) if match else None,
            "classes": len(categories) if categories else 1000,
            "num_params": weights.meta.get("num_params"),
            "file_size_mb": weights.meta.get("_file_size"),
            "top1": _number(metrics.get("acc@1")),
            "top5": _number(metrics.get("acc@5")),
            "input_size": int(transforms.crop_size[0]),
            "preprocessing": {
                "resize": int(transforms.resize_size[0]),
                "crop": int(transforms.crop_size[0]),
                "interpolation": transforms.interpolation.value,
                "mean": _floats(transforms.mean),
                "std": _floats(transforms.std),
            },
            "options": options,
        }
    return enum.DEFAULT.name.lower(), tags


def timm_tags(name):
    """``(default tag, {tag: entry})`` from timm's pretrained configs of ``name``."""
    from timm.models import get_arch_pretrained_cfgs, get_pretrained_cfg

    tags = {}
    for full_name, cfg in get_arch_pretrained_cfgs(name).items():
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
        hub = cfg.get("hf_hub_id")
        url = f"hf://{hub}/{cfg.get('hf_hub_filename') or HF_FILE}" if hub else cfg.get("url")
        if not url:
            continue  # an architecture timm registers without weights ("untrained")
        size = int(cfg["input_size"][-1])
        tags[cfg["tag"]] = {
            "source": f"timm {full_name}",
            "url": url,
            "file": url.rsplit("/", 1)[-1],
            "sha256_prefix": None,  # timm loads its files without a hash check
            "hf_hub_id": hub,
            "classes": int(cfg["num_classes"]),
            "num_params": None,
            "file_size_mb": None,
            "top1": None,
            "top5": None,
            "input_size": size,
            "preprocessing": {
                "resize": math.floor(size / cfg["crop_pct"]),
                "crop": size,
                "crop_pct": float(cfg["crop_pct"]),
                "interpolation": cfg["interpolation"],
                "mean": _floats(cfg["mean"]),
                "std": _floats(cfg["std"]),
            },
            "options": {},
        }
    if not tags:
        return None, {}
    default = get_pretrained_cfg(name).tag
    return (default if default in tags else next(iter(tags))), tags


def build_table():
    """The whole table (what the JSON file holds)."""
    if import_reference_library("timm") is None:
        raise SystemExit("needs torch, torchvision and timm installed")
    models = {}
    for spec in all_specs():
        if not spec.reference:
            continue
        library, name = spec.reference.split(":", 1)
        default, tags = (torchvision_tags if library == "torchvision" else timm_tags)(name)
        if tags:
            models[spec.name] = {"reference": spec.reference, "default": default, "tags": tags}
    return {
        "generated_by": "tools/make_pretrained_table.py",
        "torchvision": importlib.metadata.version("torchvision"),
        "timm": importlib.metadata.version("timm"),
        "models": models,
    }


def table_text(table):
    return json.dumps(table, indent=1, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the shipped file")
    args = parser.parse_args()
    text = table_text(build_table())
    if args.check:
        with open(TARGET, encoding="utf-8") as f:
            same = f.read() == text
        print("up to date" if same else "differs: run without --check")
        return 0 if same else 1
    with open(TARGET + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(TARGET + ".tmp", TARGET)
    print(f"wrote {os.path.normpath(TARGET)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
