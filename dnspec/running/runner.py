"""Running the properties: the pipeline of a verify run.

1. generate   for each input regime (:mod:`dnspec.generation.regimes`), Hypothesis draws cases in that
              regime only (:func:`dnspec.generation.strategies.regime_cases`), the regime's canonical
              case pinned first; the common regime gets the profile's example count, each
              edge regime a share of it (:func:`dnspec.running.sweeps.examples_for`);
2. call       one :class:`~dnspec.calling.trial.Trial` per case makes the calls the checks need,
              once each;
3. check      every contract property checks that trial (a sweep never stops at a failure:
              each property is judged on every case, and a failure is recorded as a
              :class:`~dnspec.running.divergences.Finding`); statistical properties and advisories
              run once on their fixed seeded batches;
4. classify   findings become divergences (:func:`dnspec.running.divergences.classify`), and each
              divergence's representative failure is shrunk on its own, in its own regime
              (:func:`dnspec.running.shrinks.shrink`), to the minimal example reported;
5. report     :class:`RunResult` holds one :class:`~dnspec.running.verdict.Outcome` per property (how it fared in
              each regime) and the divergences; :mod:`dnspec.reports.records` renders them.

Every call of the implementation runs in a worker process (:mod:`dnspec.calling.workers`),
never in the process that decides the verdict, unless ``options.in_process``: sweeps,
fixed batches and shrinks are worker tasks (:mod:`dnspec.running.sweeps`; its
:func:`~dnspec.running.sweeps.sweep`, :func:`~dnspec.running.shrinks.shrink` and
:func:`~dnspec.running.sweeps.fixed_workload` are the pytest plugin's entry points, each
run in a worker of its own). A task whose worker dies (a segfault, an abort, ``os._exit``, SIGKILL) is run again
with a process forked per case (:func:`dnspec.calling.workers.in_child`), so that each
case that kills its process is one finding with its case and regime (``died: killed by
SIGSEGV``), the rest of the regime is still judged, and its shrink (each try in a fresh
process) finds a minimal example.

Sweeps and shrinks of one regime share Hypothesis' seed (derandomized under the ci profile,
else the run's ``hypothesis_seed``), so a shrink starts from the very case the sweep
found, and ``--seed`` replays a run.
"""

from __future__ import annotations

import functools
import random
import time
from dataclasses import dataclass, field

from hypothesis import Phase, settings

from dnspec.calling import workers
from dnspec.calling.call import HANGS
from dnspec.checks.suite import GENERATED_KINDS as GENERATED
from dnspec.checks.suite import PROPERTIES, Property, RunOptions, label
from dnspec.generation import regimes as regime_registry
from dnspec.running.divergences import HANGS as HANGS_KIND
from dnspec.running.divergences import HISTORY, VIOLATES, Divergence, Finding, Signature, classify, fold_history
from dnspec.running.shrinks import REPLAYED, shrink_hang, shrink_here
from dnspec.running.sweeps import (
    DIED,
    Cell,
    died_result,
    examples_for,
    fixed_here,
    run_isolated,
    skip_reason,
    sweep_here,
)
from dnspec.running.verdict import Outcome, compatibility, generated_outcome, property_line

# --- results -------------------------------------------------------------------------------


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
    unjudged: tuple = ()  # what the run's budget left unjudged: "regime common", "label_flip_rate", "shrinking"


