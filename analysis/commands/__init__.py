"""Subcommands of the ``popeval`` command line (see :mod:`analysis.cli`)."""
