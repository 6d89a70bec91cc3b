"""Calling an implementation under test without letting it take the suite down.

An implementation that raises is a failure of the property that called it
(:class:`ImplementationError`, with the original exception chained); one that runs past
the per-call time limit is stopped with :class:`ImplementationTimeout`. Once a call has
hung, every later call of that implementation in the same run fails at once, so that
Hypothesis' shrinking does not wait the limit out again and again; the first hanging
case is kept in ``HangRecord`` for the report.
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


@dataclass
class HangRecord:
    """Implementations that hung in this process, by name, with the first case that hung."""

    hung: dict = field(default_factory=dict)


HANGS = HangRecord()


@contextlib.contextmanager
def time_limit(seconds: float | None, what: str):
    """Raise ImplementationTimeout in the main thread after ``seconds`` (SIGALRM).

    Off the main thread, or where SIGALRM does not exist, or with ``seconds`` None,
    no limit applies.
    """
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


def call_implementation(impl, case, *, time_limit_s: float | None = None, class_embed=None, args=None, **kwargs):
    """``case.call(impl)`` (or ``impl(*args)`` when ``args`` is given), turning a raise
    into ImplementationError and a hang into ImplementationTimeout; either carries the
    case of the call as ``.case`` (where it failed is read off it)."""
    name = getattr(impl, "name", repr(impl))
    if name in HANGS.hung:
        refused = ImplementationTimeout(
            f"{name} hung on an earlier case and is not called again in this run "
            f"(first hanging case: {HANGS.hung[name]!r})"
        )
        refused.case = case
        raise refused
    if time_limit_s is None:
        time_limit_s = DEFAULT_TIME_LIMIT_S_ACTIVE
    try:
        with time_limit(time_limit_s, f"{name}"):
            if args is not None:
                import torch

                from dnspec.generation.cases import seed_torch

                seed_torch(case.seed)
                with torch.no_grad():
                    return impl(*args, **kwargs)
            return case.call(impl, class_embed=class_embed, **kwargs)
    except ImplementationTimeout as timeout:
        HANGS.hung.setdefault(name, case)
        timeout.case = case
        raise
    except ImplementationError as error:
        error.case = getattr(error, "case", case)
        raise
    except Exception as exc:
        error = ImplementationError(f"{name} raised {type(exc).__name__}: {exc}")
        error.case = case
        raise error from exc
