#!/usr/bin/env python
"""Regenerate ``keras_cnnclassics/data/imagenet_classes.json`` (ImageNet-1k class index).

Names come from torchvision (``torchvision.models._meta._IMAGENET_CATEGORIES``, the
labels of every torchvision weights entry), WordNet ids from timm's
``imagenet_synsets.txt`` (the same sorted-synset order). The file has Keras'
``imagenet_class_index.json`` layout: ``{"0": ["n01440764", "tench"], ...}``.

    python tools/make_imagenet_classes.py [--check]
"""

import argparse
import json
import os
import sys

from keras_cnnclassics.convert import import_reference_library

TARGET = os.path.join(os.path.dirname(__file__), "..", "keras_cnnclassics", "data", "imagenet_classes.json")


def build_index():
    if import_reference_library("timm") is None:
        raise SystemExit("needs torch, torchvision and timm installed")
    from importlib import resources

    from torchvision.models._meta import _IMAGENET_CATEGORIES

    synsets = resources.files("timm.data").joinpath("_info/imagenet_synsets.txt").read_text().split()
    if len(synsets) != len(_IMAGENET_CATEGORIES) != 1000:
        raise SystemExit("expected 1000 classes in both sources")
    return {str(i): [wnid, name] for i, (wnid, name) in enumerate(zip(synsets, _IMAGENET_CATEGORIES))}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare with the shipped file")
    args = parser.parse_args()
    rows = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in build_index().items()]
    text = "{\n" + ",\n".join(rows) + "\n}\n"  # one class a line
    if args.check:
        with open(TARGET, encoding="utf-8") as f:
            same = f.read() == text
        print("up to date" if same else "differs: run without --check")
        return 0 if same else 1
    with open(TARGET, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {os.path.normpath(TARGET)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
