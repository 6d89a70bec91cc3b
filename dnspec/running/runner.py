"""Running the properties: the pipeline of a verify run.

1. generate   for each input regime (:mod:`dnspec.generation.regimes`), Hypothesis draws cases in that
              regime only (:func:`dnspec.generation.strategies.regime_cases`), the regime's canonical
              case pinned first; the common regime gets the profile's example count, each
              edge regime a share of it (:func:`examples_for`);
2. call       one :class:`~dnspec.running.trial.Trial` per case makes the calls the checks need,
              once each;
3. check      every contract property checks that trial (a sweep never stops at a failure:
              each property is judged on every case, and a failure is recorded as a
              :class:`~dnspec.running.divergences.Finding`); statistical properties and advisories
              run once on their fixed seeded batches;
4. classify   findings become divergences (:func:`dnspec.running.divergences.classify`), and each
              divergence's representative failure is shrunk on its own, in its own regime
              (:func:`shrink`), to the minimal example reported;
5. report     :class:`RunResult` holds one :class:`~dnspec.running.verdict.Outcome` per property (how it fared in
              each regime) and the divergences; :mod:`dnspec.reports.records` renders them.

Sweeps and shrinks of one regime share Hypothesis' seed (derandomized under the ci profile,
else the run's ``hypothesis_seed``), so a shrink starts from the very case the sweep
found, and ``--seed`` replays a run.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import seed as hypothesis_seed

from dnspec.checks.invariants import lineage_matches, same_seed_comparison
from dnspec.checks.suite import GENERATED_KINDS as GENERATED
from dnspec.checks.suite import PROPERTIES, Property, RunOptions, enforced, label
from dnspec.checks.violations import PropertyViolation, each_failure
from dnspec.contract import lineages
from dnspec.generation import regimes as regime_registry
from dnspec.generation.strategies import REGIME_SETS, edge_case_buckets, pinned_cases, regime_cases
from dnspec.running import workers
from dnspec.running.calling import HANGS, ImplementationError
from dnspec.running.divergences import RAISES, VIOLATES, Divergence, Finding, Signature, classify, crash_signature
from dnspec.running.trial import Trial
from dnspec.running.verdict import Outcome, compatibility, generated_outcome, property_line

# each edge regime gets this share of the common regime's examples, and at least EDGE_MIN
EDGE_SHARE = 0.2
EDGE_MIN = 5


def examples_for(regime: str, base: int) -> int:
    """Examples in ``regime`` when the common regime gets ``base``: bugs live mostly
    where users train, and each edge regime gets enough to find one that is there."""
    if regime == regime_registry.COMMON:
        return base
    return max(EDGE_MIN, math.ceil(base * EDGE_SHARE))


# --- results -------------------------------------------------------------------------------


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


@dataclass
class RunResult:
    """Everything one run found."""

    outcomes: list[Outcome]
    divergences: list[Divergence]
    compatibility: str
    hypothesis_seed: int | None
    calls: int = 0
    same_seed: tuple[int, int] = (0, 0)  # generated cases whose outputs equal the reference's, of those compared
    conventions: dict = field(default_factory=dict)  # {"empty_batch": "dummy_group"}: consistent conventions seen
    compatibility_level: str = ""  # a key of COMPATIBILITY
    lineages: dict = field(default_factory=dict)  # lineage contract -> [cases with its numbers, cases compared]
    against_raised: int = 0  # cases on which THEIRS (--against) raised, judged by the contract alone


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
    (dnspec.running.calling), and ``options.threads`` torch intra-op threads (one by default: on
    these small cases a parallel op spends more waking threads than it saves, up to
    milliseconds per op on a busy machine)."""

    def __init__(self, options: RunOptions):
        self.seconds, self.threads = options.time_limit_s, options.threads

    def __enter__(self):
        import torch

        from dnspec.running import calling

        self.previous = calling.DEFAULT_TIME_LIMIT_S_ACTIVE, torch.get_num_threads()
        calling.DEFAULT_TIME_LIMIT_S_ACTIVE = self.seconds
        torch.set_num_threads(self.threads)

    def __exit__(self, *exc):
        import torch

        from dnspec.running import calling

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
    """Run every check on every case of ``regime`` (never stopping at a failure).
    Returns ``({label: Cell}, stats)`` with stats ``calls``, ``cases``, ``same_seed``
    (cases whose main call equals the reference's under the same seed, and cases compared).
    ``stop_early``: stop checking a property at its first failure (a verdict is all that
    is wanted: the self-test)."""
    cells = {label(p, v): Cell(label(p, v), regime) for p, v in checks}
    stats = {"calls": 0, "cases": 0, "same_seed": [0, 0], "observed": {}, "lineages": {}, "against_raised": 0}
    explicit = Phase.explicit in settings.default.phases

    def one_case(case):
        pending = [(p, v) for p, v in checks if not (stop_early and cells[label(p, v)].findings)]
        if not pending:
            return
        for bucket in edge_case_buckets(case):
            event(bucket)
        trial = new_trial(impl, case, options)
        stats["cases"] += 1
        for prop, variant in pending:
            cell = cells[label(prop, variant)]
            cell.cases += 1
            try:
                _check(prop, variant, trial)
                cell.judged += 1
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # an implementation may raise anything; checks raise AssertionErrors
                for finding in findings_from(error, cell.label, regime, case):
                    cell.add(finding)
        if compare_reference and trial.called_main():
            compared = same_seed_comparison(trial)
            if compared is not None:
                stats["same_seed"][1] += 1
                stats["same_seed"][0] += compared
        if compare_reference and options.contract is None and options.against is None and trial.called_main():
            for name, same in (lineage_matches(trial) or {}).items():
                tally = stats["lineages"].setdefault(name, [0, 0])
                tally[0], tally[1] = tally[0] + same, tally[1] + 1
        stats["against_raised"] += bool(trial.observations.get("against_raised"))
        stats["calls"] += trial.calls
        for name, seen in trial.observations.items():
            stats["observed"].setdefault(name, {}).setdefault(seen, case)

    test = _hypothesis_test(one_case, regime, impl, options, max_examples, seed, explicit, shrink=False)
    with calls_limited(options):
        test()
    return cells, stats


