"""``cnnclassics convert``: a torchvision/timm checkpoint to a Keras ``.weights.h5``.

    cnnclassics convert --arch resnet50 --source torchvision --input resnet50.pth \
        --output resnet50.weights.h5 [--classes N | --no-top] [--force] [--no-verify]

A thin wrapper over :func:`keras_cnnclassics.convert.convert_checkpoint`; errors
are one line on stderr, exit code 2, and an existing output is left untouched.
"""

from __future__ import annotations


def add_arguments(parser):
    """The converter's options (shared by ``tools/convert_weights.py``)."""
    parser.add_argument("--arch", required=True, help="registry name, e.g. resnet50 (see `cnnclassics list`)")
    parser.add_argument("--source", required=True, choices=("torchvision", "timm"),
                        help="library whose layer names the checkpoint uses")
    parser.add_argument("--input", required=True, help="state dict: .pth/.pt or .safetensors")
    parser.add_argument("--output", required=True, help="Keras weights file to write (.weights.h5)")
    head = parser.add_mutually_exclusive_group()
    head.add_argument("--classes", type=int, default=None,
                      help="head size to write; differs from the checkpoint's -> head re-initialised")
    head.add_argument("--no-top", action="store_true", help="write the backbone only (include_top=False)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the logit comparison with the torchvision/timm model")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest max |logit difference| accepted, times max(1, max |logit|)")


def register(subparsers):
    parser = subparsers.add_parser("convert", help="convert a torchvision/timm checkpoint to .weights.h5")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args):
    from keras_cnnclassics.convert import convert_checkpoint

    convert_checkpoint(
        args.arch, args.source, args.input, args.output,
        classes=args.classes, include_top=not args.no_top, force=args.force,
        verify=not args.no_verify, tolerance=args.tolerance,
    )
    return 0
