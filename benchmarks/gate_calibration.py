"""How the regression gate behaves on this machine: false alarms and misses, measured.

    python benchmarks/gate_calibration.py [--runs 10] [--batch-sizes 1 4 16 64 256]

Two arms, run alternately ``--runs`` times each against one baseline of the reference
and an identical copy: the identical copy (every flag is a false alarm) and a copy made
``--slowdown`` times slower (the reference plus a busy-wait of that fraction of each
call's own CPU time, :func:`dnspec.benchmarks.gate.slowed`; every "ok" is a miss). Each run is the
gate exactly as ``dnspec bench --baseline`` runs it (same rounds, blocks and settling
budget). Prints, per arm, the verdict counts, the range of the slowdown read and the
standard deviation of its log between runs, and how often the settling measured more.
The README's "Regression gate" figures come from this script.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

from dnspec.benchmarks import gate as bench_gate
from dnspec.benchmarks import results as bench_results
from dnspec.benchmarks import timing as bench_timing
from dnspec.benchmarks import workloads as bench_workloads
from dnspec.implementations.specs import load_implementation


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="gate runs per arm (default 10)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=list(bench_workloads.DEFAULT_BATCH_SIZES))
    parser.add_argument("--slowdown", type=float, default=1.3, help="the slowed arm's factor (default 1.3)")
    parser.add_argument("--max-slowdown", default="15%", help="the gate's threshold (default 15%%)")
    parser.add_argument("--repeats", type=int, default=bench_workloads.DEFAULT_ROUNDS)
    parser.add_argument("--blocks", type=int, default=bench_workloads.DEFAULT_BLOCKS)
    parser.add_argument("--baseline-repeats", type=int, default=40)
    parser.add_argument("--baseline-blocks", type=int, default=8)
    parser.add_argument("--gate-budget", type=float, default=bench_gate.DEFAULT_GATE_BUDGET_S)
    args = parser.parse_args(argv)
    threshold = bench_gate.parse_slowdown(args.max_slowdown)
    bench_timing.steady_allocator()

    reference = load_implementation("reference")

    def identical(*a, **k):
        return reference.fn(*a, **k)

    arms = {
        "identical": identical,
        f"{args.slowdown:g}x slower": bench_gate.slowed(identical, args.slowdown, clock="cpu"),
    }
    workloads = bench_workloads.grid(batch_sizes=tuple(args.batch_sizes))

    def measure(impls, workloads, rounds, blocks):
        with bench_timing.torch_threads(1):
            ms = bench_timing.measure(
                impls,
                workloads,
                rounds=rounds,
                blocks=blocks,
                clock="cpu",
                memory=False,
                specs=["reference", "candidate"],
            )
        return bench_results.BenchResult(
            ms, rounds=rounds, threads=1, min_sample_s=bench_workloads.DEFAULT_MIN_SAMPLE_S
        )

    started = time.perf_counter()
    baseline = measure([reference, identical], workloads, args.baseline_repeats, args.baseline_blocks)
    seen = {name: [] for name in arms}
    extended = {name: 0 for name in arms}
    for run in range(args.runs):
        for name, candidate in arms.items():
            impls = [reference, candidate]
            result = measure(impls, workloads, args.repeats, args.blocks)
            rows = bench_gate.settle_gate(
                result,
                baseline,
                threshold,
                lambda pending, impls=impls: measure(impls, pending, args.repeats, args.blocks).measurements,
                budget_s=args.gate_budget,
            )
            seen[name] += rows
            extended[name] += len(result.environment.get("extra_rounds") or {})
        print(f"run {run + 1}/{args.runs} done ({time.perf_counter() - started:.0f} s)", flush=True)

    print(
        f"\nbaseline: {args.baseline_repeats} rounds in {args.baseline_blocks} blocks; each run: {args.repeats} rounds in "
        f"{args.blocks} blocks, settling budget {args.gate_budget:g} s; threshold {threshold:.0%}; batch sizes "
        f"{', '.join(map(str, args.batch_sizes))}; {args.runs} runs per arm; {time.perf_counter() - started:.0f} s in all"
    )
    for name, rows in seen.items():
        counts = {v: sum(r.verdict == v for r in rows) for v in ("ok", "inconclusive", "slower")}
        logs = [math.log(r.slowdown) for r in rows]
        print(
            f"{name:>14}: {counts['slower']} of {len(rows)} comparisons flagged slower, {counts['inconclusive']} "
            f"inconclusive, {counts['ok']} ok; slowdown read {math.exp(min(logs)):.2f}x-{math.exp(max(logs)):.2f}x, "
            f"sd of its log {statistics.stdev(logs):.3f}; settling measured more on {extended[name]} of {len(rows)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
