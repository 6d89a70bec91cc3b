"""Shrinking a divergence: :func:`shrink` searches one input regime for a case on which one
property fails with one signature (other failures do not count) and lets Hypothesis
shrink it, in a worker process (each try in a process of its own when the signature is
a death); a failure that does not happen again on its own case is a call-history
finding (:func:`history_finding`), never a crash of the run. A hang is shrunk from the
process that runs the watchdog instead (:func:`shrink_hang`): each try is a task on a
fresh worker, ended from outside when it hangs. The sweeps that find the divergences are
:mod:`dnspec.running.sweeps`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from dataclasses import replace

from hypothesis.errors import Flaky

from dnspec.calling import watchdog, workers
from dnspec.calling.call import HANGS as HUNG_IN_RUN
from dnspec.calling.clean_text import clean
from dnspec.checks.call_history import CHECK as HISTORY
from dnspec.checks.suite import Property, RunOptions, label
from dnspec.running.divergences import HANGS, VIOLATES, Finding, Signature
from dnspec.running.sweeps import (
    DIED,
    _hypothesis_test,
    _judge,
    _judge_isolated,
    calls_limited,
    hang_finding,
    run_isolated,
)


class _Reproduced(Exception):
    """Raised inside a shrink run when the case shows the signature being shrunk."""


REPLAYS = 3  # a failure a shrink found is confirmed on its case this many times more


def shrink_here(
    impl,
    prop: Property,
    variant,
    regime: str,
    signature: Signature,
    options: RunOptions,
    *,
    max_examples: int,
    seed=None,
    isolate_cases: bool = False,
    replay_case=None,
):
    """:func:`shrink`, in this process (a worker's); ``isolate_cases``: each try in a
    process of its own (a signature of a death, or an implementation known to die).

    A failure that does not happen again on its case is a :func:`history_finding` on it:
    one Hypothesis could not replay (``Flaky``), one the shrink found that fails to show
    again on one of :data:`REPLAYS` more calls of its case, and, when generation did not
    find it again, the sweep's own case (``replay_case``) when it does not show it on
    each of :data:`REPLAYS` calls. A death is never replayed (each try costs a process)."""
    last: list[Finding] = []
    judged_case: list = []  # the case generation gave when ``last`` was seen: replays call it, not the
    # finding's own case (an agreement check reports the case converted to the dtype it compared)
    calls = [0, 0]  # calls made by this shrink so far, and when the last failure was seen
    judge = _judge_isolated if isolate_cases else _judge
    name = label(prop, variant)

    def shows(case) -> bool:
        judged = judge(impl, case, regime, [(prop, variant)], options, False)
        calls[0] += judged["calls"]
        for finding in judged["results"][name] or ():
            if finding.signature == signature:
                last[:] = [finding]
                judged_case[:] = [case]
                calls[1] = calls[0]
                return True
        return False

    def one_case(case):
        workers.note((regime, case))
        if shows(case):
            raise _Reproduced() from None

    replays = 0 if signature.key.startswith(DIED) else REPLAYS
    test = _hypothesis_test(one_case, regime, impl, options, max_examples, seed, explicit=False, shrink=True)
    with calls_limited(options):
        try:
            test()
        except _Reproduced:
            if not last:
                return None
            found, seen, case = last[0], calls[1], judged_case[0]
            if all(shows(case) for _ in range(replays)):
                return last[0]
            return history_finding(impl, name, regime, signature, found, seen)
        except Flaky:  # FlakyFailure, FlakyReplay: a failure that did not happen again on the same case
            return history_finding(impl, name, regime, signature, last[0] if last else None, calls[1])
        if replay_case is not None and replays and not all(shows(replay_case) for _ in range(replays)):
            return history_finding(
                impl, name, regime, signature, Finding(name, signature, "", replay_case, regime), calls[0], again=True
            )
    return None


def history_finding(
    impl, prop_label: str, regime: str, signature: Signature, failed, calls: int, again: bool = False
) -> Finding:
    """The finding of a failure that did not happen again on its case (see
    :func:`shrink_here`): the case failed with ``signature`` at call ``calls`` of its
    process and held when called again (``again``: it failed in the sweep, and held on
    at least one of the shrink's replays of it), so the implementation's result
    depends on its call history (a :data:`~dnspec.checks.call_history.CHECK` finding, on
    that case)."""
    name = getattr(impl, "name", "the implementation")
    when = (
        f"in the sweep and held on at least one of {REPLAYS} more calls of it ({calls} calls in that process)"
        if again
        else f"at call {calls} of its process and held when the same case was called again"
    )
    message = (
        f"{name}'s result depends on its call history: {prop_label} failed ({signature}) on this case {when} "
        "(the same inputs under the same torch.manual_seed do not give the same result: a generator seeded once "
        "at import, a cache keyed on the wrong thing, or a call counter)"
    )
    case = failed.case if failed is not None else None
    return Finding(
        prop_label, Signature(VIOLATES, HISTORY), clean(message), case, regime, details=REPLAYED if again else ""
    )


# the details of a history finding that rests only on a replay of the sweep's case by the
# property alone: the sweep judged that case with every check sharing one trial (and, for
# dtype agreement, reported it converted), so a replay that holds is evidence of a call
# history only where the call_history property failed too (dnspec.running.divergences.fold_history)
REPLAYED = "replayed alone"


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
    (other failures do not count), in a worker process (each try in a process of its own
    when the signature is a death; a hang: :func:`shrink_hang`, from this process).
    Returns the minimal Finding, or None when generation does not reproduce it (it was
    seen on a pinned case only)."""
    if signature.kind == HANGS:
        return shrink_hang(impl, prop, variant, regime, options, max_examples=max_examples, seed=seed)

    execute = functools.partial(
        _shrink_task, impl, prop, variant, regime, signature, options, max_examples, seed, False
    )
    value = run_isolated([("shrink", regime)], execute, options, jobs=1)[0]
    return None if isinstance(value, workers.WorkerDied) else value


def _shrink_task(impl, prop, variant, regime, signature, options, max_examples, seed, isolate, task):
    """A worker task of :func:`shrink` (module-level, its state as arguments: it pickles);
    each try in a process of its own when ``isolate``, when the task was isolated after a
    death, or when the signature is a death."""
    return shrink_here(
        impl,
        prop,
        variant,
        regime,
        signature,
        options,
        max_examples=max_examples,
        seed=seed,
        isolate_cases=isolate or len(task) > 2 or signature.key.startswith(DIED),
    )


# A hang's shrink: each try that hangs costs its time limit, so a try gets a shorter one
# (the run's until a try finished, then TRY_LIMIT_FACTOR times the slowest try that
# finished, at least TRY_LIMIT_FLOOR_S, at most the run's) and the watchdog's grace is
# TRY_GRACE_S; the cases that hung are then called once more under the run's own limit
# and grace, smallest first (at most CONFIRMATIONS of them), and the first that hangs
# there too is reported (on a busy machine a try that was only slow can pass for a hang).
# The shrink stops after HANG_TRIES tries that hang or HANG_SHRINK_CALLS tries in all.
HANG_TRIES = 32
HANG_SHRINK_CALLS = 100
TRY_LIMIT_FACTOR = 10.0
TRY_LIMIT_FLOOR_S = 0.5
TRY_GRACE_S = 0.5
CONFIRMATIONS = 4


def shrink_hang(
    impl, prop: Property, variant, regime: str, options: RunOptions, *, max_examples: int, seed=None, ends=None
):
    """Shrink a ``hangs`` divergence of ``prop`` in ``regime`` from this process (the one
    that runs the watchdog, never a worker): Hypothesis draws the cases here, as the
    sweep did (same seed), and each try runs on a fresh worker
    (:func:`dnspec.calling.workers.run_tasks`), so a try that hangs is ended from outside
    (SIGALRM, else the watchdog) and the next try starts clean. A try that hangs counts
    as showing the divergence; one that finishes, or fails otherwise, does not. Tries run
    under a shorter limit (see :data:`TRY_LIMIT_FACTOR`), are not repeated (each case's
    outcome is kept), and stop after :data:`HANG_TRIES` hanging ones,
    :data:`HANG_SHRINK_CALLS` in all, or at ``ends`` (``time.monotonic()``, the run's
    budget); later tries count as holding, so the shrinker ends with the smallest case
    that hung. The cases that hung are called once more under the run's own limit and
    grace, smallest first (at most :data:`CONFIRMATIONS`): the Finding of the first that
    hangs there too, else None (the divergence keeps the sweep's case), as when no try
    hung or ``options.in_process`` (no watchdog there).
    The implementation counts as hung in this run afterwards, as before."""
    if options.in_process or not options.time_limit_s:
        return None
    outcomes: dict[str, Finding | None] = {}
    hung: list = []  # the cases that hung, in the order tried: each later one is smaller
    spent = {"tries": 0, "hangs": 0, "slowest": None}

    def try_limit() -> float:
        if spent["slowest"] is None:  # nothing finished yet: no measure of a normal call here
            return options.time_limit_s
        return min(options.time_limit_s, max(TRY_LIMIT_FLOOR_S, TRY_LIMIT_FACTOR * spent["slowest"]))

    def outcome(case) -> Finding | None:
        key = repr(case)
        if key in outcomes:
            return outcomes[key]
        out_of_time = ends is not None and time.monotonic() > ends
        if spent["hangs"] >= HANG_TRIES or spent["tries"] >= HANG_SHRINK_CALLS or out_of_time:
            return None
        spent["tries"] += 1
        started = time.monotonic()
        found = _hang_try(impl, prop, variant, regime, replace(options, time_limit_s=try_limit()), case, TRY_GRACE_S)
        if found is None:
            spent["slowest"] = max(spent["slowest"] or 0.0, time.monotonic() - started)
        spent["hangs"] += found is not None
        outcomes[key] = found
        return found

    def one_case(case):
        if outcome(case) is not None:  # the shrinker only tries cases smaller than its best: the last is the smallest
            if not hung or hung[-1] is not case:
                hung.append(case)
            raise _Reproduced() from None

    hung_before = HUNG_IN_RUN.hung.get(impl.name)
    here = replace(options, device="cpu")  # cases are drawn here on the CPU (no CUDA context in this process)
    test = _hypothesis_test(one_case, regime, impl, here, max_examples, seed, explicit=False, shrink=True)
    confirmed = None
    try:
        with contextlib.suppress(_Reproduced, Flaky):  # Flaky: the final replay came after the tries ran out
            test()
        for case in reversed(hung[-CONFIRMATIONS:]):
            confirmed = _hang_try(impl, prop, variant, regime, options, case, watchdog.GRACE_S)
            if confirmed is not None:
                break
    finally:
        if hung_before is not None or confirmed is not None:
            HUNG_IN_RUN.hung[impl.name] = confirmed.case if confirmed is not None else hung_before
    return confirmed


def _hang_try(impl, prop, variant, regime, options, case, grace_s) -> Finding | None:
    """One try of :func:`shrink_hang`: ``prop`` on ``case`` on a fresh worker, under
    ``options.time_limit_s`` and the watchdog's ``grace_s``; its ``hangs`` finding, or None."""
    HUNG_IN_RUN.hung.pop(impl.name, None)  # the fresh worker calls it again
    execute = functools.partial(_try_case, impl, prop, variant, regime, options)
    value = workers.run_tasks([("try", case)], execute, jobs=1, device=options.device, grace_s=grace_s)[0]
    if isinstance(value, workers.WorkerDied):
        if value.how == workers.HUNG:
            return hang_finding(label(prop, variant), value.how, value.detail, case, regime, impl)
        return None
    return next((f for f in value or () if f.signature.kind == HANGS), None)


def _try_case(impl, prop, variant, regime, options, task):
    """One try of :func:`shrink_hang`, a worker task (module-level, its state as
    arguments: it pickles): ``prop`` on the task's case, on the run's device; its
    findings, or None when it held."""
    case = task[1] if task[1].device == options.device else task[1].to(options.device)
    workers.note((regime, case))
    with calls_limited(options):
        return _judge(impl, case, regime, [(prop, variant)], options, False)["results"][label(prop, variant)]
