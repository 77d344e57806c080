"""Subcommands of the ``cnnclassics`` command line (see :mod:`keras_cnnclassics.cli`)."""


class CommandError(Exception):
    """An error whose message is shown to the user as-is (exit code 2).

    Defined here rather than in ``cli.py`` so that ``python -m keras_cnnclassics.cli`` (where
    ``cli`` runs as ``__main__``) and the subcommands share one class.
    """
