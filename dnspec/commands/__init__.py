"""Subcommands of the ``dnspec`` CLI, one module each (see :mod:`dnspec.cli`)."""
