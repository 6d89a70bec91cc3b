"""``dnspec verify SPEC``: check one implementation against every registered property.

Runs the pipeline of :mod:`dnspec.running.runner` (every contract property in the common regime
and in each edge regime, the statistical properties and advisories on their fixed
batches), then prints the verdict (:mod:`dnspec.reports.text`): the compatibility line, one
line per property (PASS / FAIL / SKIP / ADVISORY: holds, holds except in regimes R, fails
in the common regime), and each divergence once with its regimes, the properties it
affects, its minimal example and the command that replays it; a progress bar on stderr
while it runs (on a terminal). Exit status: 0 every property holds (advisories and skips
do not count against it), 1 at least one divergence in a contract property, 2 the SPEC
cannot be loaded or the options are unusable (one line says why), 3 dnspec itself broke
(a bug: please report).

The implementation under test is treated as hostile: whatever it prints during a call
(or while its module imports) is captured in a bounded buffer (:mod:`dnspec.calling.output_capture`)
and only counted on the report line; a call that runs past ``--time-limit`` is stopped (SIGALRM, main thread) and
the implementation is not called again in this run; anything it raises, or returns
wrongly, is a failed property, never a dnspec traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shlex
import sys
import time

from dnspec.calling.output_capture import BoundedOutput, captured, capturing_implementation
from dnspec.commands.verify_options import (
    DEFAULT_TIME_LIMIT_S,
    UsageProblem,
    build_parser,
    configured_runs,
    device_problem,
    hypothesis_profile,
    judged_fixed,
    selected_properties,
    signature_problem,
)
from dnspec.running.progress import ProgressBar


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dnspec verify`` (its options: :mod:`dnspec.commands.verify_options`)."""
    parser = build_parser(subparsers)
    parser.set_defaults(func=run)
    return parser


# --- replaying ------------------------------------------------------------------------------


def command_line(args, only: str | None = None, regime: str | None = None, seed: int | None = None) -> str:
    """The verify command for these options, optionally narrowed to one property and one
    regime, with a Hypothesis seed (replays a run that was not derandomized)."""
    parts = ["dnspec", "verify", args.spec]
    if args.profile:
        parts += ["--profile", args.profile]
    seed = args.seed if args.seed is not None else seed
    for flag, value, default in (
        ("--max-examples", args.max_examples, None),
        ("--seed", seed, None),
        ("--device", args.device, "cpu"),
        ("--dtype", args.dtype, "float32"),
        ("--time-limit", args.time_limit, DEFAULT_TIME_LIMIT_S),
    ):
        if value != default:
            parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    if args.strict:
        parts.append("--strict")
    if args.convention:
        parts += ["--convention", args.convention]
    if getattr(args, "contract", None):
        parts += ["--contract", args.contract]
    if getattr(args, "against", None):
        parts += ["--against", args.against]
    elif getattr(args, "no_against", False):
        parts.append("--no-against")
    if args.no_pinned:
        parts.append("--no-pinned")
    if args.no_shrink:
        parts.append("--no-shrink")
    if only:
        parts += ["--only", only]
    elif args.only:
        parts += ["--only", *args.only]
    if regime:
        parts += ["--regime", regime]
    elif args.regime:
        parts += ["--regime", *args.regime]
    return shlex.join(parts)


def replay_hint(args, divergence, profile: str, seed) -> str:
    """The command that replays one divergence: its example's property, in its regime."""
    prop = divergence.example_label.split("[")[0] or divergence.labels[0].split("[")[0]
    from dnspec.checks.suite import BY_NAME, GENERATED_KINDS

    if BY_NAME[prop].kind not in GENERATED_KINDS:
        return f"{command_line(args, prop)}   (fixed seeded batch: the same command gives the same numbers)"
    command = command_line(args, prop, divergence.example_regime, seed)
    if seed is None:
        return f"{command}   (derandomized: the same command replays the same examples)"
    return f"{command}   (the same seed replays the same examples)"


# --- the run --------------------------------------------------------------------------------


def environment() -> dict:
    import torch

    from dnspec import __version__

    return {"dnspec": __version__, "torch": torch.__version__, "python": platform.python_version()}


def _implementation_info(impl) -> dict:
    return {
        "name": impl.name,
        "label": impl.label,
        "version": impl.version,
        "description": impl.description,
        "accepts_noise": impl.accepts_noise,
        "fixes_advisories": impl.fixes_advisories,
    }


