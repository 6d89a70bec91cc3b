"""The ``dnspec`` command line: one subcommand per module in :mod:`dnspec.commands`.

Each command module provides ``add_parser(subparsers)`` (registers its arguments and sets
``func``) and ``run(args) -> int`` (the exit status).
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = ("verify", "matrix", "bench", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dnspec",
        description="Verify and benchmark contrastive denoising (CDN) query builders of RT-DETR-style detectors.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"dnspec.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"dnspec.commands.{name}":
                continue
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
