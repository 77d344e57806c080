"""``cnnclassics bench``: speed beside keras.applications and torchvision (see keras_cnnclassics.benchmark)."""

import sys

from keras_cnnclassics import benchmark


def add_arguments(parser):
    parser.add_argument("--suite", choices=("infer", "train", "build", "export", "all"), default="infer")
    parser.add_argument("--models", nargs="+", help="registry names (default: the suite's list)")
    parser.add_argument("--backends", nargs="+", choices=benchmark.BACKENDS, default=list(benchmark.BACKENDS))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=0, help="threads per process (0: all cores)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case (median reported)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="processes per case, interleaved with the other cases; rows report the "
                             "median over processes and their range (for near-equal comparisons)")
    parser.add_argument("--data-format", nargs="+", choices=("channels_last", "channels_first"),
                        default=["channels_last"], dest="data_formats",
                        help="Keras image data format(s) of ours and keras.applications")
    parser.add_argument("--allocator", choices=tuple(benchmark.ALLOCATORS), default="retain",
                        help="retain: glibc malloc keeps freed memory in every worker process, so "
                             "PyTorch does not page-fault its activations anew each pass "
                             "(see keras_cnnclassics.benchmark.ALLOCATORS); system: glibc defaults")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table")


def register(subparsers):
    parser = subparsers.add_parser("bench", help="benchmark against keras.applications and torchvision")
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args):
    if min(args.batch_size, args.repeat, args.image_size, args.rounds) <= 0 or args.threads < 0:
        raise ValueError("--batch-size, --image-size, --repeat and --rounds must be positive, --threads >= 0.")
    if args.models:
        from keras_cnnclassics.registry import get_spec

        for name in args.models:
            get_spec(name)  # an unknown name: ValueError with the closest names
    suites = ("infer", "train", "build", "export") if args.suite == "all" else (args.suite,)
    for suite in suites:
        print(f"## {suite}", flush=True)
        print(
            benchmark.run_suite(
                suite, models=args.models, backends=args.backends, batch=args.batch_size,
                image_size=args.image_size, repeat=args.repeat, threads=args.threads,
                fmt=args.format, data_formats=tuple(args.data_formats), allocator=args.allocator,
                rounds=args.rounds,
                progress=lambda m: print(m, file=sys.stderr, flush=True),
            ),
            flush=True,
        )
    return 0
