"""Where the implementation's calls run: in worker processes, never in the process that
decides and prints the verdict (nothing an implementation does, raise, exit, crash, hang
in C code, leave a thread or a child process running, can take the verdict with it).

A run's independent pieces (one sweep per input regime, one fixed seeded batch per
statistical property or advisory, one shrink per divergence) are tasks. :func:`run_tasks`
runs them on ``jobs`` worker processes (one job is still one worker) forked from the run:
a worker inherits the loaded implementation, the options and the task list (a
module-level state set just before the fork), so only a task's index goes out and its
result comes back pickled, with what the implementation printed during the task (the
worker's :class:`~dnspec.calling.output_capture.BoundedOutput` snapshot, absorbed by the
run's) and the calls that hung (:data:`dnspec.calling.call.HANGS`, merged).

Before it calls the implementation on a case, a worker notes that case (:func:`note`) in
a file of its own, so that when the worker dies (a segfault, an abort, ``os._exit`` with
any status, SIGKILL from the out-of-memory killer) the task gets a :class:`WorkerDied`
naming how it died and the case it was working on. :func:`in_child` runs one piece of
work in a process started for it alone (a fresh worker per case, for sweeps and shrinks of
an implementation known to kill its process), raising :class:`ChildDied` when it dies.

Workers are ended when the tasks are done: each runs multiprocessing's finalizers (not
atexit handlers, not a join of the threads left running) and exits with ``os._exit``, and
one still alive after :data:`END_GRACE_S` is killed (SIGKILL), with every process left in
its process group (each worker leads its own): a thread or child process the
implementation left running never keeps dnspec waiting. Workers ignore SIGINT, which
the run handles. Workers are forked on Linux when no CUDA context exists in this process, which is how a
CUDA run stays forkable: the verdict process never calls the implementation, dnspec asks
torch whether CUDA exists through NVML (``PYTORCH_NVML_BASED_CUDA_CHECK``, no context),
and results come back with every tensor on the CPU (:class:`_HostPickler`), so each worker
creates its own CUDA context. Where a context exists here anyway (or on macOS, Windows)
workers are started with ``forkserver`` or ``spawn`` (:func:`start_method`), and then the
tasks and ``execute`` must pickle (a clear :class:`WorkerError` otherwise, never a run in
this process).
``DNSPEC_START_METHOD`` forces a start method (:mod:`dnspec.calling.start_methods`, which
also sends the implementation by reference where it cannot travel by value).

A call that SIGALRM does not end (ignored or blocked, C code spinning or deadlocked) is
ended from here: the run reads each busy worker's deadline slot
(:mod:`dnspec.calling.watchdog`) and kills the worker's process group
:data:`~dnspec.calling.watchdog.GRACE_S` after the call's limit; the task gets a
:class:`WorkerDied` whose ``how`` is :data:`HUNG`, with the case the worker noted, and the
implementation counts as hung in this run (``HANGS``: later workers refuse to call it).
Workers die with the run (SIGTERM, SIGHUP, SIGINT, exit; SIGKILL through the parent-death
signal), see :mod:`dnspec.calling.watchdog`.

``in_process`` (``dnspec verify --in-process``, for pdb) runs the tasks here instead, in
order: the only route where the implementation shares the verdict's process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import gc
import io
import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
import sys
import tempfile
import traceback
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait

from dnspec.calling import call as calling
from dnspec.calling import start_methods, watchdog
from dnspec.calling.call import HANGS

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # torch.cuda.is_available() makes no context here

_STATE: dict = {}  # what a forked worker reads: the tasks, how to execute one, the capture buffer
IN_WORKER = False  # True in a worker process (and its per-case children): calls run where they are
_RECORD_FD: int | None = None  # the worker's record file (see note)
_RECORD_PATH: str | None = None  # its path (a per-case process that is not forked opens it again)
END_GRACE_S = 2.0  # a worker asked to end gets this long to run its finalizers before it is killed
FORKSERVER_PRELOAD = ("torch", "hypothesis", "dnspec.running.runner", "dnspec.running.sweeps")  # names, not imports
HUNG = "hung"  # WorkerDied.how of a worker the watchdog ended: a call ran past its limit and the grace


@dataclass(frozen=True)
class WorkerDied:
    """A task whose worker process died: ``how`` in a few words (the divergence's key:
    ``killed by SIGSEGV``, ``exited with status 0``), ``detail`` in a sentence, and
    ``record`` what the worker noted last before calling the implementation (``(regime,
    case)`` or None)."""

    task: object
    detail: str
    how: str = "died"
    record: object = None


class ChildDied(Exception):
    """A process started for one piece of work (:func:`in_child`) died before answering."""

    def __init__(self, how: str, detail: str):
        super().__init__(detail)
        self.how, self.detail = how, detail


class WorkerError(RuntimeError):
    """dnspec's own code failed inside a worker (a dnspec bug, not the implementation's):
    the worker's traceback is the message."""


