"""``dnspec contracts``: the lineage contracts ``dnspec verify --contract NAME`` judges by,
one line each on how it differs from ``rtdetr`` (:mod:`dnspec.contract.lineages`).
Exit status 0."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "contracts",
        help="list the lineage contracts (verify --contract NAME)",
        description="List the lineage contracts `dnspec verify SPEC --contract NAME` judges by, with how each "
        "differs from rtdetr (the default) and who follows it.",
    )
    parser.set_defaults(func=run)
    return parser


def lines() -> list[str]:
    """One line per contract: its name, how it differs from rtdetr, who follows it."""
    from dnspec.contract.lineages import CONTRACTS

    width = max(len(name) for name in CONTRACTS)
    return [f"{c.name:<{width}}  {c.differs} [{c.follows}]" for c in CONTRACTS.values()]


def run(args) -> int:
    print("\n".join(lines()))
    return 0
