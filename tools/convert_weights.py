#!/usr/bin/env python
"""Convert a torchvision/timm checkpoint into a Keras ``.weights.h5`` (= ``cnnclassics convert``).

    python tools/convert_weights.py --arch resnet50 --source torchvision \\
        --input resnet50.pth --output resnet50.weights.h5 [--classes N | --no-top] [--force]

``--backend tensorflow|jax|torch`` (anywhere) picks the Keras backend; ``--debug``
shows tracebacks. Errors: one line on stderr, exit code 2, output left untouched.
"""

import sys

from keras_cnnclassics.cli import main, subcommand_argv

if __name__ == "__main__":
    sys.exit(main(subcommand_argv("convert", sys.argv[1:])))