def describe_exit(exitcode: int | None) -> tuple[str, str]:
    """(how, detail) for a process that ended with ``exitcode`` (multiprocessing's: minus
    the signal number for a signal) without answering."""
    if exitcode is None:
        return "did not end", "the process did not end"
    if exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        text = signal.strsignal(number) or name
        extra = " (as the out-of-memory killer does)" if name == "SIGKILL" else ""
        return f"killed by {name}", f"the process was killed by {name} ({text}){extra} during a call"
    return (
        f"exited with status {exitcode}",
        f"the process exited with status {exitcode} during a call (os._exit, or exit() in C code)",
    )


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def can_fork(device: str = "cpu") -> bool:
    """Whether workers can be forked from this process (:func:`start_methods.can_fork`)."""
    return start_methods.can_fork()


def start_method(device: str = "cpu") -> str:
    """``DNSPEC_START_METHOD`` if set, else ``fork`` where :func:`can_fork`, else
    ``forkserver`` (POSIX) or ``spawn`` (:func:`start_methods.start_method`)."""
    return start_methods.start_method()


# --- in a worker -----------------------------------------------------------------------------


def note(record) -> None:
    """In a worker: remember ``record`` (what is about to be called: ``(regime, case)``) in
    the worker's record file, read back if the worker dies. Elsewhere: nothing."""
    if _RECORD_FD is None:
        return
    try:
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # an unpicklable case: its repr still names it
        data = pickle.dumps((record[0], repr(record[1])) if isinstance(record, tuple) else repr(record))
    os.pwrite(_RECORD_FD, len(data).to_bytes(8, "little") + data, watchdog.RECORD_AT)


def _read_record(path: str):
    try:
        with open(path, "rb") as file:
            file.seek(watchdog.RECORD_AT)
            size = int.from_bytes(file.read(8), "little")
            return pickle.loads(file.read(size)) if size else None
    except Exception:
        return None