class _Reproduced(Exception):
    """Raised inside a shrink run when the case shows the signature being shrunk."""


def shrink(
    impl,
    prop: Property,
    variant,
    regime: str,
    signature: Signature,
    options: RunOptions,
    *,
    max_examples: int,
    seed=None,
):
    """Find and shrink a case of ``regime`` on which ``prop`` fails with ``signature``
    (other failures do not count). Returns the minimal Finding, or None when generation
    does not reproduce it (it was seen on a pinned case only)."""
    last: list[Finding] = []

    def one_case(case):
        trial = new_trial(impl, case, options)
        try:
            _check(prop, variant, trial)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            for finding in findings_from(error, label(prop, variant), regime, case):
                if finding.signature == signature:
                    last[:] = [finding]
                    raise _Reproduced() from None

    test = _hypothesis_test(one_case, regime, impl, options, max_examples, seed, explicit=False, shrink=True)
    with calls_limited(options):
        try:
            test()
        except _Reproduced:
            return last[0] if last else None
    return None


# --- the whole run ---------------------------------------------------------------------------


def fixed_workload(prop: Property, impl, options: RunOptions):
    """Run a statistical property or an advisory: (status, message, findings)."""
    from dnspec.checks.distributions import DEFAULT_SEED

    seed = DEFAULT_SEED if options.seed is None else options.seed
    try:
        with calls_limited(options):
            note = prop.check(impl, seed=seed, device=options.device)
    except KeyboardInterrupt:
        raise
    except BaseException as error:
        found = findings_from(error, prop.name, regime_registry.COMMON, None)
        crashed = any(f.signature.kind != VIOLATES for f in found)
        if not enforced(prop, impl, options) and not crashed:
            return "advisory", _first_line(str(error)), str(error), []
        return "fail", _first_line(str(error)), str(error), found
    return "pass", note or "", "", []


def plan(impl, options: RunOptions, names=None):
    """(property, variant, skip reason) for every selected property and variant."""
    out = []
    for prop in PROPERTIES:
        if names and prop.name not in names:
            continue
        for variant in prop.variants(impl, options):
            out.append((prop, variant, skip_reason(prop, impl, options, variant)))
    return out


