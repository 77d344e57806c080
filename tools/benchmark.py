#!/usr/bin/env python
"""Benchmark our models beside keras.applications and torchvision (same as `cnnclassics bench`).

    python tools/benchmark.py --suite infer --models resnet50 --backends tensorflow jax torch
"""

import argparse
import sys

from keras_cnnclassics.commands import bench


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