def _one_thread_after_fork() -> None:
    """torch's intra-op pool (GNU OpenMP) does not survive a fork: a parallel op in a child
    of a process that ran one waits forever for threads the child does not have. A forked
    process starts with one intra-op thread (``RunOptions.threads`` is set again around
    the checks, and is 1 by default)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def _settle(record_path: str | None, group: int | None = None) -> None:
    """What a worker and a per-case process do first: calls run here (``IN_WORKER``),
    SIGINT is the run's, the process joins process group ``group`` (0: a group of its own;
    None: the one it has), dies with its parent, a crash is a divergence (no faulthandler
    dump), and, given ``record_path``, notes and deadlines go to that record file (a
    forked per-case process keeps the worker's)."""
    global IN_WORKER, _RECORD_FD, _RECORD_PATH
    IN_WORKER = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if group is not None:
        with contextlib.suppress(OSError):
            os.setpgid(0, group)
    watchdog.die_with_parent()
    faulthandler.disable()
    if record_path is not None:
        _RECORD_PATH, _RECORD_FD = record_path, os.open(record_path, os.O_WRONLY)
        calling.WATCH = watchdog.Slot(_RECORD_FD)


def hypothesis_prepared() -> None:
    """Give this thread Hypothesis' own PRNG now, if it has none yet. Hypothesis does it on
    a thread's first test case, registering the PRNG with a full garbage collection
    (``hypothesis.internal.entropy.register_random``): 0.1 s in a process that holds torch
    (215,000 tracked objects), paid again by every worker on its first case, about 6% of
    the self-test's CPU time (py-spy). So a run does it once before it forks workers
    (:func:`run_tasks`), which inherit it; a worker that was not forked does it when it
    starts (:func:`_worker_main`); and each worker then freezes what it started with
    (``gc.freeze``: a later collection there never traverses it, 0.1 s -> under 1 ms).
    The PRNG is registered before the freeze: Hypothesis' check of its referrers would
    not see frozen ones. A Hypothesis without this private helper only costs the time
    again (``properties/test_workers.py`` fails then, so that it is looked at)."""
    try:
        from hypothesis.internal.entropy import deterministic_PRNG
    except ImportError:  # pragma: no cover - a Hypothesis that moved it
        return
    with deterministic_PRNG():  # seeds every registered PRNG and puts each state back
        pass


def _worker_main(conn, record_path: str, state=None) -> None:
    """A worker's loop (``state``: the pickled tasks, executor, capture and hangs when not
    forked): run the task whose index arrives, send back (kind, value, output,
    hung) pickled; None ends it."""
    _settle(record_path, group=0)  # its own process group: what the implementation starts ends with it (_end)
    watchdog.guard_group()  # ... even when this worker is SIGKILLed
    if state is not None:  # spawned or forkserver: the state came pickled
        loaded = pickle.loads(state)
        HANGS.hung.update(loaded.pop("hung"))
        _STATE.update(loaded)
    _one_thread_after_fork()
    hypothesis_prepared()  # nothing to do in a forked worker: its parent did it (run_tasks)
    gc.freeze()  # what it started with is never traversed by a collection here (see hypothesis_prepared)
    capture = _STATE.get("capture")
    while True:
        index = conn.recv()
        if index is None:  # done: run multiprocessing's finalizers (not atexit, not thread joins), then go
            try:
                multiprocessing.util._run_finalizers(0)
            finally:
                os._exit(0)
        conn.send_bytes(_answer(functools.partial(_STATE["execute"], _STATE["tasks"][index]), capture))


def _answer(fn, capture) -> bytes:
    """What a worker or a per-case child sends back for ``fn()``, pickled: ("ok", value,
    what the implementation printed, the calls that hung), or ("error", traceback, None,
    {}) when dnspec itself failed (the implementation's failures are findings)."""
    try:
        if capture is not None:
            capture.reset()
        return _dumps(("ok", fn(), capture.snapshot() if capture is not None else None, dict(HANGS.hung)))
    except BaseException:
        return pickle.dumps(("error", traceback.format_exc(), None, {}))


def in_child(fn, capture=None):
    """``fn()`` in a process started for it alone (its result pickled back); what the
    implementation printed there is absorbed into ``capture`` and its hangs merged. Raises
    :class:`ChildDied` when the process dies before answering. Forked where workers are
    (:func:`start_method`); elsewhere (macOS, Windows, a CUDA context in this worker,
    ``DNSPEC_START_METHOD``) started the same way as workers, with ``fn`` pickled
    (:func:`start_methods.dumps`). The process joins this worker's process group and
    writes its deadline into this worker's record file, so the run's watchdog and the end
    of this worker end it too."""
    method = start_method()
    if method == "fork":
        data, exitcode = _forked_child(fn, capture)
    else:
        data, exitcode = _started_child(fn, capture, method)
    if not data:
        how, detail = describe_exit(exitcode)
        raise ChildDied(how, detail)
    kind, value, output, hung = pickle.loads(data)
    if kind == "error":
        raise WorkerError(value)
    if capture is not None and output is not None:
        capture.absorb(output)
    for name, case in hung.items():
        HANGS.hung.setdefault(name, case)
    return value


def _forked_child(fn, capture) -> tuple[bytes, int]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer, then end without running anything else of this process
        try:
            os.close(read_fd)
            _settle(None)  # forked: it keeps the worker's record file and deadline slot
            _one_thread_after_fork()
            view = memoryview(_answer(fn, capture))
            while view:
                view = view[os.write(write_fd, view) :]
        finally:
            os._exit(0)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as source:
        while chunk := source.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks), _exitcode(status)


