"""``dnspec bench [SPEC...]``: throughput of CDN builders, ratios to the reference, peak
memory, scaling curves and a regression gate (see :mod:`dnspec.benchmarks.timing` for how it
measures, and why the gate compares ratios to the reference rather than times).

Exit status: 0 measured (and the gate, if asked for, passed); 1 the gate flagged a
slowdown, or an implementation raised while being measured; 2 the run cannot start as
asked (unknown SPEC, unusable option or baseline, matplotlib missing for --plot); 3 dnspec
itself broke (DNSPEC_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from dnspec.running.progress import ProgressBar


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dnspec.benchmarks import gate as bench_gate
    from dnspec.benchmarks import workloads as bench_workloads

    parser = subparsers.add_parser(
        "bench",
        help="throughput, memory and scaling of implementations; a regression gate",
        description=(
            "Time each SPEC (default: the reference and every installed built-in) on a grid of workloads, interleaved "
            "with the reference, and print median time, images/s, the ratio to the reference and peak memory. "
            "--baseline FILE --max-slowdown 15% turns it into a regression gate on those ratios."
        ),
        epilog=(
            "Timing: CPU runs default to one torch thread and the calling thread's CPU time (--clock auto), which a "
            "shared machine's other processes barely disturb; --threads N --clock wall for multi-threaded wall time. "
            "Any --json file can serve as a --baseline; the gate then reuses its SPECs, workloads, threads and clock."
        ),
    )
    parser.add_argument(
        "specs",
        nargs="*",
        metavar="SPEC",
        help="implementations (default: reference and every installed built-in; "
        "with --baseline: those in the baseline). The reference is always measured: ratios are to it.",
    )
    grid = parser.add_argument_group("workloads")
    grid.add_argument(
        "--batch-sizes",
        nargs="+",
        default=None,
        metavar="N",
        help=f"images per call (default {' '.join(map(str, bench_workloads.DEFAULT_BATCH_SIZES))})",
    )
    grid.add_argument(
        "--max-boxes",
        nargs="+",
        default=None,
        metavar="M",
        help=f"boxes in the fullest image (default {bench_workloads.DEFAULT_MAX_BOXES}); several give several grids",
    )
    grid.add_argument(
        "--num-denoising",
        nargs="+",
        default=None,
        metavar="D",
        help=f"num_denoising (default {bench_workloads.DEFAULT_NUM_DENOISING})",
    )
    grid.add_argument(
        "--num-queries",
        type=int,
        default=None,
        metavar="Q",
        help=f"object queries (default {bench_workloads.DEFAULT_NUM_QUERIES})",
    )
    grid.add_argument(
        "--embed-dim",
        type=int,
        default=None,
        metavar="D",
        help=f"class embedding width (default {bench_workloads.DEFAULT_EMBED_DIM})",
    )
    grid.add_argument("--device", default=None, help="device of the inputs (default cpu)")
    grid.add_argument(
        "--dtype",
        default=None,
        choices=sorted(bench_workloads.DTYPES),
        help="dtype of boxes and embedding (default float32)",
    )
    grid.add_argument(
        "--scaling",
        action="store_true",
        help="instead of the grid, sweep batch size, max boxes and num_denoising one at a time around "
        f"{bench_workloads.SCALING_CENTRE} and fit which cost term dominates at which size",
    )
    timing = parser.add_argument_group("timing")
    timing.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"interleaved rounds per workload (default {bench_workloads.DEFAULT_ROUNDS})",
    )
    timing.add_argument(
        "--blocks",
        type=int,
        default=None,
        metavar="B",
        help=f"split the rounds into B blocks with fresh inputs each (default {bench_workloads.DEFAULT_BLOCKS})",
    )
    timing.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="torch intra-op threads (default 1 on cpu, torch's own elsewhere)",
    )
    timing.add_argument(
        "--clock",
        choices=("auto", "wall", "cpu"),
        default=None,
        help="auto (default): cpu time of the calling thread for single-threaded cpu runs, else wall time",
    )
    timing.add_argument(
        "--min-sample-ms",
        type=float,
        default=None,
        metavar="MS",
        help=f"calls per sample are chosen so a sample lasts this long (default {bench_workloads.DEFAULT_MIN_SAMPLE_S * 1e3:g})",
    )
    timing.add_argument("--no-memory", action="store_true", help="skip the peak-memory call")
    timing.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc malloc's dynamic thresholds alone (noisier; see dnspec.benchmarks.timing.steady_allocator)",
    )
    timing.add_argument(
        "--through-adapters",
        action="store_true",
        help="time transformers ports through dnspec's adapter (with its float-mask-to-bool conversion) instead of natively",
    )
    timing.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="stop an implementation whose call runs longer than this (default 60)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        default=None,
        metavar="FILE.json",
        help="write every sample, ratio and setting (usable as a --baseline)",
    )
    out.add_argument(
        "--markdown", default=None, metavar="FILE.md", help="write the table (and gate, scaling analysis) as markdown"
    )
    out.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="throughput against batch size (with --scaling: the three sweeps); needs dnspec[plot]",
    )
    gate = parser.add_argument_group("regression gate")
    gate.add_argument(
        "--baseline",
        default=None,
        metavar="FILE.json",
        help="compare each implementation's ratio to the reference with this file's",
    )
    gate.add_argument(
        "--max-slowdown", default="15%", metavar="PCT", help="flag a ratio that grew by more than this (default 15%%)"
    )
    gate.add_argument(
        "--gate-budget",
        type=float,
        default=bench_gate.DEFAULT_GATE_BUDGET_S,
        metavar="SECONDS",
        help="on a noisy machine, spend up to this long measuring more rounds for comparisons whose verdict is not yet "
        f"clear (default {bench_gate.DEFAULT_GATE_BUDGET_S:.0f}; 0: never)",
    )
    gate.add_argument(
        "--write-baseline",
        default=None,
        metavar="FILE.json",
        help="write a baseline (the --json format) from --baseline-runs runs of this command",
    )
    gate.add_argument(
        "--baseline-runs",
        type=int,
        default=bench_gate.DEFAULT_BASELINE_RUNS,
        metavar="K",
        help="with --write-baseline: measure K times, each in its own process, and record the spread of "
        f"their ratios, which the gate adds to its error (default {bench_gate.DEFAULT_BASELINE_RUNS}; "
        "1: this process only)",
    )
    parser.set_defaults(func=run)
    return parser


class Usage(Exception):
    pass


def run(args) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("dnspec bench: interrupted", file=sys.stderr)
        return 130
    except Usage as problem:
        print(f"dnspec bench: {problem}", file=sys.stderr)
        return 2
    except Exception as bug:
        if os.environ.get("DNSPEC_DEBUG"):
            raise
        print(
            f"dnspec bench: internal error: {type(bug).__name__}: {bug} (set DNSPEC_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 3


def _ints(values, flag: str) -> list[int] | None:
    if values is None:
        return None
    out = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            try:
                number = int(part)
            except ValueError:
                raise Usage(f"{flag} {part!r}: expected whole numbers") from None
            if number < 1:
                raise Usage(f"{flag} {number}: must be at least 1")
            out.append(number)
    return out


def _check_output(path: str | None, flag: str, suffix: str) -> None:
    if path is None:
        return
    if not path.lower().endswith(suffix):
        raise Usage(f"{flag} {path}: use a {suffix} file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise Usage(f"{flag} {path}: the folder {folder} does not exist")


def _device_problem(device: str) -> str:
    import torch

    try:
        kind = torch.device(device).type
    except (RuntimeError, ValueError):
        return f"--device {device!r}: not a torch device"
    if kind == "cuda" and not torch.cuda.is_available():
        return "--device cuda: no CUDA device here (torch.cuda.is_available() is False)"
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return "--device mps: MPS is not available here"
    return ""


def _baseline_from_runs(args, stdout) -> int:
    """``--write-baseline F --baseline-runs K``: this command K times, each in its own
    process (the spread between processes is what the gate needs to know), merged by
    :func:`dnspec.benchmarks.gate.merge_runs` into F."""
    import subprocess
    import tempfile

    from dnspec.benchmarks import gate as bench_gate
    from dnspec.benchmarks import results as bench_results

    argv = _without(
        getattr(args, "argv", None) or sys.argv[1:],
        ("--write-baseline", "--baseline-runs", "--json", "--markdown", "--plot", "--baseline"),
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="dnspec-baseline-") as folder:
        for k in range(args.baseline_runs):
            path = os.path.join(folder, f"run-{k}.json")
            command = [sys.executable, "-m", "dnspec", *argv, "--json", path, "--baseline-runs", "1"]
            done = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
            )
            if done.returncode != 0 or not os.path.exists(path):
                tail = [line for line in done.stdout.splitlines() if line.strip()][-1:]
                raise Usage(
                    f"--write-baseline: run {k + 1} of {args.baseline_runs} exited {done.returncode}"
                    + (f": {tail[0]}" if tail else "")
                )
            results.append(bench_results.load_result(path))
            stdout.print(f"run {k + 1}/{args.baseline_runs} measured", markup=False, highlight=False)
    merged = bench_gate.merge_runs(results)
    merged.command = "dnspec " + " ".join(
        map(shlex.quote, [*argv, "--write-baseline", args.write_baseline, "--baseline-runs", str(args.baseline_runs)])
    )
    merged.write_json(args.write_baseline)
    for spec, by_workload in merged.environment["run_sd"].items():
        for key, sd in by_workload.items():
            stdout.print(
                f"{spec} {key}: ratio {merged.ratio(spec, next(w for w in merged.workloads() if w.key == key)).ratio:.3f}, "
                f"spread between runs (sd of the log ratio) {sd:.3f}",
                markup=False,
                highlight=False,
            )
    stdout.print(f"wrote {args.write_baseline} ({args.baseline_runs} runs)", markup=False, highlight=False)
    return 0


def _without(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` without the given value-taking flags (``--flag value`` or ``--flag=value``)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in flags:
            skip = True
            continue
        if any(item.startswith(flag + "=") for flag in flags):
            continue
        out.append(item)
    return out


def _run(args) -> int:
    import torch
    from rich.console import Console

    from dnspec.benchmarks import gate as bench_gate
    from dnspec.benchmarks import report as bench_report
    from dnspec.benchmarks import results as bench_results
    from dnspec.benchmarks import timing as bench_timing
    from dnspec.benchmarks import workloads as bench_workloads
    from dnspec.implementations.specs import SpecError, load_implementation

    started = time.perf_counter()
    stdout = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)
    stderr = Console(file=sys.stderr, highlight=False)

    # --- options, checked before anything is measured ---
    for path, flag, suffix in (
        (args.json, "--json", ".json"),
        (args.markdown, "--markdown", ".md"),
        (args.plot, "--plot", ".png"),
        (args.write_baseline, "--write-baseline", ".json"),
    ):
        _check_output(path, flag, suffix)
    if args.plot and not bench_report.matplotlib_available():
        raise Usage(f"--plot {args.plot}: {bench_report.PLOT_INSTALL}")
    if args.write_baseline and args.baseline_runs > 1:
        return _baseline_from_runs(args, stdout)
    if args.baseline_runs < 1:
        raise Usage(f"--baseline-runs {args.baseline_runs}: must be at least 1")
    baseline = None
    threshold = None
    if args.baseline:
        try:
            baseline = bench_results.load_result(args.baseline)
            threshold = bench_gate.parse_slowdown(args.max_slowdown)
        except bench_workloads.BenchError as problem:
            raise Usage(f"--baseline: {problem}" if args.baseline in str(problem) else str(problem)) from None
        if args.scaling:
            raise Usage("--scaling and --baseline do not go together: the gate reruns the baseline's workloads")
    for flag, value in (("--repeats", args.repeats), ("--blocks", args.blocks), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise Usage(f"{flag} {value}: must be at least 1")
    if args.gate_budget < 0:
        raise Usage(f"--gate-budget {args.gate_budget}: must be >= 0")
    if args.min_sample_ms is not None and args.min_sample_ms < 0:
        raise Usage(f"--min-sample-ms {args.min_sample_ms}: must be >= 0")

    batch_sizes = _ints(args.batch_sizes, "--batch-sizes")
    max_boxes = _ints(args.max_boxes, "--max-boxes")
    num_denoising = _ints(args.num_denoising, "--num-denoising")
    base_w = baseline.workloads()[0] if baseline and baseline.workloads() else None
    device = args.device or (base_w.device if base_w else "cpu")
    dtype = args.dtype or (base_w.dtype if base_w else "float32")
    problem = _device_problem(device)
    if problem:
        raise Usage(problem)
    device_kind = torch.device(device).type
    threads = (
        args.threads
        or (baseline.threads if baseline and baseline.threads else None)
        or (1 if device_kind == "cpu" else torch.get_num_threads())
    )
    clock_name = args.clock or (baseline.environment.get("clock") if baseline else None) or "auto"
    try:
        clock = bench_timing.resolve_clock(clock_name, device, threads)
    except bench_workloads.BenchError as problem:
        raise Usage(str(problem)) from None
    rounds = args.repeats or (baseline.rounds if baseline else bench_workloads.DEFAULT_ROUNDS)
    blocks = args.blocks or (baseline.environment.get("blocks") if baseline else None) or bench_workloads.DEFAULT_BLOCKS
    min_sample_s = (
        args.min_sample_ms / 1e3
        if args.min_sample_ms is not None
        else (baseline.min_sample_s if baseline else bench_workloads.DEFAULT_MIN_SAMPLE_S)
    )
    if baseline and rounds < bench_gate.MIN_GATE_ROUNDS:
        raise Usage(f"--repeats {rounds}: the gate needs at least {bench_gate.MIN_GATE_ROUNDS} rounds per workload")

    common = {}
    if args.num_queries is not None:
        common["num_queries"] = args.num_queries
    if args.embed_dim is not None:
        common["embed_dim"] = args.embed_dim
    if args.scaling:
        if batch_sizes or max_boxes or num_denoising:
            raise Usage("--scaling sweeps its own sizes; drop --batch-sizes, --max-boxes and --num-denoising")
        workloads = []
        for sweep in bench_workloads.scaling_workloads(device, dtype).values():
            for w in sweep:
                w = _with_common(w, common)
                if w not in workloads:
                    workloads.append(w)
    elif baseline and not (batch_sizes or max_boxes or num_denoising or common or args.device or args.dtype):
        workloads = baseline.workloads()
    else:
        workloads = bench_workloads.grid(
            batch_sizes=batch_sizes
            or (
                sorted({w.batch_size for w in baseline.workloads()})
                if baseline
                else bench_workloads.DEFAULT_BATCH_SIZES
            ),
            max_boxes=max_boxes or ((base_w.max_boxes,) if base_w else (bench_workloads.DEFAULT_MAX_BOXES,)),
            num_denoising=num_denoising
            or ((base_w.num_denoising,) if base_w else (bench_workloads.DEFAULT_NUM_DENOISING,)),
            device=device,
            dtype=dtype,
            **common,
        )

    specs = list(args.specs) or ([s for s in baseline.specs()] if baseline else default_specs())
    if "reference" not in specs:
        specs.insert(0, "reference")
    specs = list(dict.fromkeys(specs))
    impls = []
    for spec in specs:
        try:
            impls.append(load_implementation(spec))
        except SpecError as error:
            where = " (named by the baseline; pass the SPECs to gate explicitly)" if baseline and not args.specs else ""
            raise Usage(f"{error}{where}") from None

    # --- measuring ---
    allocator = "" if args.default_allocator else bench_timing.steady_allocator()

    def measure(workloads, memory: bool) -> list:
        from dnspec.benchmarks.isolated import measure_isolated  # each workload in a worker: a crash is a row

        with bench_timing.torch_threads(threads), _Progress(stderr, len(workloads) * rounds) as progress:
            return measure_isolated(
                impls,
                workloads,
                rounds=rounds,
                blocks=blocks,
                min_sample_s=min_sample_s,
                clock=clock,
                memory=memory,
                steady=not args.default_allocator,
                specs=specs,
                on_progress=progress.advance,
                time_limit_s=args.time_limit,
                native_peers=not args.through_adapters,
            )

    measurements = measure(workloads, memory=not args.no_memory)
    env = bench_results.environment(threads)
    env.update({"clock": clock, "blocks": blocks, "allocator": allocator})
    result = bench_results.BenchResult(
        measurements=measurements,
        rounds=rounds,
        threads=threads,
        min_sample_s=min_sample_s,
        command=" ".join(["dnspec", "bench", *map(shlex.quote, sys.argv[2:])])
        if _invoked_as_bench()
        else "dnspec bench",
        environment=env,
        kind="scaling" if args.scaling else "bench",
        seconds=time.perf_counter() - started,
    )

    gate_rows = None
    if baseline:
        gate_rows = bench_gate.settle_gate(
            result, baseline, threshold, lambda pending: measure(pending, memory=False), budget_s=args.gate_budget
        )
        result.seconds = time.perf_counter() - started

    # --- showing ---
    bench_report.print_table(result, stdout)
    errors = [m for m in measurements if m.error]
    for m in errors:
        stdout.print(f"ERROR {m.spec} on {m.workload.short}: {m.error}", style="bold red", markup=False)

    code = 1 if errors else 0
    if baseline:
        if not any(r.verdict != "not compared" for r in gate_rows):
            bench_report.print_gate(gate_rows, stdout, threshold)
            print(
                "dnspec bench: nothing in this run can be compared with the baseline (no implementation other "
                "than the reference measured on a workload the baseline has)",
                file=sys.stderr,
            )
            code = 2
        else:
            bench_report.print_gate(gate_rows, stdout, threshold)
            stdout.print(bench_report.gate_summary(gate_rows, threshold), markup=False, highlight=False)
            drift = bench_gate.reference_drift(result, baseline)
            if drift is not None:
                stdout.print(
                    f"the reference itself took {drift:.2f}x its baseline time (absolute, not gated: it is the "
                    "yardstick, and absolute times differ between machines and loads)",
                    markup=False,
                    highlight=False,
                )
            if any(r.verdict == "slower" for r in gate_rows):
                code = max(code, 1)

    analysis = ""
    fits = None
    if args.scaling:
        fits = bench_report.fit_scaling(result)
        analysis = bench_report.scaling_analysis(result, fits)
        stdout.print()
        stdout.print(analysis, markup=False, highlight=False)

    data = result.to_dict()
    if gate_rows is not None:
        data["gate"] = {"baseline": args.baseline, "max_slowdown": threshold, "rows": [r.to_dict() for r in gate_rows]}
    if fits:
        data["scaling_fit"] = {
            spec: {"coefficients": f.coefficients, "median_error": f.median_error, "max_error": f.max_error}
            for spec, f in fits.items()
        }
    for path in (args.json, args.write_baseline):
        if path:
            import json

            with open(path, "w") as handle:
                json.dump(data, handle, indent=1)
                handle.write("\n")
    if args.write_baseline and errors:
        stdout.print(f"note: {args.write_baseline} holds errors; a gate cannot compare those rows", markup=False)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(bench_report.markdown(result, gate_rows, analysis))
    if args.plot:
        if args.scaling:
            bench_report.plot_scaling(result, args.plot, fits)
        else:
            bench_report.plot_throughput(result, args.plot)
    written = [p for p in (args.json, args.write_baseline, args.markdown, args.plot) if p]
    if written:
        stdout.print("wrote " + ", ".join(written), markup=False, highlight=False)
    return code


def _with_common(w, common: dict):
    from dataclasses import replace

    return replace(w, **common) if common else w


def default_specs() -> list[str]:
    from dnspec.implementations.specs import installed_builtin_names

    names = installed_builtin_names()
    return ["reference"] + [n for n in names if n != "reference"]


def _invoked_as_bench() -> bool:
    return len(sys.argv) >= 2 and sys.argv[1] == "bench"


class _Progress(ProgressBar):
    """The shared progress bar, worded for timing."""

    def __init__(self, console, total: int):
        super().__init__(console, total, "warming up", eta=True)

    def advance(self, description: str, n: int = 1) -> None:
        self.describe(f"timing {description}")
        super().advance(n)
