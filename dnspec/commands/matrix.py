"""``dnspec matrix [SPEC...]``: the conformance table of several implementations.

Runs ``dnspec verify`` on each implementation (by default the reference and every
built-in whose package is installed here) and writes one markdown table: rows are
implementations (with their package version), columns property families, cells pass /
fail (one-line reason) / advisory / skipped. Each implementation runs in its own
subprocess (``python -m dnspec verify SPEC --report tmp.json``), so one that crashes the
interpreter, exhausts memory or hangs inside C code (where the per-call SIGALRM limit
cannot reach) costs its own row, never the table; a subprocess that ends without a report
gets an error row with its exit status and last line of output.

``--parallel N`` runs up to N of those subprocesses at once. Each verify run already has a
worker per core, but it also has phases on one core (starting Python, importing torch and
the peer's package, writing its report), during which the other cores wait: on CI's two
cores the peers matrix kept them busy 78% of the time one at a time. The table, its row
order and each row are the same whatever N (each row is its own subprocess and report);
only the order of the progress lines follows which finishes first.

Each SPEC's accepted divergences come from ``[tool.dnspec]`` (:mod:`dnspec.config`: the
nearest pyproject.toml, or ``--config FILE``), so its cells say KNOWN where a divergence is
accepted (:mod:`dnspec.running.accept`).

Exit status: 0 when the table was written (whatever it says: divergences of peers are
what it is for), 2 when it could not be (no implementation, unusable option).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_TIMEOUT_S = 900.0


def _count(text: str) -> int:
    """--parallel's value: a whole number of subprocesses, at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of subprocesses, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dnspec.commands.verify_options import DEFAULT_TIME_LIMIT_S
    from dnspec.generation.profiles import PROFILES

    parser = subparsers.add_parser(
        "matrix",
        help="conformance table of several implementations",
        description=(
            "Run `dnspec verify` on each SPEC (default: the reference and every installed built-in), each in its "
            "own subprocess, and write a markdown conformance table: rows implementations, columns property families."
        ),
    )
    parser.add_argument(
        "specs", nargs="*", metavar="SPEC", help="implementations (default: reference and every installed built-in)"
    )
    parser.add_argument(
        "--out", default=None, metavar="FILE.md", help="write the table (markdown) here; it is printed either way"
    )
    parser.add_argument(
        "--json",
        default=None,
        metavar="FILE.json",
        help="also write every implementation's verify report, as one JSON list",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="Hypothesis profile for every run (default: ci when $CI is set, else dev)",
    )
    parser.add_argument("--max-examples", type=int, default=None, metavar="N", help="Hypothesis examples per property")
    parser.add_argument("--seed", type=int, default=None, metavar="S", help="seed for every run")
    parser.add_argument("--device", default="cpu", help="device the generated cases live on (default cpu)")
    parser.add_argument("--strict", action="store_true", help="violated upstream advisories fail")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="SECONDS",
        help="per-call time limit inside each run",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"stop a whole verify subprocess after this long (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these properties or families")
    parser.add_argument(
        "--against",
        default=None,
        metavar="BASELINE",
        help="verify every other SPEC --against BASELINE too (a column comparing each with it; default: "
        "`against` in [tool.dnspec], if set)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes inside each verify run (default: its own default, one per core)",
    )
    parser.add_argument(
        "--parallel",
        type=_count,
        default=1,
        metavar="N",
        help="verify up to N implementations at once, each in its own subprocess (default 1); the table is the "
        "same, the progress lines come as runs finish",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="read [tool.dnspec] (its accepted divergences, contract and against) from FILE (default: the nearest "
        "pyproject.toml with one)",
    )
    parser.set_defaults(func=run)
    return parser


def accepted_for(spec: str, config) -> list:
    """The accepted divergences of ``spec`` in the configuration (those naming no SPEC
    apply to every SPEC)."""
    from dnspec.running.accept import for_spec

    return for_spec(config.accept, spec) if config is not None else []


def default_specs() -> list[str]:
    from dnspec.implementations.specs import installed_builtin_names

    names = installed_builtin_names()
    return ["reference"] + [n for n in names if n != "reference"]


def verify_command(spec: str, report_path: str, args) -> list[str]:
    """The verify subprocess for one implementation (``SPEC@NAME``: under contract NAME,
    :func:`dnspec.contract.lineages.split_spec`)."""
    from dnspec.contract.lineages import split_spec

    spec, contract = split_spec(spec)
    command = [sys.executable, "-m", "dnspec", "verify", spec, "--report", report_path]
    if contract:
        command += ["--contract", contract]
    if args.profile:
        command += ["--profile", args.profile]
    for flag, value in (("--max-examples", args.max_examples), ("--seed", args.seed)):
        if value is not None:
            command += [flag, str(value)]
    command += ["--device", args.device, "--time-limit", f"{args.time_limit:g}"]
    if args.strict:
        command.append("--strict")
    if args.only:
        command += ["--only", *args.only]
    if args.jobs is not None:
        command += ["--jobs", str(args.jobs)]
    if getattr(args, "config", None):
        command += ["--config", args.config]
    return command


