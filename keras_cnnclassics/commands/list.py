"""``cnnclassics list [PATTERN]``: registry names, with paper year and parameter count."""

from keras_cnnclassics.registry import get_spec, list_models


def register(subparsers):
    parser = subparsers.add_parser("list", help="list registry models (fnmatch pattern)")
    parser.add_argument("pattern", nargs="?", help='e.g. "vgg*" or "resnet?"')
    parser.add_argument("--names-only", action="store_true", help="print names only")
    parser.set_defaults(func=run)


def run(args):
    names = list_models(args.pattern)
    if not names:
        raise ValueError(f"no model matches {args.pattern!r}; try `cnnclassics list`.")
    if args.names_only:
        print("\n".join(names))
        return 0
    rows = [(n, get_spec(n)) for n in names]
    width = max(len(n) for n, _ in rows)
    print(f"{'name':<{width}}  year  {'params':>12}  reference")
    for name, spec in rows:
        print(f"{name:<{width}}  {spec.year}  {spec.params:>12,}  {spec.reference or '-'}")
    print(f"{len(rows)} models")
    return 0
