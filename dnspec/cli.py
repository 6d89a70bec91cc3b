"""The ``dnspec`` command line: one subcommand per module in :mod:`dnspec.commands`.

Each command module provides ``add_parser(subparsers)`` (registers its arguments and sets
``func``) and ``run(args) -> int`` (the exit status).

Only the command at hand is imported and registered (``dnspec verify ...`` never imports
the benchmark machinery, ``dnspec bench`` never the verify pipeline); ``dnspec``,
``dnspec --help`` and an unknown command register them all, so the help lists every
command and argparse names the valid choices; ``dnspec --version`` alone imports none.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from dnspec import __version__

COMMAND_MODULES = ("verify", "matrix", "bench", "demo", "contracts")


def _command_in(argv: list[str] | None) -> str | None:
    """The subcommand named on the command line (its first argument: ``dnspec`` has no
    options of its own before it), or None."""
    argv = sys.argv[1:] if argv is None else argv
    return argv[0] if argv and argv[0] in COMMAND_MODULES else None


def build_parser(argv: list[str] | None = None, *, every_command: bool = False) -> argparse.ArgumentParser:
    """The parser for ``argv``: only its command's subparser, unless ``every_command``
    (or no known command is named)."""
    parser = argparse.ArgumentParser(
        prog="dnspec",
        description="Verify and benchmark contrastive denoising (CDN) query builders of RT-DETR-style detectors.",
    )
    # the version written once, in dnspec/__init__.py (pyproject.toml reads it from there)
    parser.add_argument("--version", action="version", version=f"dnspec {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = None if every_command else _command_in(argv)
    for name in COMMAND_MODULES if chosen is None else (chosen,):
        try:
            module = importlib.import_module(f"dnspec.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dnspec.commands.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:  # what argparse prints, without importing commands
        print(f"dnspec {__version__}")
        return 0
    args = build_parser(argv).parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # a command that reruns itself in subprocesses needs it
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
