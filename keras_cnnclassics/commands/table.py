"""``cnnclassics table``: the model table (name, paper, params, MACs, reference, top-1) as Markdown.

The table is built from the registry and the MACs cached in
``keras_cnnclassics/data/model_stats.json``; ``tools/model_table.py`` refreshes that
cache and the copy in docs/models.md.
"""


def register(subparsers):
    parser = subparsers.add_parser("table", help="print the model table (Markdown)")
    parser.set_defaults(func=run)


def run(args):
    from keras_cnnclassics.stats import model_table_markdown

    print(model_table_markdown(), end="")
    return 0
