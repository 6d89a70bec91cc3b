"""The watchdog outside the worker, and workers that never outlive dnspec.

**Each call's deadline.** A worker's record file (:mod:`dnspec.calling.workers`) starts
with a slot that says whether a call of the implementation is running, when it must end
(``time.monotonic()`` plus its time limit: a system-wide clock, the same in every
process) and what is called. :func:`arm` fills the slot before each timed call and
:func:`disarm` empties it after (:func:`dnspec.calling.call.time_limit` calls them through
``call.WATCH``); nested limits keep the outer one. The process that handed the worker its
task reads the slot (:func:`overdue`): a call still running :data:`GRACE_S` after its
deadline did not stop when SIGALRM asked it to (the signal ignored or blocked, C code
that never returns to Python, the GIL held), and the run ends the worker's process group
itself. Nothing inside the worker has to cooperate.

**No orphans.** Every worker leads its own process group (so a child process the
implementation starts ends with it). The run keeps the groups of its live workers
(:func:`track`, :func:`untrack`); :func:`reap_all` kills them, and runs at exit and on
SIGTERM, SIGHUP (and SIGINT, through ``KeyboardInterrupt`` and the pool's ``finally``),
after which the signal takes its usual course. A SIGKILL of dnspec runs nothing of it, so
each worker asks Linux to kill it when its parent dies (``PR_SET_PDEATHSIG``,
:func:`die_with_parent`), and elsewhere watches its parent from a thread and ends its own
group when the parent is gone. A SIGKILL of the worker (that signal, or the watchdog's)
runs nothing in it either, so each worker also starts a guard (:func:`guard_group`): a
small forked process in the worker's group that holds nothing of the worker's, waits
for the worker to end, and then kills the group, so a process the implementation
started (and left in that group) ends with its worker however the worker ended.
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
import threading
import time

GRACE_S = 3.0  # a call still running this long after its time limit is ended from outside
POLL_S = 0.25  # how often the run looks at its busy workers' deadlines

_SLOT = struct.Struct("<dd")  # deadline (monotonic seconds; 0: no call running), the limit in seconds
_NAME_AT, _NAME_SIZE = _SLOT.size, 256  # what is called, utf-8, NUL padded
RECORD_AT = _NAME_AT + _NAME_SIZE  # where the worker's (regime, case) record starts

# --- in a worker -----------------------------------------------------------------------------


class Slot:
    """The deadline slot of the worker's record file ``fd``; nested calls keep a stack."""

    def __init__(self, fd: int):
        self.fd = fd
        self.stack: list[tuple[float, float, bytes]] = []

    def _write(self, deadline: float, seconds: float, name: bytes) -> None:
        os.pwrite(self.fd, _SLOT.pack(deadline, seconds) + name.ljust(_NAME_SIZE, b"\0"), 0)

    def arm(self, seconds: float, what: str) -> None:
        entry = (time.monotonic() + seconds, seconds, what.encode("utf-8", "replace")[:_NAME_SIZE])
        if self.stack and self.stack[-1][0] < entry[0]:  # an outer limit that ends first stays in force
            entry = self.stack[-1]
        self.stack.append(entry)
        self._write(*entry)

    def disarm(self) -> None:
        if self.stack:
            self.stack.pop()
        self._write(*(self.stack[-1] if self.stack else (0.0, 0.0, b"")))


def die_with_parent() -> None:
    """Make this process (a worker) end when its parent does, even by SIGKILL: Linux's
    parent-death signal; elsewhere a daemon thread that checks the parent twice a second
    and kills this process group when it is gone. (A forkserver worker's parent is the
    fork server, which ends when the run does.)"""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0:  # PR_SET_PDEATHSIG
                if os.getppid() != parent:  # it died before the request took effect
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass

    def watch():
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                with contextlib.suppress(OSError):
                    os.killpg(os.getpgrp(), signal.SIGKILL)
                os._exit(1)

    threading.Thread(target=watch, name="dnspec-parent-watch", daemon=True).start()


GUARD_POLL_S = 0.2  # how often a worker's guard looks whether its worker is still there


def guard_group() -> int | None:
    """In a worker that leads its process group: fork the group's guard (see the module
    docstring) and return its pid (None where there is no ``os.fork``, or it failed). The
    guard closes every file descriptor it inherited (the worker's pipes must report the
    worker's death at once), checks :data:`GUARD_POLL_S` times a second whether its
    parent is still the worker, and when it is not, SIGKILLs the group, itself included."""
    if not hasattr(os, "fork") or os.getpgrp() != os.getpid():
        return None
    worker = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid:
        return pid
    try:  # the guard: nothing of the worker's but its group
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.closerange(0, 1 << 16)
        while os.getppid() == worker:
            time.sleep(GUARD_POLL_S)
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(0)


# --- in the run ------------------------------------------------------------------------------


def clear(path: str) -> None:
    """An empty slot and no record: a worker about to get a task."""
    with open(path, "r+b") as file:
        file.write(b"\0" * (RECORD_AT + 8))


def overdue(path: str, now: float | None = None, grace_s: float = GRACE_S) -> tuple[str, float] | None:
    """(what is called, its time limit) when the worker whose record file is ``path`` has
    run a call ``grace_s`` (:data:`GRACE_S`) past its deadline; else None."""
    try:
        with open(path, "rb") as file:
            head = file.read(RECORD_AT)
    except OSError:
        return None
    if len(head) < RECORD_AT:
        return None
    deadline, seconds = _SLOT.unpack_from(head)
    if deadline <= 0 or (time.monotonic() if now is None else now) < deadline + grace_s:
        return None
    return head[_NAME_AT:RECORD_AT].rstrip(b"\0").decode("utf-8", "replace"), seconds


_LIVE: set[int] = set()  # process groups of this process's live workers
_INSTALLED: dict = {}  # signal -> the handler before ours


def track(pid: int) -> None:
    """A worker (leading process group ``pid``) now runs: reap it if dnspec is ended."""
    _LIVE.add(pid)
    _install()


def untrack(pid: int) -> None:
    _LIVE.discard(pid)


def kill_group(pid: int) -> None:
    """SIGKILL to process group ``pid`` (and to ``pid``, in case it has not led one yet)."""
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        with contextlib.suppress(OSError):
            kill(target, signal.SIGKILL)


def reap_all() -> None:
    """Kill every live worker's process group (dnspec is ending)."""
    for pid in list(_LIVE):
        kill_group(pid)
        _LIVE.discard(pid)


def _on_signal(signum, frame):
    reap_all()
    previous = _INSTALLED.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)  # the signal's usual course: end this process
    os.kill(os.getpid(), signum)


def _install() -> None:
    """Once per process, from the main thread: reap the workers at exit, on SIGTERM and on
    SIGHUP (unless that signal is ignored here: then it ends nothing)."""
    if _INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    import atexit

    atexit.register(reap_all)
    _INSTALLED[None] = None
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        previous = signal.getsignal(signum)
        if previous is signal.SIG_IGN or previous is None:
            continue
        _INSTALLED[signum] = previous
        signal.signal(signum, _on_signal)