# --- the whole run ---------------------------------------------------------------------------


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
    budget_s: float | None = None,
) -> RunResult:
    """The verify pipeline (see the module docstring). ``names``: properties to run (None:
    all); ``regimes``: regimes to sweep (None: all); ``on_stage(text)`` says what runs now
    and ``on_advance()`` that a sweep or fixed batch finished (for a progress bar);
    ``stop_early``: verdicts only (no shrinking, each property stops at its first failure,
    one process); ``selected``: a :func:`plan` to run instead; ``capture``: the buffer the
    implementation's output goes to (worker processes send theirs back to it);
    ``budget_s``: seconds for the whole run, after which no further sweep, fixed batch or
    shrink starts (those running finish, each call under its time limit and the
    watchdog) and :attr:`RunResult.unjudged` names what was not judged. With
    ``options.jobs`` above 1 the sweeps and fixed batches run in worker processes
    (:mod:`dnspec.calling.workers`); shrinking stays here."""
    on_stage = on_stage or (lambda text: None)
    on_advance = on_advance or (lambda: None)
    ends = time.monotonic() + budget_s if budget_s else None
    unjudged: list[str] = []
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

    execute = functools.partial(_execute, impl, checks, options, base, seed, stop_early, compare)

    def skip(task, finished):  # a verdict is all that is wanted, and every property has one; or out of budget
        if ends is not None and time.monotonic() > ends:
            unjudged.append(f"regime {task[1]}" if task[0] == "sweep" else task[1].name)
            return True
        return stop_early and task[0] == "sweep" and _every_check_failed(checks, finished)

    jobs = 1 if stop_early else max(1, options.jobs)
    where = "in this process (--in-process)" if options.in_process else f"on {min(jobs, len(tasks))} worker processes"
    on_stage(f"checking {len(tasks)} regimes and fixed batches {where}")
    values = run_isolated(
        tasks, execute, options, jobs=jobs, capture=capture, on_done=lambda task: on_advance(), skip=skip
    )
    done = {task: value for task, value in zip(tasks, values, strict=False) if value is not None}

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
            result = (died_result(task, result, checks), 0.0)
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
        same_seed = [a + b for a, b in zip(same_seed, stats["same_seed"], strict=True)]
        for name, (matches, compared) in stats.get("lineages", {}).items():
            tally = lineage_tallies.setdefault(name, [0, 0])
            tally[0], tally[1] = tally[0] + matches, tally[1] + compared
        against_raised += stats.get("against_raised", 0)
        for name in found:
            seconds[name] = seconds.get(name, 0.0) + elapsed / max(1, len(found))
    findings = [f for by_label in cells.values() for cell in by_label.values() for f in cell.findings.values()]
    findings += _mixed_conventions(observed)
    findings += [f for status, _, _, found in fixed.values() for f in found]
    _locate_caseless(findings)
    divergences = classify(findings, {label(p, v): i for i, (p, v, _) in enumerate(selected)})
    shrunk = _choose_examples(
        divergences,
        impl,
        options,
        base,
        seed,
        shrink_them=not stop_early and Phase.shrink in settings.default.phases and not _spent(ends, unjudged),
        on_stage=on_stage,
        capture=capture,
        ends=ends,
    )
    divergences = fold_history(divergences, shrunk)
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
        elif prop.name not in fixed:  # the budget was spent before its batch ran
            outcomes.append(Outcome(prop, variant, "skip", "not judged: the run's budget (--budget) was spent"))
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
    from dnspec.contract.conventions import named_conventions

    conventions = named_conventions({name: next(iter(seen)) for name, seen in observed.items() if len(seen) == 1})
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
    result.unjudged = tuple(unjudged)
    return result


def _execute(impl, checks, options, base, seed, stop_early, compare, task):
    """One worker task of :func:`run`, timed: a regime's sweep or a fixed batch
    (module-level, its state as arguments: it pickles for any start method)."""
    kind, what = task[:2]
    started = time.perf_counter()
    if kind == "sweep":
        value = sweep_here(
            impl,
            what,
            checks,
            options,
            max_examples=examples_for(what, base),
            seed=seed,
            stop_early=stop_early,
            compare_reference=compare,
            isolate_cases=len(task) > 2,
        )
    else:
        value = fixed_here(what, impl, options)
    return value, time.perf_counter() - started


def _spent(ends, unjudged: list) -> bool:
    """The budget is spent (then shrinking is skipped, and said)."""
    if ends is not None and time.monotonic() > ends:
        unjudged.append("shrinking (each divergence keeps the first case seen)")
        return True
    return False


def _every_check_failed(checks, done: dict) -> bool:
    """Every check has failed in some regime swept so far (the self-test's early stop)."""
    swept = [
        value[0][0] for task, value in done.items() if task[0] == "sweep" and not isinstance(value, workers.WorkerDied)
    ]
    return bool(swept) and all(any(cells[label(p, v)].findings for cells in swept) for p, v in checks)


def _locate_caseless(findings: list[Finding]) -> None:
    """A crash or death seen on a fixed batch without its case (a bad-input call, a worker
    that died between cases) is filed where the generated cases with the same signature
    located it, not in the common regime."""
    located = {}
    for finding in findings:
        if finding.signature.kind != VIOLATES and (finding.case is not None or finding.call_regimes is not None):
            located.setdefault(finding.signature, finding.regimes)
    for finding in findings:
        if finding.case is None and finding.call_regimes is None and finding.signature in located:
            finding.call_regimes = located[finding.signature]


