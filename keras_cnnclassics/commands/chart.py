"""``cnnclassics chart --out complexity.png``: accuracy vs. multiply-adds, bubble area = params."""


def register(subparsers):
    parser = subparsers.add_parser(
        "chart", help="draw the accuracy-vs-operations bubble chart of the registry's models"
    )
    parser.add_argument("--out", default="complexity.png", help="output image (.png, .svg, .pdf)")
    parser.add_argument("names", nargs="*", help="registry names (default: every model with a published top-1)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.set_defaults(func=run)


def run(args):
    import os

    from keras_cnnclassics.chart import complexity_chart

    if os.path.exists(args.out) and not args.force:
        raise FileExistsError(f"{args.out!r} already exists; pass --force to replace it.")
    points = complexity_chart(args.out, names=args.names or None)
    print(f"wrote {args.out}: {len(points)} models")
    return 0