class _Screen:
    """Where the run shows itself: result lines to stdout as each property finishes,
    and a progress bar on stderr when stderr is a terminal (results then print above it
    if stdout is that terminal too)."""

    def __init__(self, total: int, stdout, stderr):
        from rich.console import Console

        self.stdout = stdout
        self.err_console = Console(file=stderr, highlight=False, markup=False, soft_wrap=True)
        self.out_console = Console(file=stdout, highlight=False, markup=False, soft_wrap=True)
        self.bar = ProgressBar(self.err_console, total, "starting", spinner=True)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def now_checking(self, text: str) -> None:
        self.bar.describe(text)

    def advance(self) -> None:
        self.bar.advance()

    def line(self, text: str, status: str | None = None) -> None:
        from rich.text import Text

        from dnspec.reports.records import STATUS_STYLE, STATUS_WORD

        styled = Text(text)
        if status in STATUS_WORD:
            styled.stylize(STATUS_STYLE[status], 0, len(STATUS_WORD[status]))
        console = self.err_console if self.bar.shown and self.out_console.is_terminal else self.out_console
        console.print(styled)


def run(args) -> int:
    from dnspec.calling.start_methods import StartMethodError, forced
    from dnspec.config import ConfigError

    try:
        forced()  # DNSPEC_START_METHOD, validated before anything runs
        runs = configured_runs(args)
    except (ConfigError, UsageProblem, StartMethodError) as problem:
        print(f"dnspec verify: {problem}", file=sys.stderr)
        return 2
    codes = [_run_one(one) for one in runs]
    return max(codes, default=0) if 130 not in codes else 130