def _started_child(fn, capture, method: str) -> tuple[bytes, int]:
    try:
        state = start_methods.dumps({"fn": fn, "capture": capture, "hung": dict(HANGS.hung)})
    except start_methods.PicklingTrouble as error:
        raise WorkerError(
            f"cannot start a {method} process for one case: its work does not pickle ({error})"
        ) from error
    context = _context(method)
    parent_end, child_end = context.Pipe(duplex=False)
    group = os.getpgrp() if hasattr(os, "getpgrp") else None
    process = context.Process(target=_child_main, args=(child_end, state, _RECORD_PATH, group))
    process.start()
    child_end.close()
    try:
        data = parent_end.recv_bytes()
    except (EOFError, OSError):  # it died before answering
        data = b""
    finally:
        parent_end.close()
    process.join()
    return data, process.exitcode


def _child_main(conn, state: bytes, record_path: str | None, group: int | None) -> None:
    """A process started for one piece of work (:func:`in_child`, not forked): join the
    worker's process group, write deadlines and notes into its record file, answer, end."""
    try:
        _settle(record_path, group)
        loaded = pickle.loads(state)
        HANGS.hung.update(loaded["hung"])
        _one_thread_after_fork()
        conn.send_bytes(_answer(loaded["fn"], loaded["capture"]))
    finally:
        os._exit(0)


class _HostPickler(pickle.Pickler):
    """Pickles a result for the verdict process with every tensor on the CPU: a CUDA tensor
    unpickled there would create a CUDA context in it, and workers could no longer be
    forked from it (the cases' ``device`` field still names the device they ran on)."""

    def reducer_override(self, obj):
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(obj, torch.Tensor) and obj.device.type not in ("cpu", "meta"):
            return obj.detach().cpu().__reduce_ex__(pickle.HIGHEST_PROTOCOL)
        return NotImplemented


def _dumps(payload) -> bytes:
    out = io.BytesIO()
    _HostPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    return out.getvalue()


def _exitcode(status: int) -> int:
    """multiprocessing's convention: minus the signal for a signal, else the exit status."""
    return os.waitstatus_to_exitcode(status)


# --- in the run ------------------------------------------------------------------------------


@dataclass
class _Worker:
    process: object
    conn: object
    record: str
    index: int | None = None


def run_tasks(
    tasks: list,
    execute,
    *,
    jobs: int,
    device: str = "cpu",
    capture=None,
    on_done=None,
    skip=None,
    in_process: bool = False,
    method: str | None = None,
    grace_s: float = watchdog.GRACE_S,
) -> list:
    """``[execute(task) for task in tasks]``, each on one of ``jobs`` worker processes
    (see the module docstring); ``on_done(task)`` is called as each finishes, and a task
    for which ``skip(task, finished)`` is true (``finished``: {task: value} so far) is
    not run (its value is None). A task whose worker died gets a :class:`WorkerDied`.
    ``in_process`` (or already in a worker): here, in order. ``method``: the start method
    (default :func:`start_method`); other than ``fork``, ``tasks`` and ``execute`` must
    pickle. ``grace_s``: how long past a call's limit the watchdog waits before it ends
    the worker (a hang's shrink waits less: whether SIGALRM could end a try does not
    change what it shows)."""
    on_done = on_done or (lambda task: None)
    skip = skip or (lambda task, finished: False)
    results: list = [None] * len(tasks)
    finished: dict = {}
    if in_process or IN_WORKER:
        for index, task in enumerate(tasks):
            if skip(task, finished):
                continue
            results[index] = finished[task] = execute(task)
            on_done(task)
        return results
    method = method or start_method(device)
    context = _context(method)
    portable = method != "fork"
    if not portable:
        hypothesis_prepared()  # once here, inherited by every worker forked from this process
    queue = deque(range(len(tasks)))
    pool: list[_Worker] = []
    limit = max(1, min(jobs, len(tasks)))
    _STATE.update(tasks=tasks, execute=execute, capture=capture)

    def give_up(worker: _Worker, index: int, how: str, detail: str) -> None:
        results[index] = finished[tasks[index]] = WorkerDied(tasks[index], detail, how, _read_record(worker.record))
        _end(worker)
        pool.remove(worker)
        on_done(tasks[index])

    try:
        while queue or any(w.index is not None for w in pool):
            for worker in [w for w in pool if w.index is None] + [None] * (limit - len(pool)):
                index = _next(queue, tasks, skip, finished)
                if index is None:
                    break
                if worker is None:
                    worker = _start(context, _portable_state(method, tasks, execute, capture) if portable else None)
                    pool.append(worker)
                watchdog.clear(worker.record)
                worker.conn.send(index)
                worker.index = index
            busy = [w for w in pool if w.index is not None]
            if not busy:
                break
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=watchdog.POLL_S)
            for worker in busy:
                if worker.conn not in ready and worker.process.sentinel not in ready:
                    late = watchdog.overdue(worker.record, grace_s=grace_s)
                    if late is not None:  # SIGALRM did not end the call: end its worker from here
                        what, seconds = late
                        detail = (
                            f"{what} ran past the time limit of {seconds:g} s and did not stop when interrupted "
                            f"(SIGALRM ignored or blocked, or C code that never returns); dnspec ended its process "
                            f"{grace_s:g} s later"
                        )
                        index = worker.index
                        give_up(worker, index, HUNG, detail)
                        record = results[index].record
                        HANGS.hung.setdefault(what, record[1] if isinstance(record, tuple) else record)
                    continue
                index, worker.index = worker.index, None
                try:
                    kind, value, output, hung = pickle.loads(worker.conn.recv_bytes())
                except (EOFError, OSError):  # it died before answering
                    worker.process.join()
                    give_up(worker, index, *describe_exit(worker.process.exitcode))
                    continue
                if kind == "error":
                    raise WorkerError(f"a dnspec worker failed on {tasks[index]!r}:\n{value}")
                if capture is not None and output is not None:
                    capture.absorb(output)
                for name, case in hung.items():
                    HANGS.hung.setdefault(name, case)
                results[index] = finished[tasks[index]] = value
                on_done(tasks[index])
    finally:
        for worker in pool:  # asked to end; killed if it does not within END_GRACE_S
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in pool:
            _end(worker, grace_s=END_GRACE_S)
        _STATE.clear()
    return results


