"""How often do the statistical properties fail a correct builder? Runs every statistical
property on each correct builder of ``properties/selftest/power_variants.py`` (RT-DETR's
distributions drawn in another order, from a private torch generator, from numpy's
generator) with random seeds, and counts the failures: each should be a false alarm with
probability <= 1e-6 per property, so 0 is expected.

    python benchmarks/false_alarms.py [--runs 100] [--profile ci] [--jobs 2] [--markdown F.md]

A run with seed S checks each statistical property as ``dnspec verify SPEC --profile
PROFILE --seed S`` does (the property's check on its fixed workload seeded S, in a process
of its own), without the per-run start-up of a CLI process. The seeds are drawn from the
operating system's randomness and printed, so a false alarm can be replayed with
``--seed``. Exit 1 when any run failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunResult:
    """One builder on one seed: the statistical properties that failed, with their messages."""

    builder: str
    seed: int
    failed: tuple[tuple[str, str], ...]
    cpu_s: float


def _controls():
    sys.path.insert(0, str(REPO / "properties"))
    from selftest.power_variants import CONTROLS

    return CONTROLS


def _one(job) -> RunResult:
    name, seed, profile = job
    import torch

    from dnspec.checks.suite import PROPERTIES, STATISTICAL
    from dnspec.checks.violations import PropertyViolation
    from dnspec.generation import profiles

    torch.set_num_threads(1)
    profiles.load_profile(profile)
    impl = _controls()[name]
    failed = []
    start = time.process_time()
    for prop in PROPERTIES:
        if prop.kind != STATISTICAL:
            continue
        try:
            prop.check(impl, seed=seed)
        except PropertyViolation as error:
            failed.append((prop.name, str(error).splitlines()[0]))
    return RunResult(name, seed, tuple(failed), time.process_time() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="seeds per builder (default 100)")
    parser.add_argument("--profile", default="ci", choices=("ci", "dev", "thorough"))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--seed", type=int, action="append", help="replay these seeds instead of random ones")
    parser.add_argument("--markdown", type=Path, help="also write the summary table here")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f"--runs: must be at least 1, got {args.runs}")
    if args.jobs < 1:
        parser.error(f"--jobs: must be at least 1, got {args.jobs}")
    seeds = args.seed or [secrets.randbelow(2**32) for _ in range(args.runs)]
    names = sorted(_controls())
    jobs = [(name, seed, args.profile) for name in names for seed in seeds]
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = pool.map(_one, jobs, chunksize=1)
    lines = [
        f"profile {args.profile}: {len(seeds)} random seeds per builder, every statistical property on each",
        "",
        "| builder | runs | runs with a failure | CPU s per run |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        mine = [r for r in results if r.builder == name]
        bad = [r for r in mine if r.failed]
        lines.append(f"| {name} | {len(mine)} | {len(bad)} | {sum(r.cpu_s for r in mine) / len(mine):.2f} |")
    failures = [r for r in results if r.failed]
    for r in failures:
        for prop, message in r.failed:
            lines.append(f"\nFALSE ALARM: {r.builder} --seed {r.seed}: {prop}: {message}")
    text = "\n".join(lines)
    print(text)
    print("\nseeds: " + " ".join(str(s) for s in seeds), file=sys.stderr)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
