"""Sweeps, shrinks and fixed workloads: the checks executed on an implementation's calls,
always in worker processes (:mod:`dnspec.calling.workers`) unless ``options.in_process``.

- :func:`sweep` runs every check on every case Hypothesis draws in one input regime (the
  regime's pinned cases first) and never stops at a failure: each failed check becomes
  :class:`~dnspec.running.divergences.Finding` s in that regime's :class:`Cell`;
- :func:`dnspec.running.shrinks.shrink` (a module of its own) searches one regime for a
  case that fails with one signature and lets Hypothesis shrink it;
- :func:`fixed_workload` runs a statistical property or an advisory on its seeded batch.

A task whose worker dies is run again with each case in a process of its own
(:func:`run_isolated`), so a death is one finding with its case and regime. The run's
phases (plan, sweep every regime, classify, shrink, judge) are :mod:`dnspec.running.runner`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import seed as hypothesis_seed

from dnspec.calling import start_methods, workers
from dnspec.calling.call import ImplementationError
from dnspec.calling.clean_text import clean
from dnspec.calling.trial import Trial
from dnspec.checks.invariants import lineage_matches, same_seed_comparison
from dnspec.checks.suite import BY_NAME, Property, RunOptions, enforced, label
from dnspec.checks.violations import PropertyViolation, each_failure
from dnspec.contract import lineages
from dnspec.generation import regimes as regime_registry
from dnspec.generation.strategies import REGIME_SETS, edge_case_buckets, pinned_cases, regime_cases
from dnspec.running.divergences import HANGS as _HANGS
from dnspec.running.divergences import RAISES as _RAISES
from dnspec.running.divergences import VIOLATES, Finding, Signature, crash_signature


def property_named(name: str) -> Property:
    """The registered property ``name`` (how a property travels to a worker that is not forked)."""
    return BY_NAME[name]


start_methods.BY_REFERENCE.append(
    (lambda obj: isinstance(obj, Property), lambda p: (property_named, (p.name,)) if BY_NAME.get(p.name) is p else None)
)

# each edge regime gets this share of the common regime's examples, and at least EDGE_MIN
EDGE_SHARE = 0.2
EDGE_MIN = 5


def examples_for(regime: str, base: int) -> int:
    """Examples in ``regime`` when the common regime gets ``base``: bugs live mostly
    where users train, and each edge regime gets enough to find one that is there."""
    if regime == regime_registry.COMMON:
        return base
    return max(EDGE_MIN, math.ceil(base * EDGE_SHARE))


# --- results of a sweep -------------------------------------------------------------------


@dataclass
class Cell:
    """One property (one variant) in one regime: cases judged and what failed."""

    label: str
    regime: str
    cases: int = 0  # cases checked
    judged: int = 0  # cases on which the property held
    findings: dict = field(default_factory=dict)  # Signature -> first Finding
    counts: dict = field(default_factory=dict)  # Signature -> cases

    def add(self, finding: Finding) -> None:
        self.findings.setdefault(finding.signature, finding)
        self.counts[finding.signature] = self.counts.get(finding.signature, 0) + 1

    @property
    def status(self) -> str:
        return "fail" if self.findings else "pass"


# --- findings --------------------------------------------------------------------------------


def findings_from(error: BaseException, prop_label: str, regime: str, case) -> list[Finding]:
    """The findings one failed check stands for (see :mod:`dnspec.running.divergences`)."""
    base = prop_label.split("[")[0]
    found = []
    for leaf in each_failure(error) if isinstance(error, AssertionError) else [error]:
        if isinstance(leaf, ImplementationError):
            signature, where, details = crash_signature(leaf)
            found.append(
                Finding(prop_label, signature, str(leaf), getattr(leaf, "case", None) or case, regime, where, details)
            )
        elif isinstance(leaf, PropertyViolation):
            found.append(
                Finding(prop_label, Signature(VIOLATES, leaf.check or base), str(leaf), leaf.case or case, regime)
            )
        elif isinstance(leaf, AssertionError):
            found.append(Finding(prop_label, Signature(VIOLATES, base), str(leaf), case, regime))
        elif not isinstance(leaf, Exception):  # SystemExit, KeyboardInterrupt: only the implementation raises those
            signature, where, details = crash_signature(leaf)
            message = f"the implementation raised {type(leaf).__name__}: {leaf}"
            found.append(Finding(prop_label, signature, message, case, regime, where, details))
        else:  # a check could not read the output (a malformed value it did not expect)
            found.append(
                Finding(
                    prop_label,
                    Signature(VIOLATES, f"{base}.unreadable_output"),
                    f"checking the output raised {type(leaf).__name__}: {leaf}",
                    case,
                    regime,
                )
            )
    for finding in found:  # the implementation's text, shown on terminals, in reports and in CI logs
        finding.message, finding.where = clean(finding.message), clean(finding.where)
        finding.details = clean(finding.details)
    return found


def skip_reason(prop: Property, impl, options: RunOptions, variant=None) -> str | None:
    for name in (prop.name, prop.family):
        if name in impl.not_comparable:
            return f"not comparable: {impl.not_comparable[name]}"
    contract = lineages.get(options.contract)
    if prop.name in contract.in_contract:
        return f"part of contract {contract.name}: {contract.in_contract[prop.name]}"
    return prop.skip_reason(impl, options, variant)


# --- sweeps and shrinks ----------------------------------------------------------------------


class calls_limited:
    """While checking: ``options.time_limit_s`` on every implementation call made inside
    (dnspec.calling.call), and ``options.threads`` torch intra-op threads (one by default: on
    these small cases a parallel op spends more waking threads than it saves, up to
    milliseconds per op on a busy machine)."""

    def __init__(self, options: RunOptions):
        self.seconds, self.threads = options.time_limit_s, options.threads

    def __enter__(self):
        import torch

        from dnspec.calling import call as calling

        self.previous = calling.DEFAULT_TIME_LIMIT_S_ACTIVE, torch.get_num_threads()
        calling.DEFAULT_TIME_LIMIT_S_ACTIVE = self.seconds
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        import torch

        from dnspec.calling import call as calling

        calling.DEFAULT_TIME_LIMIT_S_ACTIVE, threads = self.previous
        torch.set_num_threads(threads)
        return False


def _hypothesis_test(fn, regime: str, impl, options: RunOptions, max_examples: int, seed, explicit: bool, shrink: bool):
    """``fn(case)`` as a Hypothesis test over ``regime``'s cases, with its pinned cases
    when ``explicit``; sweeps and shrinks of one regime get the same database key and seed."""
    test = given(case=regime_cases(regime, dtype=options.dtype, device=options.device))(fn)
    if explicit:
        for case in reversed(pinned_cases(regime, options.dtype, options.device)):
            test = example(case=case)(test)
    phases = [Phase.explicit] if explicit else []
    phases += [phase for phase in (Phase.reuse, Phase.generate) if phase in settings.default.phases]
    if shrink:
        phases.append(Phase.shrink)
    test = settings(
        settings.default,
        max_examples=max_examples,
        deadline=None,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )(test)
    if seed is not None:
        test = hypothesis_seed(seed)(test)
    test.hypothesis.inner_test._hypothesis_internal_add_digest = (
        f"dnspec|{impl.name}|{regime}|{options.device}|{options.dtype}".encode()
    )
    return test


def new_trial(impl, case, options: RunOptions) -> Trial:
    """The trial of one case under the run's contract: its required empty-batch convention
    (``--convention``, else the one a contract asked for by name requires) and its oracle
    (THEIRS under ``--against``, else the contract's reference)."""
    contract = lineages.get(options.contract)
    required = options.convention or (contract.empty_batch if options.contract else None)
    return Trial(impl, case, required_convention=required, contract=contract, oracle=options.against)


def _check(prop: Property, variant, trial):
    return prop.check(trial) if variant is None else prop.check(trial, variant)


DIED = "died: "  # the key of a divergence whose process died starts so: "died: killed by SIGSEGV"


def death_finding(prop_label: str, how: str, detail: str, case, regime: str, impl=None, call_regimes=None) -> Finding:
    """The finding of a call whose process died (``how``: "killed by SIGSEGV")."""
    name = getattr(impl, "name", "the implementation")
    return Finding(
        prop_label,
        Signature(_RAISES, DIED + how),
        f"{name} ended its process: {detail}",
        case,
        regime,
        call_regimes=call_regimes,
    )


def hang_finding(prop_label: str, how: str, detail: str, case, regime: str, impl=None, call_regimes=None) -> Finding:
    """The finding of a call the watchdog ended (the same signature as a call SIGALRM
    stopped: one ``hangs`` divergence)."""
    return Finding(prop_label, Signature(_HANGS, "timeout"), detail, case, regime, call_regimes=call_regimes)


def _judge(impl, case, regime: str, pending, options: RunOptions, compare_reference: bool) -> dict:
    """Every pending check on one case: {"results": {label: None (held) or [Finding]},
    "calls", "observed", "same_seed": (equal, compared), "lineages": {name: equal},
    "against_raised": bool}."""
    trial = new_trial(impl, case, options)
    results = {}
    for prop, variant in pending:
        name = label(prop, variant)
        try:
            _check(prop, variant, trial)
            results[name] = None
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # an implementation may raise anything; checks raise AssertionErrors
            results[name] = findings_from(error, name, regime, case)
    same, matches = (0, 0), {}
    if compare_reference and trial.called_main():
        compared = same_seed_comparison(trial)
        if compared is not None:
            same = (int(compared), 1)
        if options.contract is None and options.against is None:
            matches = lineage_matches(trial) or {}
    return {
        "results": results,
        "calls": trial.calls,
        "observed": dict(trial.observations),
        "same_seed": same,
        "lineages": matches,
        "against_raised": bool(trial.observations.get("against_raised")),
    }


def _judge_isolated(impl, case, regime: str, pending, options: RunOptions, compare_reference: bool) -> dict:
    """:func:`_judge` in a process forked for this case alone; a death is a finding of
    every pending check on this case (one divergence: the same signature)."""
    try:
        return workers.in_child(functools.partial(_judge, impl, case, regime, pending, options, compare_reference))
    except workers.ChildDied as died:
        return {
            "results": {
                label(p, v): [death_finding(label(p, v), died.how, died.detail, case, regime, impl)] for p, v in pending
            },
            "calls": 1,
            "observed": {},
            "same_seed": (0, 0),
            "lineages": {},
            "against_raised": False,
        }


def sweep_here(
    impl,
    regime: str,
    checks: list[tuple[Property, object]],
    options: RunOptions,
    *,
    max_examples: int,
    seed=None,
    stop_early: bool = False,
    compare_reference: bool = False,
    isolate_cases: bool = False,
) -> tuple[dict, dict]:
    """:func:`sweep`, in this process (a worker's); ``isolate_cases``: each case in a
    process of its own (an implementation known to kill its process)."""
    cells = {label(p, v): Cell(label(p, v), regime) for p, v in checks}
    stats = {"calls": 0, "cases": 0, "same_seed": [0, 0], "observed": {}, "lineages": {}, "against_raised": 0}
    explicit = Phase.explicit in settings.default.phases
    judge = _judge_isolated if isolate_cases else _judge

    def one_case(case):
        pending = [(p, v) for p, v in checks if not (stop_early and cells[label(p, v)].findings)]
        if not pending:
            return
        for bucket in edge_case_buckets(case):
            event(bucket)
        workers.note((regime, case))  # a worker that dies now names this case
        judged = judge(impl, case, regime, pending, options, compare_reference)
        stats["cases"] += 1
        for name, found in judged["results"].items():
            cell = cells[name]
            cell.cases += 1
            if found is None:
                cell.judged += 1
            for finding in found or ():
                cell.add(finding)
        stats["same_seed"] = [a + b for a, b in zip(stats["same_seed"], judged["same_seed"], strict=False)]
        for name, same in judged["lineages"].items():
            tally = stats["lineages"].setdefault(name, [0, 0])
            tally[0], tally[1] = tally[0] + same, tally[1] + 1
        stats["against_raised"] += judged["against_raised"]
        stats["calls"] += judged["calls"]
        for name, seen in judged["observed"].items():
            stats["observed"].setdefault(name, {}).setdefault(seen, case)

    test = _hypothesis_test(one_case, regime, impl, options, max_examples, seed, explicit, shrink=False)
    with calls_limited(options):
        test()
    return cells, stats


def sweep(
    impl,
    regime: str,
    checks: list[tuple[Property, object]],
    options: RunOptions,
    *,
    max_examples: int,
    seed=None,
    stop_early: bool = False,
    compare_reference: bool = False,
) -> tuple[dict, dict]:
    """Run every check on every case of ``regime`` (never stopping at a failure), in a
    worker process (see the module docstring).
    Returns ``({label: Cell}, stats)`` with stats ``calls``, ``cases``, ``same_seed``
    (cases whose main call equals the reference's under the same seed, and cases compared).
    ``stop_early``: stop checking a property at its first failure (a verdict is all that
    is wanted: the self-test)."""
    task = ("sweep", regime)
    execute = functools.partial(
        _sweep_task, impl, regime, checks, options, max_examples, seed, stop_early, compare_reference
    )
    value = run_isolated([task], execute, options, jobs=1)[0]
    return died_result(task, value, checks) if isinstance(value, workers.WorkerDied) else value


def _sweep_task(impl, regime, checks, options, max_examples, seed, stop_early, compare_reference, task):
    """A worker task of :func:`sweep` (module-level, its state as arguments: it pickles)."""
    return sweep_here(
        impl,
        regime,
        checks,
        options,
        max_examples=max_examples,
        seed=seed,
        stop_early=stop_early,
        compare_reference=compare_reference,
        isolate_cases=len(task) > 2,
    )


def run_isolated(tasks: list, execute, options: RunOptions, *, jobs: int, capture=None, on_done=None, skip=None):
    """``[execute(task) for task in tasks]`` on worker processes
    (:func:`dnspec.calling.workers.run_tasks`); a sweep or shrink whose worker died is run
    again with each case in a process of its own (``execute`` gets the task with
    ``"isolated"`` appended), and keeps its :class:`~dnspec.calling.workers.WorkerDied`
    only if that dies too. A task whose call the watchdog ended (``how`` is
    :data:`~dnspec.calling.workers.HUNG`) is not run again: it would hang again."""
    values = workers.run_tasks(
        tasks,
        execute,
        jobs=jobs,
        device=options.device,
        capture=capture,
        on_done=on_done,
        skip=skip,
        in_process=options.in_process,
    )
    dead = [
        i
        for i, (t, v) in enumerate(zip(tasks, values, strict=False))
        if isinstance(v, workers.WorkerDied) and v.how != workers.HUNG and t[0] != "fixed"
    ]
    if dead:
        again = workers.run_tasks(
            [(*tasks[i], "isolated") for i in dead],
            execute,
            jobs=jobs,
            device=options.device,
            capture=capture,
            in_process=options.in_process,
        )
        for i, value in zip(dead, again, strict=False):
            if not isinstance(value, workers.WorkerDied):
                values[i] = value
    return values


def fixed_workload(prop: Property, impl, options: RunOptions):
    """Run a statistical property or an advisory in a worker process: (status, message,
    details, findings); a worker that died is a failure."""
    task = ("fixed", prop)
    value = run_isolated([task], functools.partial(_fixed_task, prop, impl, options), options, jobs=1)[0]
    return died_result(task, value, []) if isinstance(value, workers.WorkerDied) else value


def _fixed_task(prop, impl, options, task):
    return fixed_here(prop, impl, options)


def fixed_here(prop: Property, impl, options: RunOptions):
    """:func:`fixed_workload`, in this process (a worker's)."""
    from dnspec.checks.distributions import DEFAULT_SEED

    workers.note((regime_registry.COMMON, None))
    from dnspec.calling import call as calling

    seed = DEFAULT_SEED if options.seed is None else options.seed
    try:
        if workers.IN_WORKER:
            calling.NOTE_EACH_CALL = lambda case: workers.note((regime_registry.COMMON, case))
        with calls_limited(options):
            note = prop.check(impl, seed=seed, device=options.device)
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        found = findings_from(error, prop.name, regime_registry.COMMON, None)
        crashed = any(f.signature.kind != VIOLATES for f in found)
        if not enforced(prop, impl, options) and not crashed:
            return "advisory", _first_line(clean(str(error))), clean(str(error)), []
        return "fail", _first_line(clean(str(error))), clean(str(error)), found
    finally:
        calling.NOTE_EACH_CALL = None
    return "pass", clean(note or ""), "", []


def died_result(task, died, checks):
    """What a task whose worker process died (twice: the second time with each case in a
    process of its own) counts as: for a sweep, one death finding of every check on the
    case the worker noted last (else in that regime); for a fixed batch, a failed property.
    A worker the watchdog ended (``how`` :data:`~dnspec.calling.workers.HUNG`) stands for a
    ``hangs`` finding instead, with the same case: one divergence however many checks."""
    kind, what = task[:2]
    made = hang_finding if died.how == workers.HUNG else death_finding
    if kind == "fixed":
        case = died.record[1] if isinstance(died.record, tuple) and hasattr(died.record[1], "targets") else None
        finding = made(what.name, died.how, died.detail, case, regime_registry.COMMON)
        return ("fail", f"checking {what.name}: {finding.message}", finding.message, [finding])
    regime, case = died.record if isinstance(died.record, tuple) and len(died.record) == 2 else (what, None)
    if not hasattr(case, "targets"):
        case = None
    cells = {}
    for prop, variant in checks:
        cell = Cell(label(prop, variant), what)
        cell.add(
            made(
                cell.label,
                died.how,
                died.detail,
                case,
                what,
                call_regimes=None if case is not None else REGIME_SETS[what],
            )
        )
        cells[cell.label] = cell
    return cells, {"calls": 0, "cases": 0, "same_seed": [0, 0], "observed": {}, "lineages": {}, "against_raised": 0}


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
