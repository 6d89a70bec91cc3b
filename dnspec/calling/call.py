"""Calling an implementation under test without letting it take the suite down.

An implementation that raises anything (any ``BaseException``: ``SystemExit`` and
``KeyboardInterrupt`` raised inside the implementation are the implementation raising) is
a failure of the property that called it (:class:`ImplementationError`, with the original
exception chained); one that runs past
the per-call time limit is stopped with :class:`ImplementationTimeout`. Once a call has
hung, every later call of that implementation in the same run fails at once, so that
Hypothesis' shrinking does not wait the limit out again and again; the first hanging
case is kept in ``HangRecord`` for the report.

Around the implementation's own call (innermost, inside any no_grad or autocast context
dnspec opens) the caller's torch process state is snapshotted and restored
(:mod:`dnspec.calling.torch_state`), and the global RNG states before and after are kept:
:data:`LAST_CALL` holds what the latest call changed, for the ``process_state`` and
``fresh_noise`` properties.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, field

# The per-call time limit in force (seconds, None = none); dnspec.checks.suite sets it for the
# duration of a property run from RunOptions.time_limit_s.
DEFAULT_TIME_LIMIT_S_ACTIVE: float | None = None


class ImplementationError(AssertionError):
    """The implementation under test raised (the property fails; the suite goes on)."""


class ImplementationTimeout(ImplementationError):
    """The implementation under test ran past the per-call time limit."""


class UnreadableOutput(ImplementationError):
    """The implementation returned something that is not RT-DETR's four outputs in any
    container :mod:`dnspec.calling.outputs` reads (one divergence, ``structure.outputs``)."""


@dataclass
class HangRecord:
    """Implementations that hung in this process, by name, with the first case that hung."""

    hung: dict = field(default_factory=dict)


HANGS = HangRecord()


@dataclass
class CallRecord:
    """What the latest call did to the process: ``leaks`` (what it left changed, in words,
    e.g. "left grad mode disabled"), the global RNG states before and after it."""

    leaks: list = field(default_factory=list)
    rng_before: object = None
    rng_after: object = None
    container: str = ""  # the container its outputs came in (dnspec.calling.outputs), "" for RT-DETR's tuple


LAST_CALL = CallRecord()

# In a worker running a fixed batch: called with each call's case before the call, so that a
# process that dies names it (dnspec.calling.workers.note); None elsewhere (sweeps note per case).
NOTE_EACH_CALL = None


def watched(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with the process state it leaves changed recorded in
    :data:`LAST_CALL` (and put back), and the global RNG state before and after."""
    from dnspec.calling import torch_state as process_state

    before = process_state.snapshot()
    LAST_CALL.rng_before = process_state.rng_state()
    try:
        return fn(*args, **kwargs)
    finally:
        LAST_CALL.rng_after = process_state.rng_state()
        after = process_state.snapshot()
        if after != before:
            LAST_CALL.leaks.extend(process_state.differences(before, after))
            process_state.restore(before)


# In a worker: its deadline slot (dnspec.calling.watchdog.Slot), told each timed call's limit so
# that the run can end a call SIGALRM does not stop; None elsewhere.
WATCH = None


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise ImplementationTimeout in the main thread after ``seconds`` (SIGALRM); in a
    worker, also arm its watchdog slot (:data:`WATCH`) for the call, so that a call that
    ignores SIGALRM is ended from outside.

    Off the main thread, or where SIGALRM does not exist, only the watchdog applies; with
    ``seconds`` None, no limit applies.
    """
    watch = WATCH if seconds is not None and seconds > 0 else None
    if watch is not None:
        watch.arm(seconds, what)
    try:
        with _alarm(seconds, what):
            yield
    finally:
        if watch is not None:
            watch.disarm()


@contextlib.contextmanager
def _alarm(seconds: float | None, what: str):
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "SIGALRM")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise ImplementationTimeout(f"{what} ran past the time limit of {seconds:g} s and was stopped")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def call_implementation(
    impl, case, *, time_limit_s: float | None = None, class_embed=None, args=None, reseed: bool = True, **kwargs
):
    """``case.call(impl)`` (or ``impl(*args)`` when ``args`` is given, seeded with the case's
    seed unless ``reseed`` is False: a call that continues from the RNG state the previous
    one left), turning a raise (any BaseException) into ImplementationError and a hang into
    ImplementationTimeout; either carries the case of the call as ``.case`` (where it
    failed is read off it). What it returned is read as RT-DETR's four outputs
    (:func:`dnspec.calling.outputs.read_outputs`: the container is kept in
    ``LAST_CALL.container``; an unreadable value is an UnreadableOutput, with ``.case``)."""
    result = _call_implementation(
        impl, case, time_limit_s=time_limit_s, class_embed=class_embed, args=args, reseed=reseed, **kwargs
    )
    from dnspec.calling.outputs import NotFourOutputs, read_outputs

    try:
        read = read_outputs(result)
    except NotFourOutputs as problem:
        error = UnreadableOutput(str(problem))
        error.case = case
        raise error from None
    LAST_CALL.container = read.container
    return read.outputs


def refuse_if_hung(name: str, case) -> None:
    """Raise :class:`ImplementationTimeout` at once when ``name`` hung earlier in this run
    (every caller of an implementation asks first: waiting the limit out again would
    only repeat the hang)."""
    if name in HANGS.hung:
        refused = ImplementationTimeout(
            f"{name} hung on an earlier case and is not called again in this run "
            f"(first hanging case: {HANGS.hung[name]!r})"
        )
        refused.case = case
        raise refused


def _call_implementation(
    impl, case, *, time_limit_s: float | None = None, class_embed=None, args=None, reseed: bool = True, **kwargs
):
    """The call itself (see :func:`call_implementation`), its value as returned."""
    name = getattr(impl, "name", repr(impl))
    refuse_if_hung(name, case)
    if time_limit_s is None:
        time_limit_s = DEFAULT_TIME_LIMIT_S_ACTIVE
    LAST_CALL.leaks = []
    LAST_CALL.container = ""
    if NOTE_EACH_CALL is not None:
        NOTE_EACH_CALL(case)
    try:
        with time_limit(time_limit_s, f"{name}"):
            if args is not None:
                import torch

                from dnspec.generation.cases import seed_torch

                if reseed:
                    seed_torch(case.seed)
                with torch.no_grad():
                    if getattr(impl, "watches_itself", False):
                        return impl(*args, **kwargs)
                    return watched(impl, *args, **kwargs)
            return case.call(impl, class_embed=class_embed, **kwargs)
    except ImplementationTimeout as timeout:
        HANGS.hung.setdefault(name, case)
        timeout.case = case
        raise
    except ImplementationError as error:
        error.case = getattr(error, "case", case)
        raise
    except BaseException as exc:  # SystemExit, KeyboardInterrupt, GeneratorExit: the implementation raised
        error = ImplementationError(f"{name} raised {type(exc).__name__}: {exc}")
        error.case = case
        raise error from exc