def run(
    impl,
    options: RunOptions = RunOptions(),
    names=None,
    regimes=None,
    *,
    on_stage=None,
    on_advance=None,
    stop_early=False,
    selected=None,
    capture=None,
) -> RunResult:
    """The verify pipeline (see the module docstring). ``names``: properties to run (None:
    all); ``regimes``: regimes to sweep (None: all); ``on_stage(text)`` says what runs now
    and ``on_advance()`` that a sweep or fixed batch finished (for a progress bar);
    ``stop_early``: verdicts only (no shrinking, each property stops at its first failure,
    one process); ``selected``: a :func:`plan` to run instead; ``capture``: the buffer the
    implementation's output goes to (worker processes send theirs back to it). With
    ``options.jobs`` above 1 the sweeps and fixed batches run in worker processes
    (:mod:`dnspec.running.workers`); shrinking stays here."""
    on_stage = on_stage or (lambda text: None)
    on_advance = on_advance or (lambda: None)
    HANGS.hung.pop(impl.name, None)  # "hung earlier in this run" means this run
    base = options.max_examples if options.max_examples is not None else settings.default.max_examples
    derandomized = settings.default.derandomize
    seed = options.seed if options.seed is not None else (None if derandomized else random.getrandbits(32))
    selected = plan(impl, options, names) if selected is None else selected
    checks = [(p, v) for p, v, skip in selected if p.kind in GENERATED and not skip]
    regime_names = [r for r in regime_registry.NAMES if regimes is None or r in regimes]
    compare = not impl.fixes_advisories and not stop_early
    tasks = [("sweep", regime) for regime in regime_names] if checks else []
    tasks += [("fixed", prop) for prop, variant, skip in selected if prop.kind not in GENERATED and not skip]

    def execute(task):
        kind, what = task
        started = time.perf_counter()
        if kind == "sweep":
            value = sweep(
                impl,
                what,
                checks,
                options,
                max_examples=examples_for(what, base),
                seed=seed,
                stop_early=stop_early,
                compare_reference=compare,
            )
        else:
            value = fixed_workload(what, impl, options)
        return value, time.perf_counter() - started

    done: dict = {}
    if stop_early or options.jobs < 2:
        for task in tasks:
            on_stage(
                ("sweeping " + regime_registry.title(task[1])) if task[0] == "sweep" else f"checking {task[1].name}"
            )
            if stop_early and task[0] == "sweep" and _every_check_failed(checks, done):
                continue  # a verdict is all that is wanted, and every property has one
            done[task] = execute(task)
            on_advance()
    else:
        on_stage(f"checking {len(tasks)} regimes and fixed batches on {min(options.jobs, len(tasks))} worker processes")
        values = workers.run_tasks(
            tasks, execute, jobs=options.jobs, device=options.device, capture=capture, on_done=lambda task: on_advance()
        )
        done = dict(zip(tasks, values))

    cells: dict[str, dict[str, Cell]] = {}
    fixed: dict[str, tuple] = {}
    seconds: dict[str, float] = {}
    calls = 0
    same_seed = [0, 0]
    lineage_tallies: dict[str, list[int]] = {}
    against_raised = 0
    observed: dict[str, dict] = {}  # e.g. {"empty_batch": {"dummy_group": (regime, first case)}}
    for task in tasks:  # in the registry's order, whatever order they finished in
        if task not in done:
            continue
        kind, what = task
        result = done[task]
        if isinstance(result, workers.WorkerDied):
            result = (_died(task, result, checks), 0.0)
        value, elapsed = result
        if kind == "fixed":
            fixed[what.name], seconds[what.name] = value, elapsed
            continue
        found, stats = value
        cells[what] = found
        calls += stats["calls"]
        for name, seen in stats["observed"].items():
            for observation, case in seen.items():
                observed.setdefault(name, {}).setdefault(observation, (what, case))
        same_seed = [a + b for a, b in zip(same_seed, stats["same_seed"])]
        for name, (matches, compared) in stats.get("lineages", {}).items():
            tally = lineage_tallies.setdefault(name, [0, 0])
            tally[0], tally[1] = tally[0] + matches, tally[1] + compared
        against_raised += stats.get("against_raised", 0)
        for name in found:
            seconds[name] = seconds.get(name, 0.0) + elapsed / max(1, len(found))
    findings = [f for by_label in cells.values() for cell in by_label.values() for f in cell.findings.values()]
    findings += _mixed_conventions(observed)
    findings += [f for status, _, _, found in fixed.values() for f in found]
    divergences = classify(findings, {label(p, v): i for i, (p, v, _) in enumerate(selected)})
    if not stop_early and Phase.shrink in settings.default.phases:
        for divergence in divergences:
            on_stage(f"shrinking divergence {divergence.number}")
            _choose_example(divergence, impl, options, base, seed)
    else:
        for divergence in divergences:
            _choose_example(divergence, impl, options, base, seed, shrink_it=False)
    outcomes = []
    for prop, variant, skip in selected:
        name = label(prop, variant)
        if skip:
            outcomes.append(Outcome(prop, variant, "skip", skip))
        elif prop.kind in GENERATED:
            outcomes.append(
                generated_outcome(
                    prop, variant, {r: c[name] for r, c in cells.items()}, divergences, seconds.get(name, 0.0)
                )
            )
        else:
            status, message, details, _ = fixed[prop.name]
            numbers = [d.number for d in divergences if any(f.label == name for f in d.findings)]
            if numbers:
                message = "; ".join(
                    property_line(prop, d, [f for f in d.findings if f.label == name])
                    for d in divergences
                    if d.number in numbers
                )
            outcomes.append(
                Outcome(
                    prop, variant, status, message, details, seconds.get(name, 0.0), {"fixed workload": status}, numbers
                )
            )
    conventions = {name: next(iter(seen)) for name, seen in observed.items() if len(seen) == 1}
    level, line = compatibility(
        impl,
        outcomes,
        divergences,
        tuple(same_seed),
        contract=options.contract,
        lineage_tallies=lineage_tallies,
        against=options.against,
    )
    result = RunResult(outcomes, divergences, line, seed, calls, tuple(same_seed), conventions, level)
    result.lineages, result.against_raised = lineage_tallies, against_raised
    return result


