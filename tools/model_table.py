#!/usr/bin/env python
"""Maintain the model table: the MACs cache in the package and the copy in docs/models.md.

    python tools/model_table.py --update-stats [--all]    # profile models missing from the cache
    python tools/model_table.py --update-readme docs/models.md  # rewrite the table between the markers
    python tools/model_table.py --check docs/models.md          # exit 1 when that table is stale

The table is :func:`keras_cnnclassics.stats.model_table_markdown` (what
``cnnclassics table`` prints); it sits between the ``<!-- model-table:start -->``
and ``<!-- model-table:end -->`` markers. Errors: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-stats", action="store_true", help="profile models missing from the MACs cache")
    parser.add_argument("--all", action="store_true", help="with --update-stats: re-profile every model")
    parser.add_argument("--update-readme", metavar="PATH", help="rewrite the table in this Markdown file")
    parser.add_argument("--check", metavar="PATH", help="exit 1 if the table in this file is stale")
    return parser


def run(args) -> int:
    """Do what ``args`` asks, in the order stats, check, README; the exit code."""
    from keras_cnnclassics.cli import import_backend

    import_backend()  # Keras without TensorFlow's load-time log lines
    from keras_cnnclassics import stats

    if args.update_stats:
        updated = stats.update_stats(force=args.all, log=lambda m: print(m, file=sys.stderr, flush=True))
        print(f"{stats.STATS_PATH}: {len(updated)} entries profiled")
    if args.check:
        if stats.update_readme(args.check, check=True):
            print(f"{args.check}: model table is stale; run "
                  f"`python tools/model_table.py --update-readme {args.check}`")
            return 1
        print(f"{args.check}: model table is up to date")
    if args.update_readme:
        changed = stats.update_readme(args.update_readme)
        print(f"{args.update_readme}: model table {'updated' if changed else 'already up to date'}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if not (args.update_stats or args.check or args.update_readme):
            raise ValueError("nothing to do: give --update-stats, --update-readme PATH or --check PATH")
        return run(args)
    except (ValueError, OSError) as err:
        print(f"model_table.py: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
