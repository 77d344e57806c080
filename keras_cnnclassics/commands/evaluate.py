"""``cnnclassics evaluate RUN_OR_MODEL``: top-1/top-5/loss of a trained model."""

import json

from keras_cnnclassics.training.config import DIGITS
from keras_cnnclassics.training.datasets import is_dataset


def register(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="top-1/top-5 of a run folder or .keras model on digits, a named dataset or a folder"
    )
    parser.add_argument("source", metavar="RUN_OR_MODEL", help="run folder or .keras file")
    parser.add_argument("--data", metavar="DIR|NAME",
                        help="image folder, digits, cifar10, cifar100, mnist or fashion_mnist "
                        "(default: the run's own data; a named dataset's validation split is its "
                        "official test split)")
    parser.add_argument("--split", choices=("validation", "all"),
                        help="default: the run's held-out split on its own data, else all images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run, backend_modules=image_decoder)


def image_decoder(args):
    """TensorFlow unless the images are the digits (it decodes folders, see keras_cnnclassics.images)."""
    return () if args.data == DIGITS or is_dataset(args.data) else ("tensorflow",)


def run(args):
    from keras_cnnclassics.training import evaluate

    result = evaluate(args.source, data=args.data, split=args.split,
                      batch_size=args.batch_size, checkpoint=args.checkpoint)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    top5 = f"  top-5 {result['top5']:.2f} %" if result["top5"] is not None else ""
    skipped = f" ({result['skipped_unreadable']} unreadable skipped)" if result["skipped_unreadable"] else ""
    print(f"{result['model']}: top-1 {result['top1']:.2f} %{top5}  loss {result['loss']:.4f}  "
          f"on {result['images']} images ({result['split']}){skipped}")
    return 0