def _every_check_failed(checks, done: dict) -> bool:
    """Every check has failed in some regime swept so far (the self-test's early stop)."""
    swept = [value[0][0] for task, value in done.items() if task[0] == "sweep"]
    return bool(swept) and all(any(cells[label(p, v)].findings for cells in swept) for p, v in checks)


def _died(task, died, checks):
    """What a task whose worker process died counts as: for a sweep, a crash of every
    check in that regime; for a fixed batch, a failed property."""
    kind, what = task
    signature = Signature(RAISES, "worker process died")
    if kind == "fixed":
        finding = Finding(what.name, signature, f"checking {what.name}: {died.detail}")
        return ("fail", f"checking {what.name}: {died.detail}", died.detail, [finding])
    cells = {}
    for prop, variant in checks:
        cell = Cell(label(prop, variant), what)
        cell.add(
            Finding(
                cell.label,
                signature,
                f"checking {regime_registry.title(what)}: {died.detail}",
                None,
                what,
                call_regimes=REGIME_SETS[what],
            )
        )
        cells[cell.label] = cell
    return cells, {"calls": 0, "cases": 0, "same_seed": [0, 0], "observed": {}, "lineages": {}, "against_raised": 0}


def _mixed_conventions(observed: dict) -> list[Finding]:
    """A builder that answers all-empty batches in two ways is inconsistent: one finding
    of the structure property (on the case of the second way)."""
    from dnspec.contract import conventions

    seen = observed.get("empty_batch", {})
    if len(seen) < 2:
        return []
    (first, (_, first_case)), (second, (regime, case)) = list(seen.items())[:2]
    message = (
        f"for batches with no boxes it returns {conventions.TITLES[first]} on some ({first_case!r}) and "
        f"{conventions.TITLES[second]} on others: one convention, please"
    )
    return [Finding("structure", Signature(VIOLATES, "structure.empty_batch.mixed"), message, case, regime)]


def _choose_example(divergence: Divergence, impl, options, base, seed, shrink_it: bool = True) -> None:
    """Set the divergence's example: its representative failure shrunk in its own regime
    (the first case seen when shrinking is off, the workload of a statistical property,
    or a pinned case that generation does not reproduce)."""
    finding = divergence.representative
    shrunk = None
    prop = next((p for p in PROPERTIES if p.name == finding.label.split("[")[0]), None)
    if (
        shrink_it
        and prop is not None
        and prop.kind in GENERATED
        and finding.signature.kind != "hangs"
        and finding.case is not None
    ):
        variant = _variant_of(prop, finding.label, impl, options)
        shrunk = shrink(
            impl,
            prop,
            variant,
            finding.regime,
            finding.signature,
            options,
            max_examples=examples_for(finding.regime, base),
            seed=seed,
        )
    chosen = shrunk or finding
    divergence.example_case = chosen.case
    divergence.example = repr(chosen.case) if chosen.case is not None else ""
    divergence.example_shrunk = shrunk is not None
    divergence.example_message = chosen.message
    divergence.example_label = chosen.label
    divergence.example_regime = chosen.regime


def _variant_of(prop: Property, name: str, impl, options):
    for variant in prop.variants(impl, options):
        if label(prop, variant) == name:
            return variant
    return None


# --- one property at a time (pytest, the self-test) -----------------------------------------


def evaluate(
    prop: Property, impl, options: RunOptions = RunOptions(), variant=None, regimes=None, stop_early=True
) -> Outcome:
    """Run one property (one variant) over every regime (or ``regimes``) and return its
    Outcome; never raises, except KeyboardInterrupt. ``stop_early``: each regime stops at
    the property's first failure (a verdict, no shrinking)."""
    if variant not in prop.variants(impl, options):
        raise ValueError(f"{label(prop, variant)}: no such variant of {prop.name} for {impl.name}")
    selected = [(prop, variant, skip_reason(prop, impl, options, variant))]
    return run(impl, options, regimes=regimes, stop_early=stop_early, selected=selected).outcomes[0]


def _first_line(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."