def _mixed_conventions(observed: dict) -> list[Finding]:
    """A builder that answers all-empty batches in two ways (or returns its mask in two
    layouts, or its boxes at scale 0 in two spaces: :data:`dnspec.contract.conventions.KINDS`)
    is inconsistent: one finding of that kind's property (on the case of the second way)."""
    from dnspec.contract import conventions

    findings = []
    for key, kind in conventions.KINDS.items():
        seen = observed.get(key, {})
        if len(seen) < 2:
            continue
        (first, (_, first_case)), (second, (regime, case)) = list(seen.items())[:2]
        message = (
            f"{kind.what} {kind.title(first)} on some ({first_case!r}) and {kind.title(second)} on others: "
            "one convention, please"
        )
        findings.append(Finding(kind.prop, Signature(VIOLATES, kind.mixed_id), message, case, regime))
    return findings


def _choose_examples(
    divergences, impl, options, base, seed, *, shrink_them: bool, on_stage, capture=None, ends=None
) -> dict:
    """Set each divergence's example, and return the shrinks' findings by divergence
    number (:func:`dnspec.running.divergences.fold_history` reads them): its representative failure shrunk in its own regime,
    each shrink a worker task (with each try in a process of its own when the
    implementation killed a process in this run); the first case seen when shrinking is
    off, the workload of a statistical property, or a pinned case that generation does
    not reproduce. A shrink's call-history finding that rests only on a replay of the
    sweep's case (:data:`~dnspec.running.shrinks.REPLAYED`) is kept only when the
    ``call_history`` property failed in this run too; else the divergence keeps its own
    signature and the sweep's case. A ``.mixed`` finding (two conventions across cases)
    is not shrunk: no one case shows it. A hang is shrunk here, after the others, each
    try on a fresh worker under the watchdog (:func:`~dnspec.running.shrinks.shrink_hang`,
    which stops at ``ends``, the run's budget)."""
    wanted, hangs = [], []
    for divergence in divergences:
        finding = divergence.representative
        prop = next((p for p in PROPERTIES if p.name == finding.label.split("[")[0]), None)
        if (
            shrink_them
            and prop is not None
            and prop.kind in GENERATED
            and not finding.signature.key.endswith(".mixed")  # two conventions across cases: no one case shows it
            and finding.case is not None
        ):
            chosen = (divergence, prop, _variant_of(prop, finding.label, impl, options))
            (hangs if finding.signature.kind == HANGS_KIND else wanted).append(chosen)
    died = any(d.signature.key.startswith(DIED) for d in divergences)
    tasks = [("shrink", divergence.number) for divergence, _, _ in wanted]
    what = {
        task[1]: (prop, variant, d.representative.regime, d.representative.signature, d.representative.case)
        for task, (d, prop, variant) in zip(tasks, wanted, strict=False)
    }
    execute = functools.partial(_shrink_one, impl, options, base, seed, died, what)

    if tasks:
        on_stage(f"shrinking {len(tasks)} divergence{'s' if len(tasks) > 1 else ''}")
    shrunk = run_isolated(tasks, execute, options, jobs=max(1, options.jobs), capture=capture) if tasks else []
    results = {task[1]: value for task, value in zip(tasks, shrunk, strict=False) if isinstance(value, Finding)}
    for divergence, prop, variant in hangs:
        regime = divergence.representative.regime
        on_stage(f"shrinking a hang in {regime} (each try on a fresh worker, ended when it hangs)")
        found = shrink_hang(
            impl, prop, variant, regime, options, max_examples=examples_for(regime, base), seed=seed, ends=ends
        )
        if found is not None:
            results[divergence.number] = found
    history_failed = any(d.signature == Signature(VIOLATES, HISTORY) for d in divergences)
    results = {n: f for n, f in results.items() if f.details != REPLAYED or history_failed}
    for divergence in divergences:
        found = results.get(divergence.number)
        chosen = found or divergence.representative
        divergence.example_case = chosen.case
        divergence.example = repr(chosen.case) if chosen.case is not None else ""
        divergence.example_shrunk = found is not None
        divergence.example_message = chosen.message
        divergence.example_label = chosen.label
        divergence.example_regime = chosen.regime
    return results


def _shrink_one(impl, options, base, seed, died, what, task):
    """One shrink task of :func:`_choose_examples` (module-level, its state as arguments):
    ``what[number]`` is (property, variant, regime, signature, case) of divergence ``number``,
    the case its sweep saw (replayed first: a failure that does not happen again there
    depends on the call history)."""
    prop, variant, regime, signature, case = what[task[1]]
    return shrink_here(
        impl,
        prop,
        variant,
        regime,
        signature,
        options,
        max_examples=examples_for(regime, base),
        seed=seed,
        isolate_cases=died or len(task) > 2,
        replay_case=case,
    )


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
