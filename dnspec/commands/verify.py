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
import contextlib
import inspect
import os
import platform
import shlex
import sys
import time

from dnspec.calling.output_capture import BoundedOutput, captured, capturing_implementation
from dnspec.config import DTYPE_NAMES
from dnspec.running.progress import ProgressBar

DEFAULT_TIME_LIMIT_S = 30.0
UPSTREAM_ARGUMENTS = (
    "targets",
    "num_classes",
    "num_queries",
    "class_embed",
    "num_denoising",
    "label_noise_ratio",
    "box_noise_scale",
)
DEVICES = ("cpu", "cuda", "mps")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from dnspec.generation.profiles import PROFILES
    from dnspec.generation.regimes import NAMES as REGIME_NAMES

    parser = subparsers.add_parser(
        "verify",
        help="check one implementation against the CDN contract",
        description=(
            "Check an implementation against every dnspec property. SPEC is a built-in name "
            "(reference, ...), package.module:callable, path/to/file.py:callable, or a name in the "
            "'dnspec.implementations' entry-point group. Exit 0: all properties hold; 1: some fail; "
            "2: the SPEC cannot be loaded or an option is unusable."
        ),
    )
    parser.add_argument(
        "spec",
        metavar="SPEC",
        nargs="?",
        default=None,
        help="the implementation to check (default: the spec(s) of [tool.dnspec] in pyproject.toml)",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=None,
        help="Hypothesis profile: ci (derandomized), dev (default; replays saved failures first), thorough (10x examples); default ci when $CI is set",
    )
    parser.add_argument(
        "--max-examples",
        type=int,
        default=None,
        metavar="N",
        help="Hypothesis examples per property (overrides the profile)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="S",
        help="seed for Hypothesis and the statistical batches (replays a run)",
    )
    parser.add_argument(
        "--device", default=None, help="device the generated cases live on: cpu, cuda, cuda:1, mps (default cpu)"
    )
    parser.add_argument(
        "--dtype",
        choices=DTYPE_NAMES,
        default=None,
        help="dtype of the generated boxes and class embedding (default float32)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="violated upstream advisories fail instead of being reported"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"stop any single call of the implementation after this long (default {DEFAULT_TIME_LIMIT_S:g}; 0 = no limit)",
    )
    parser.add_argument(
        "--no-pinned",
        action="store_true",
        help="skip dnspec's pinned edge-case examples, so failures are found by generation and shrunk (replays a minimal counterexample)",
    )
    parser.add_argument(
        "--no-shrink",
        action="store_true",
        help="report the first failing example as found, without shrinking it (faster triage)",
    )
    parser.add_argument(
        "--only", nargs="+", default=None, metavar="NAME", help="check only these properties or property families"
    )
    parser.add_argument(
        "--regime",
        nargs="+",
        default=None,
        metavar="NAME",
        choices=REGIME_NAMES,
        help=f"sweep only these input regimes ({', '.join(REGIME_NAMES)}; default all)",
    )
    parser.add_argument(
        "--report",
        action="append",
        default=None,
        metavar="FILE",
        help="also write the report to FILE, in the format its suffix names: .md (markdown), .json, "
        ".xml (JUnit XML, for CI test reports) or .html (one self-contained page with pictures of "
        "each divergence; pictures need the plot extra); repeat for several files",
    )
    parser.add_argument(
        "--convention",
        choices=("rtdetr",),
        default=None,
        help="require RT-DETR's answer to an all-empty batch, four Nones (default: any known "
        "convention, checked for consistency and named in the verdict)",
    )
    from dnspec.contract.lineages import NAMES as CONTRACT_NAMES

    parser.add_argument(
        "--contract",
        choices=CONTRACT_NAMES,
        default=None,
        help="judge by this lineage's contract (see `dnspec contracts`; default rtdetr, and the verdict names "
        "every lineage the builder is bit-compatible with)",
    )
    parser.add_argument(
        "--against",
        default=None,
        metavar="THEIRS",
        help="verify THEIRS first (same contract), then SPEC with THEIRS as the oracle of the differential "
        "properties: THEIRS' divergences are accepted for SPEC (KNOWN), and the verdict says whether SPEC is "
        "bit-compatible with THEIRS, has the same distributions, or departs",
    )
    parser.add_argument(
        "--no-against",
        action="store_true",
        help="ignore `against` in [tool.dnspec]: verify SPEC against the contract only",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for the sweeps and fixed batches (default: one per core this process may "
        "use; 1: one worker: the implementation never runs in dnspec's own process, see --in-process)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="call the implementation in dnspec's own process, for debugging with pdb (default: always in worker "
        "processes, so that nothing it does, exit, crash, hang, can decide the verdict); the verdict says so",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch intra-op threads during the run (default 1: the cases are small, and waking threads "
        "costs more than they save)",
    )
    add_accept_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_accept_arguments(parser) -> None:
    """--config, and the accepted divergences' options (:mod:`dnspec.running.accept`)."""
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="read [tool.dnspec] from FILE (default: the nearest pyproject.toml with one, from the working folder up)",
    )
    parser.add_argument(
        "--accept",
        action="append",
        default=None,
        metavar="ID",
        help="accept the divergence ID (boxes.crossed@common; without @REGIME: in any regime): it prints as "
        "KNOWN and does not fail; repeatable, added to the accept list of [tool.dnspec]",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REPORT.json",
        help="accept every divergence of an earlier --report JSON file",
    )
    parser.add_argument(
        "--write-accept",
        action="store_true",
        help="after the verdict, print the accept = [...] block of today's divergences for [tool.dnspec], "
        "with reasons to fill in",
    )
    parser.add_argument(
        "--strict-accept",
        action="store_true",
        help="an accepted divergence that no longer happens (FIXED) fails the run (exit 1), as a strict xfail does",
    )


# --- checks before the run ----------------------------------------------------------------


def signature_problem(impl) -> str:
    """One line if the callable cannot take the upstream positional arguments, else ''."""
    try:
        signature = inspect.signature(impl.fn)
    except (TypeError, ValueError):
        return ""
    try:
        signature.bind(*UPSTREAM_ARGUMENTS)
    except TypeError as error:
        return (
            f"signature: {impl.name} has parameters {signature}, which cannot take the upstream arguments "
            f"({', '.join(UPSTREAM_ARGUMENTS)}): {error}; every property will fail with a TypeError"
        )
    return ""


class UsageProblem(Exception):
    """An option dnspec cannot run with (exit 2, one line)."""


def _device_problem(device: str) -> str:
    import torch

    kind = device.split(":")[0]
    if kind not in DEVICES:
        return f"--device {device}: unknown device type; use one of {', '.join(DEVICES)}"
    if kind == "cuda" and not torch.cuda.is_available():
        return f"--device {device}: no CUDA device here (torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'})"
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        return f"--device {device}: no MPS device here"
    return ""


def selected_properties(only: list[str] | None) -> list[str] | None:
    """Property names from --only, where a family name stands for its properties."""
    from dnspec.checks.suite import BY_NAME, FAMILIES, PROPERTIES

    if not only:
        return None
    names = []
    for item in only:
        if item in BY_NAME:
            names.append(item)
        elif item in FAMILIES:
            names.extend(p.name for p in PROPERTIES if p.family == item)
        else:
            raise UsageProblem(
                f"--only {item}: no such property or family; properties: {', '.join(BY_NAME)}; families: {', '.join(FAMILIES)}"
            )
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def hypothesis_profile(name: str, pinned_examples: bool = True, shrink: bool = True):
    """Load a dnspec Hypothesis profile for the duration of the run, then put back the
    one that was loaded (verify may run inside pytest, which has its own)."""
    from hypothesis import settings

    from dnspec.generation import profiles

    previous = settings.get_current_profile_name()
    profiles.load_profile(name, pinned_examples=pinned_examples, shrink=shrink)
    try:
        yield
    finally:
        settings.load_profile(previous)


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


def configured_runs(args) -> list:
    """One argument namespace per SPEC to verify: the command line over ``[tool.dnspec]``
    (:mod:`dnspec.config`), each with ``accepted`` (its accepted divergences). Raises
    ConfigError or UsageProblem (exit 2, one line)."""
    import copy

    from dnspec import config as config_module
    from dnspec.running import accept

    config = config_module.load(args.config)
    against_from_config = getattr(args, "against", None) is None and bool(config.against)
    against_from_config = against_from_config and not getattr(args, "no_against", False)
    for name, value in (
        ("profile", config.profile),
        ("device", config.device or "cpu"),
        ("dtype", config.dtype or "float32"),
        ("regime", config.regimes),
        ("convention", config.convention),
        ("contract", config.contract),
        ("against", None if getattr(args, "no_against", False) else config.against),
        ("jobs", config.jobs),
        ("time_limit", config.time_limit if config.time_limit is not None else DEFAULT_TIME_LIMIT_S),
        ("report", config.reports or None),
    ):
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    accepted = list(config.accept) + accept.from_command_line(getattr(args, "accept", None))
    if getattr(args, "baseline", None):
        try:
            from dnspec.reports.baseline import from_baseline

            accepted += from_baseline(args.baseline)
        except ValueError as error:
            raise UsageProblem(str(error)) from None
    for entry in accepted:
        problem = accept.id_problem(entry.id)
        if problem:
            raise UsageProblem(f"{entry.source} {problem}")
    specs = [args.spec] if args.spec else list(config.specs)
    if not specs:
        where = f"in {config.path}" if config.path else "(no pyproject.toml with [tool.dnspec] here or above)"
        raise UsageProblem(f"no SPEC: name one (dnspec verify SPEC) or set spec in [tool.dnspec] {where}")
    runs = []
    for index, spec in enumerate(specs, 1):
        one = copy.copy(args)
        one.spec = spec
        one.accepted = accept.for_spec(accepted, spec)
        if against_from_config and accept.same_spec(one.against, spec):
            one.against = None  # THEIRS itself, among the configured SPECs: verified on its own
        if len(specs) > 1 and args.report:  # one report file per SPEC: dnspec.xml -> dnspec-2.xml
            one.report = [_numbered(path, index) for path in args.report]
        runs.append(one)
    return runs


def _numbered(path: str, index: int) -> str:
    stem, suffix = os.path.splitext(path)
    return f"{stem}-{index}{suffix}" if index > 1 else path


def judged_fixed(entries: list, args, names) -> list:
    """Of the accepted entries that matched nothing, those this run could have seen: under
    --only, a check of a property that ran (a crash or hang may need a property left out);
    under --regime (or regimes in the configuration), an id naming regimes that were all
    swept (an id without @REGIME may live in a regime left out)."""
    from dnspec.generation.regimes import COMMON
    from dnspec.running.accept import split_id

    out = []
    for entry in entries:
        kind, regimes = split_id(entry["id"])
        crash = kind.startswith(("raises:", "died:")) or kind == "hangs"
        if names and (crash or kind.split(".")[0] not in names):
            continue
        if args.regime and (regimes is None or not (regimes or {COMMON}) <= set(args.regime)):
            continue
        out.append(entry)
    return out


def run(args) -> int:
    from dnspec.config import ConfigError

    try:
        runs = configured_runs(args)
    except (ConfigError, UsageProblem) as problem:
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
    problem = _device_problem(args.device)
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
            impl = load_implementation(args.spec)
    except SpecError as error:
        return usage(str(error))
    except BaseException as error:  # SystemExit from the user's module, say
        if isinstance(error, KeyboardInterrupt):
            raise
        return usage(f"cannot load SPEC {args.spec!r}: loading it raised {type(error).__name__}: {error}")
    if buffer.total:
        report.notes.append(f"loading {args.spec!r} printed {_size(buffer.total)} (captured, not shown)")

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
        )
    if wants_pictures(args.report):  # redrawn from the live implementation, each call under the time limit
        from dnspec.reports.pictures import divergence_pictures

        pictures = workers.run_tasks(  # redrawn in a worker too: the implementation never runs here
            ["pictures"],
            lambda task: divergence_pictures(
                tested, result.divergences, seed=args.seed, device=args.device, time_limit_s=time_limit
            ),
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
    code = 1 if any(r.status == "fail" for r in report.outcomes) else 0
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


def _size(chars: int) -> str:
    from dnspec.reports.records import human_size

    return human_size(chars)
