"""Subcommands of the ``cnnclassics`` command line (see :mod:`keras_cnnclassics.cli`)."""