def _run_one(args) -> int:
    try:
        code = _run(args)
        if getattr(args, "in_process", False):
            _exit_past_leftover_threads(code)
        return code
    except KeyboardInterrupt:
        print("dnspec verify: interrupted", file=sys.stderr)
        return 130
    except Exception as bug:  # a dnspec bug, not the implementation's: one line, traceback on request
        if os.environ.get("DNSPEC_DEBUG"):
            raise
        print(
            f"dnspec verify: internal error: {type(bug).__name__}: {bug} (set DNSPEC_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 3


def _exit_past_leftover_threads(code: int) -> None:
    """Under --in-process, a non-daemon thread the implementation started must not keep
    dnspec running once the verdict is out: exit now, past it."""
    import threading

    if any(t.is_alive() and not t.daemon and t is not threading.main_thread() for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(args) -> int:
    from dnspec.generation import profiles
    from dnspec.reports.records import DivergenceRecord, OutcomeRecord, VerifyReport
    from dnspec.reports.text import verdict_lines
    from dnspec.reports.writers import REPORT_SUFFIXES, wants_pictures, write_report

    started = time.perf_counter()
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # no CUDA context here: workers fork (running.workers)
    stdout, stderr = sys.stdout, sys.stderr
    profile = args.profile or profiles.default_profile()
    report = VerifyReport(spec=args.spec, command=command_line(args), environment=environment())

    pictures = None  # drawn after the run when an .html report is asked for (dnspec.reports.pictures)

    def finish(code: int) -> int:
        from dnspec.reports.annotations import print_annotations

        report.exit_code, report.seconds = code, round(time.perf_counter() - started, 2)
        for path in args.report or []:
            write_report(report, path, pictures=pictures)
        print_annotations(report, stdout)
        return code

    def usage(message: str) -> int:
        print(f"dnspec verify: {message}", file=stderr)
        report.error = message
        return finish(2)

    for path in args.report or []:
        if os.path.splitext(path)[1] not in REPORT_SUFFIXES:
            print(
                f"dnspec verify: --report {path}: use a .md or .json file name, or .xml (JUnit XML) or .html (a page with pictures)",
                file=stderr,
            )
            return 2
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            print(
                f"dnspec verify: --report {path}: the folder {os.path.dirname(os.path.abspath(path))} does not exist",
                file=stderr,
            )
            return 2
    try:
        names = selected_properties(args.only)
    except UsageProblem as problem:
        return usage(str(problem))
    if args.max_examples is not None and args.max_examples < 1:
        return usage(f"--max-examples {args.max_examples}: must be at least 1")
    if args.threads < 1:
        return usage(f"--threads {args.threads}: must be at least 1")
    if args.jobs is not None and args.jobs < 1:
        return usage(f"--jobs {args.jobs}: must be at least 1")
    problem = device_problem(args.device)
    if problem:
        return usage(problem)

    import torch

    from dnspec.calling import workers
    from dnspec.calling.call import HANGS
    from dnspec.checks.suite import GENERATED_KINDS, RunOptions
    from dnspec.implementations.specs import SpecError, load_implementation
    from dnspec.running import runner

    buffer = BoundedOutput()
    try:
        with captured(buffer):  # a module may print (or fail loudly) while it imports
            impl = load_implementation(args.spec, bind=getattr(args, "bind_table", None))
    except SpecError as error:
        return usage(str(error))
    except BaseException as error:  # SystemExit from the user's module, say
        if isinstance(error, KeyboardInterrupt):
            raise
        return usage(f"cannot load SPEC {args.spec!r}: loading it raised {type(error).__name__}: {error}")
    if buffer.total:
        report.notes.append(f"loading {args.spec!r} printed {_size(buffer.total)} (captured, not shown)")
    other_api = _other_api(impl, args, buffer)
    if other_api:
        return usage(f"{args.spec}: not RT-DETR's API: {other_api}; dnspec checks RT-DETR's contract only")

    time_limit = args.time_limit if args.time_limit and args.time_limit > 0 else None
    options = RunOptions(
        device=args.device,
        dtype=getattr(torch, args.dtype),
        strict=args.strict,
        max_examples=args.max_examples,
        seed=args.seed,
        time_limit_s=time_limit,
        threads=args.threads,
        jobs=args.jobs if args.jobs is not None else workers.default_jobs(),
        convention="four_nones" if args.convention == "rtdetr" else None,
        in_process=args.in_process,
        contract=args.contract,
    )
    if args.in_process:  # the only route where the implementation shares this process
        report.notes.append(
            "in-process: --in-process called the implementation in dnspec's own process (for debugging): an exit or "
            "crash of it ends this run, and this verdict is not isolated from it"
        )
    report.implementation = _implementation_info(impl)
    report.options = {
        "profile": profile,
        "max_examples": args.max_examples,
        "seed": args.seed,
        "device": args.device,
        "dtype": args.dtype,
        "strict": args.strict,
        "time_limit_s": time_limit,
        "only": names or [],
        "regimes": args.regime or [],
        "convention": args.convention,
        "contract": args.contract,
        "against": args.against,
    }
    signature = signature_problem(impl)
    if signature:
        report.notes.append(signature)
    selected = runner.plan(impl, options, names)
    generated = any(p.kind in GENERATED_KINDS and not skip for p, _, skip in selected)
    from dnspec.generation.regimes import NAMES

    report.regimes = [r for r in NAMES if not args.regime or r in args.regime] if generated else []
    stages = len(report.regimes) + sum(1 for p, _, skip in selected if p.kind not in GENERATED_KINDS and not skip)
    tested = capturing_implementation(impl, buffer)

    screen = _Screen(stages, stdout, stderr)
    screen.line(
        f"dnspec verify {impl.label}: {len(selected)} checks in {len(report.regimes)} input regimes, profile {profile}, "
        f"device {args.device}, {args.dtype}" + (f", time limit {time_limit:g} s per call" if time_limit else "")
    )
    for note in impl.notes:  # how the SPEC was loaded and bound, when not plainly
        screen.line(note)

    theirs = None
    if args.against:  # THEIRS first, in the same run, under the same contract (dnspec.running.against)
        from dnspec.running import against as against_run

        try:
            with captured(buffer):
                theirs = capturing_implementation(load_implementation(args.against), buffer)
        except SpecError as error:
            return usage(f"--against: {error}")
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            return usage(f"--against: cannot load {args.against!r}: loading it raised {type(error).__name__}: {error}")
        screen.line(f"dnspec verify {theirs.label} first (--against): its divergences are accepted for {impl.label}")
        with hypothesis_profile(profile, pinned_examples=not args.no_pinned, shrink=False):
            theirs_result = runner.run(
                theirs, options, names, args.regime, selected=runner.plan(theirs, options, names)
            )
        import dataclasses

        options = dataclasses.replace(options, against=theirs)
    with screen, hypothesis_profile(profile, pinned_examples=not args.no_pinned, shrink=not args.no_shrink):
        result = runner.run(
            tested,
            options,
            names,
            args.regime,
            on_stage=screen.now_checking,
            on_advance=screen.advance,
            selected=selected,
            capture=buffer,
            budget_s=getattr(args, "budget", None) or None,
        )
    if wants_pictures(args.report):  # redrawn from the live implementation, each call under the time limit
        from dnspec.reports.pictures import pictures_task

        pictures = workers.run_tasks(  # redrawn in a worker too: the implementation never runs here
            ["pictures"],
            functools.partial(pictures_task, tested, result.divergences, args.seed, args.device, time_limit),
            jobs=1,
            device=args.device,
            in_process=args.in_process,
        )[0]
        if isinstance(pictures, workers.WorkerDied):
            pictures = None

    shared = []  # MINE's divergences THEIRS shows too: accepted for MINE (dnspec.running.accept)
    if theirs is not None:
        shared, fixed = against_run.compare(result, theirs_result, tested, theirs, options, f"--against {args.against}")
        report.notes += [f"fixes {args.against}' divergence {line}" for line in fixed]
    report.compatibility, report.compatibility_level = result.compatibility, result.compatibility_level
    report.conventions = dict(result.conventions)
    from dnspec.running.verdict import bit_compatible_lineages

    bit_compatible = result.compatibility_level == "bit_compatible" and not args.against
    report.lineages = [args.contract] if args.contract and bit_compatible else []
    report.lineages += bit_compatible_lineages(result.lineages)
    report.calls, report.hypothesis_seed = result.calls, result.hypothesis_seed
    for divergence in result.divergences:
        report.divergences.append(
            DivergenceRecord.from_divergence(divergence, replay_hint(args, divergence, profile, result.hypothesis_seed))
        )
    for outcome in result.outcomes:
        replay = next((d.replay for d in report.divergences if d.number in outcome.divergences), "")
        report.outcomes.append(OutcomeRecord.from_outcome(outcome, replay=replay))
    if impl.name in HANGS.hung:
        report.notes.append(
            f"hang: {impl.name} ran past the time limit of {time_limit:g} s on {HANGS.hung[impl.name]!r}; "
            "it was stopped and not called again in this run, so every later property fails"
        )
    if result.unjudged:
        report.notes.append(
            f"budget: the run's budget of {args.budget:g} s (--budget) was spent; not judged: "
            f"{', '.join(result.unjudged)}; this verdict is incomplete (exit 1)"
        )
    if buffer.total:
        report.captured_output = {"chars": buffer.total, "head": buffer.head(), "tail": buffer.tail()}
        report.notes.append(
            f"output: the implementation printed {_size(buffer.total)} during the run; it was captured and is not shown "
            + (
                f"(the beginning is in {', '.join(args.report)})"
                if args.report
                else "(use --report FILE.md to see its beginning)"
            )
        )
    from dnspec.running import accept

    report.options["accepted"] = [entry.id for entry in getattr(args, "accepted", [])]
    accept.apply(report, list(getattr(args, "accepted", [])) + shared)
    report.fixed = judged_fixed(report.fixed, args, names)
    code = 1 if any(r.status == "fail" for r in report.outcomes) or result.unjudged else 0
    if report.fixed and getattr(args, "strict_accept", False):
        code = 1
    report.exit_code, report.seconds = code, round(time.perf_counter() - started, 2)
    for text in verdict_lines(report):
        screen.line(text, _status_of(text))
    if getattr(args, "write_accept", False):
        screen.line("")
        for text in write_accept_lines(report):
            screen.line(text)
    return finish(code)


def write_accept_lines(report) -> list[str]:
    """``--write-accept``: the accept block of today's divergences, ready to paste under
    ``[tool.dnspec]`` (the reason of each one already accepted kept)."""
    from dnspec.running.accept import accept_block

    if not report.divergences:
        return ["# no divergence to accept: [tool.dnspec] needs no accept list"]
    reasons = {d.id: d.accepted for d in report.divergences if d.accepted}
    return [
        "# today's divergences, for [tool.dnspec] in pyproject.toml (fill in each reason):",
        *accept_block([d.id for d in report.divergences], reasons).splitlines(),
    ]


def _status_of(line: str) -> str | None:
    from dnspec.reports.records import STATUS_WORD

    word = line.split(" ", 1)[0]
    return next((status for status, w in STATUS_WORD.items() if w == word), None)


def _other_api(impl, args, buffer) -> str:
    """What makes ``impl`` another API than RT-DETR's (:mod:`dnspec.calling.api_probe`: one probe
    call, in a worker process unless --in-process), or ''."""
    from dnspec.calling import workers

    limit = args.time_limit if args.time_limit and args.time_limit > 0 else None
    one = functools.partial(_probe_task, impl, limit, buffer)  # module-level: it pickles for spawn
    try:
        found = workers.run_tasks(
            ["probe"], one, jobs=1, device=args.device, capture=buffer, in_process=args.in_process
        )[0]
    except workers.WorkerError:
        raise  # dnspec's own failure (a task that does not pickle, say) is not "no other API"
    except Exception:  # the probe decides nothing it cannot finish: the properties will
        return ""
    return found.what if found is not None and hasattr(found, "what") else ""


def _probe_task(impl, limit, buffer, task):
    """The API probe, a worker task (module-level, its state as arguments)."""
    from dnspec.calling.api_probe import probe

    with captured(buffer):
        return probe(impl, limit)


def _size(chars: int) -> str:
    from dnspec.reports.records import human_size

    return human_size(chars)
