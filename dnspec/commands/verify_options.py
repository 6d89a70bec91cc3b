"""The options of ``dnspec verify``: its argument parser, the checks made before a run
(the signature, the device, ``--only``), the Hypothesis profile a run loads, and the runs
the command line asks for over ``[tool.dnspec]`` (:func:`configured_runs`: one namespace
per SPEC, each with its accepted divergences). Everything here is settled before an
implementation is called; a problem is a :class:`UsageProblem` (exit 2, one line).
:mod:`dnspec.commands.verify` runs what this module configured and reports it."""

from __future__ import annotations

import argparse
import contextlib
import inspect
import os

from dnspec.config import DTYPE_NAMES
from dnspec.implementations.binding import RTDETR_PARAMETERS

DEFAULT_TIME_LIMIT_S = 30.0
DEFAULT_BUDGET_S = 1800.0  # a whole verify run: past it, the verdict so far and what was not judged (exit 1)


def _seconds(text: str) -> float:
    """--budget's value: a number of seconds, 0 for none."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be a number of seconds (0: no budget), not {text!r}")
    return value


DEVICES = ("cpu", "cuda", "mps")


def build_parser(subparsers) -> argparse.ArgumentParser:
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
        "--budget",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help=f"stop the whole run after this long with the verdict so far, saying what was not judged, exit 1 "
        f"(default {DEFAULT_BUDGET_S:g}; 0 = no budget)",
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
    parser.add_argument(
        "--bind",
        action="append",
        default=None,
        metavar="NAME=PARAM",
        help="give RT-DETR's argument NAME to the builder's parameter PARAM (a fork whose parameters are renamed; "
        "repeatable, over the bind table of [tool.dnspec]; docs/adapters.md)",
    )
    add_accept_arguments(parser)
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
        signature.bind(*RTDETR_PARAMETERS)
    except TypeError as error:
        return (
            f"signature: {impl.name} has parameters {signature}, which cannot take the upstream arguments "
            f"({', '.join(RTDETR_PARAMETERS)}): {error}; every property will fail with a TypeError"
        )
    return ""


class UsageProblem(Exception):
    """An option dnspec cannot run with (exit 2, one line)."""


def device_problem(device: str) -> str:
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
    with profiles.outside_the_tree():  # no .hypothesis/ in the user's tree, no draws steered by its files
        profiles.load_profile(name, pinned_examples=pinned_examples, shrink=shrink, outside=True)
        try:
            yield
        finally:
            settings.load_profile(previous)


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
        ("budget", config.budget if config.budget is not None else DEFAULT_BUDGET_S),
        ("report", config.reports or None),
    ):
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    from dnspec.implementations.binding import parse_bind

    try:
        args.bind_table = {**config.bind, **parse_bind(getattr(args, "bind", None) or [], "--bind")}
    except ValueError as error:
        raise UsageProblem(str(error)) from None
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
