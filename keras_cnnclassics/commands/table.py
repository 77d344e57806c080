"""``cnnclassics table``: the model table (name, paper, params, MACs, reference, top-1).

``--update-stats`` profiles the models whose cached entry in
``keras_cnnclassics/data/model_stats.json`` is missing or stale (``--all``: every
model); ``--update-readme README.md`` rewrites the table between the
``<!-- model-table:start/end -->`` markers; ``--check README.md`` exits 1 when
that table is stale. Without options the table is printed.
"""

import sys


def register(subparsers):
    parser = subparsers.add_parser("table", help="print/update the README model table and its MACs cache")
    parser.add_argument("--update-stats", action="store_true", help="profile models missing from the MACs cache")
    parser.add_argument("--all", action="store_true", help="with --update-stats: re-profile every model")
    parser.add_argument("--update-readme", metavar="PATH", help="rewrite the table in this Markdown file")
    parser.add_argument("--check", metavar="PATH", help="exit 1 if the table in this file is stale")
    parser.set_defaults(func=run)


def run(args):
    from keras_cnnclassics import stats

    if args.update_stats:
        log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
        updated = stats.update_stats(force=args.all, log=log)
        print(f"{stats.STATS_PATH}: {len(updated)} entries profiled")
    if args.check:
        if stats.update_readme(args.check, check=True):
            print(f"{args.check}: model table is stale; run `cnnclassics table --update-readme {args.check}`")
            return 1
        print(f"{args.check}: model table is up to date")
    if args.update_readme:
        changed = stats.update_readme(args.update_readme)
        print(f"{args.update_readme}: model table {'updated' if changed else 'already up to date'}")
    if not (args.update_stats or args.check or args.update_readme):
        print(stats.model_table_markdown(), end="")
    return 0
