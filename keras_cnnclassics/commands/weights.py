"""``cnnclassics weights``: the published ImageNet weights, listed and downloaded.

    cnnclassics weights list [PATTERN] [--json]
    cnnclassics weights download NAME... [--tag TAG] [--dir DIR]

``download`` fills the cache folder (``$CNNCLASSICS_CACHE``, else
``$KERAS_HOME/cnnclassics``; ``--dir`` chooses another) with each model's converted
weights, head and backbone, and the original file: a folder to copy to a machine
without network (point ``CNNCLASSICS_CACHE`` at it there).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys


def register(subparsers):
    parser = subparsers.add_parser("weights", help="list or download the published ImageNet weights")
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    listing = actions.add_parser("list", help="published weight tags with their top-1/top-5 and preprocessing")
    listing.add_argument("pattern", metavar="PATTERN", nargs="?", help="fnmatch pattern, e.g. 'resnet*'")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)
    fetching = actions.add_parser("download", help="download, verify and convert weights into the cache")
    fetching.add_argument("names", metavar="NAME", nargs="+", help="registry names, e.g. resnet50")
    fetching.add_argument("--tag", default="imagenet", help="published tag or URL (default: imagenet)")
    fetching.add_argument("--dir", metavar="DIR", help="cache folder to fill (default: the cache in use)")
    fetching.set_defaults(func=run_download)


def _rows(pattern):
    from keras_cnnclassics.pretrained import models_with_weights, published_weights

    for name in models_with_weights(pattern):
        for tag, entry in published_weights(name).items():
            yield {"model": name, "tag": tag, **entry}


def _percent(value):
    return "-" if value is None else f"{value:.2f}"


def run_list(args):
    rows = list(_rows(args.pattern))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no published weights match {args.pattern!r}; see `cnnclassics weights list`")
        return 0
    print(f"{'model':<20} {'tag':<24} {'top-1':>6} {'top-5':>6}  {'resize/crop':<11} {'interp':<8} source")
    for row in rows:
        prep = row["preprocessing"]
        tag = row["tag"] + (" *" if row["default"] else "")
        print(f"{row['model']:<20} {tag:<24} {_percent(row['top1']):>6} {_percent(row['top5']):>6}  "
              f"{prep['resize']}/{prep['crop']:<7} {prep['interpolation']:<8} {row['url']}")
    print("* = weights='imagenet'; top-1/top-5: ImageNet-1k as published (timm publishes none in its package)")
    return 0


def run_download(args):
    from keras_cnnclassics.pretrained import download, fetch

    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
        os.environ[fetch.ENV_CACHE] = os.path.abspath(args.dir)
    for name in args.names:
        with contextlib.redirect_stdout(sys.stderr):  # download progress: stdout lists the files only
            paths = download(name, args.tag)
        print("\n".join(paths))
    print(f"cache folder: {fetch.cache_dir()} (on another machine: CNNCLASSICS_CACHE=<copy of it>)",
          file=sys.stderr)
    return 0