def _context(method: str):
    """multiprocessing's context for ``method``; a fork server imports
    :data:`FORKSERVER_PRELOAD` once, so that each process is then a cheap fork of it."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return context


def _portable_state(method: str, tasks, execute, capture) -> bytes:
    """What a worker that is not forked needs, pickled (:func:`start_methods.dumps`), with
    the implementations hung so far in this run."""
    try:
        return start_methods.dumps({"tasks": tasks, "execute": execute, "capture": capture, "hung": dict(HANGS.hung)})
    except start_methods.PicklingTrouble as error:
        raise WorkerError(f"cannot start a {method} worker: its tasks do not pickle ({error})") from error


def _next(queue: deque, tasks: list, skip, finished: dict):
    while queue:
        index = queue.popleft()
        if not skip(tasks[index], finished):
            return index
    return None


def _start(context, state) -> _Worker:
    parent_end, child_end = context.Pipe()
    handle, record = tempfile.mkstemp(prefix="dnspec-worker-", suffix=".record")
    os.close(handle)
    watchdog.clear(record)
    # not a daemon: a daemonic process may start none of its own (an implementation's
    # DataLoader workers, a per-case process started by spawn); the run ends it (_end)
    process = context.Process(target=_worker_main, args=(child_end, record, state))
    try:
        process.start()
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise WorkerError(
            f"cannot start a {context.get_start_method()} worker: its tasks do not pickle ({error}); "
            "CUDA already initialized in dnspec's own process?"
        ) from error
    watchdog.track(process.pid)
    child_end.close()
    return _Worker(process, parent_end, record)


def _end(worker: _Worker, grace_s: float = 0.0) -> None:
    """End a worker: wait ``grace_s`` for it to exit, then kill it (whatever it left
    running), and remove its record file."""
    if grace_s:
        worker.process.join(grace_s)
    if worker.process.is_alive():
        watchdog.kill_group(worker.process.pid)
    worker.process.join()
    watchdog.kill_group(worker.process.pid)  # child processes the implementation left in the worker's group
    watchdog.untrack(worker.process.pid)
    worker.conn.close()
    with contextlib.suppress(OSError):
        os.unlink(worker.record)
