"""``cnnclassics profile NAME``: per-layer output shape, memory, params, multiply-adds and
optionally receptive fields."""

import argparse


def register(subparsers):
    parser = subparsers.add_parser(
        "profile", help="per-layer output shape, memory, params and MACs of a model"
    )
    parser.add_argument("name", help="registry name, e.g. alexnet")
    parser.add_argument(
        "--input-shape", type=_shape, help="input shape without batch, e.g. 227,227,3 (default: the model's)"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per batch (default 1)")
    parser.add_argument("--format", choices=("table", "csv", "markdown"), default="table")
    parser.add_argument(
        "--true-flops", action="store_true",
        help="count real FLOPs (2 x MACs plus BN/activation/element-wise work) instead of ops "
        "(MACs plus pooling, the FLOPs column of CS231n lecture 9's AlexNet table)",
    )
    parser.add_argument(
        "--no-fold-padding", action="store_true", help="show padding layers as rows of their own"
    )
    parser.add_argument(
        "--receptive-field", action="store_true",
        help="add the columns RF (theoretical receptive field in input pixels), jump (effective "
        "stride) and start (centre of the first unit's field)",
    )
    parser.set_defaults(func=run)


def _shape(text):
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-shape must look like 227,227,3; got {text!r}.") from None
    return shape


def run(args):
    from keras_cnnclassics.profiler import profile

    result = profile(
        args.name, input_shape=args.input_shape, batch_size=args.batch_size,
        true_flops=args.true_flops, fold_padding=not args.no_fold_padding,
        receptive_field=args.receptive_field,
    )
    rendered = {"table": result.to_table, "csv": result.to_csv, "markdown": result.to_markdown}
    print(rendered[args.format](), end="")
    return 0
