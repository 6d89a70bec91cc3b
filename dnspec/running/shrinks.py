"""Shrinking a divergence: :func:`shrink` searches one input regime for a case on which one
property fails with one signature (other failures do not count) and lets Hypothesis
shrink it, in a worker process (each try in a process of its own when the signature is
a death); a failure that does not happen again on its own case is a call-history
finding (:func:`history_finding`), never a crash of the run. The sweeps that find the
divergences are :mod:`dnspec.running.sweeps`.
"""

from __future__ import annotations

import functools

from hypothesis.errors import Flaky

from dnspec.calling import workers
from dnspec.calling.clean_text import clean
from dnspec.checks.call_history import CHECK as HISTORY
from dnspec.checks.suite import Property, RunOptions, label
from dnspec.running.divergences import VIOLATES, Finding, Signature
from dnspec.running.sweeps import DIED, _hypothesis_test, _judge, _judge_isolated, calls_limited, run_isolated


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
    when the signature is a death). Returns the minimal Finding, or None when generation
    does not reproduce it (it was seen on a pinned case only)."""

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