def run_one(spec: str, args, workdir: str, progress=None, against: str | None = None):
    """Verify ``spec`` in a subprocess and return its VerifyReport (an error report if
    the subprocess ended without writing one)."""
    from dnspec.reports.records import VerifyReport, read_report

    report_path = os.path.join(workdir, f"report-{abs(hash(spec))}-{abs(hash(against))}.json")
    command = verify_command(spec, report_path, args)
    if against:
        command += ["--against", against]
    else:  # the plain column: never `against` from [tool.dnspec], which has its own column
        command.append("--no-against")
    started = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        done = subprocess.run(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            timeout=args.timeout,
            env=env,
        )
        output, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired:
        report = VerifyReport(
            spec=spec, error=f"verify did not finish within --timeout {args.timeout:g} s and was killed", exit_code=-9
        )
        report.seconds = round(time.perf_counter() - started, 1)
        return report
    reason = "it wrote no report"
    if os.path.exists(report_path):
        try:
            return read_report(report_path)
        except (OSError, ValueError, TypeError) as error:
            reason = f"its report could not be read ({type(error).__name__}: {error})"
    last = [line for line in (output or "").splitlines() if line.strip()]
    tail = f"; last output: {last[-1][:200]}" if last else ""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    report = VerifyReport(spec=spec, error=f"verify {how} and {reason}{tail}", exit_code=code)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def run(args) -> int:
    from rich.console import Console

    from dnspec.commands.verify import environment
    from dnspec.config import ConfigError, load
    from dnspec.reports.conformance import matrix_markdown
    from dnspec.reports.text import summary_line
    from dnspec.running import accept

    try:
        config = load(getattr(args, "config", None))
    except ConfigError as problem:
        print(f"dnspec matrix: {problem}", file=sys.stderr)
        return 2
    against = args.against or config.against  # --against, else `against` in [tool.dnspec]
    specs = args.specs or default_specs()
    if not specs:
        print("dnspec matrix: no implementation to run", file=sys.stderr)
        return 2
    console = Console(file=sys.stderr, highlight=False, markup=False, soft_wrap=True)

    def row(spec: str):
        """One implementation's report (its accepted divergences applied) and, with a
        baseline, its compatibility with it; runs in a thread, its verify in a subprocess
        that writes its report in a folder of this row's own (a SPEC given twice is two rows)."""
        folder = tempfile.mkdtemp(dir=workdir)
        report = run_one(spec, args, folder)
        if not report.error:
            accept.apply(report, accepted_for(spec, config))
        if against and not accept.same_spec(spec, against):  # the column comparing it with the baseline
            compared = run_one(spec, args, folder, against=against)
            report.options["against_compatibility"] = compared.error or compared.compatibility
        return report

    reports: list = [None] * len(specs)
    with (
        tempfile.TemporaryDirectory(prefix="dnspec-matrix-") as workdir,
        concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool,
        console.status(f"dnspec verify: {len(specs)} implementations, {args.parallel} at a time") as status,
    ):
        futures = {pool.submit(row, spec): index for index, spec in enumerate(specs)}
        for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
            index = futures[future]
            report = reports[index] = future.result()
            line = f"ERROR {specs[index]}: {report.error}" if report.error else summary_line(report)
            console.print(f"[{index + 1}/{len(specs)}] {line}")
            status.update(f"dnspec verify: {done} of {len(specs)} implementations done")
    command = "dnspec matrix" + (" " + shlex.join(args.specs) if args.specs else "")
    if args.profile:
        command += f" --profile {args.profile}"
    if args.strict:
        command += " --strict"
    if args.max_examples is not None:
        command += f" --max-examples {args.max_examples}"
    if args.only:
        command += " --only " + shlex.join(args.only)
    if args.out:
        command += f" --out {shlex.quote(args.out)}"
    env = environment()
    env["device"] = args.device
    profiles_used = sorted({r.options.get("profile") for r in reports if r.options.get("profile")})
    if profiles_used:
        env["Hypothesis profile"] = ", ".join(profiles_used)
    if args.against:
        command += f" --against {shlex.quote(args.against)}"
    text = matrix_markdown(reports, command=command, environment=env, against=against)
    if args.out:
        Path(args.out).write_text(text)
        console.print(f"wrote {args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    sys.stdout.write(text)
    return 0
