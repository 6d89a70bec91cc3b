"""Running a verify run's independent pieces on every core: one sweep per input regime and
one fixed seeded batch per statistical property or advisory, each a task in a worker
process forked from the run (stdlib ``concurrent.futures``).

A forked worker inherits the loaded implementation, the options and the task list (a
module-level state set just before the fork), so only a task's index goes out and its
result comes back pickled, with what the implementation printed during the task (the
worker's :class:`~dnspec.running.output_capture.BoundedOutput` snapshot, absorbed by the run's)
and the calls that hung (:data:`dnspec.running.calling.HANGS`, merged). The per-call time limit
works in a worker as in the run (SIGALRM in the worker's main thread); a hang stops that
worker's later calls, not other workers' (each learns of it when it hangs itself).

A worker that dies (the implementation crashed the interpreter: a segfault, ``os._exit``)
breaks the pool; every task it left unfinished is run again alone, in a pool of one, so
that only the task that kills its worker is reported, as :class:`WorkerDied`.

Tasks run in this process instead, one after another, where forking is not safe or not
worth it: one job, fewer than two tasks, not Linux, a device other than the CPU, or CUDA
already initialized (a forked child cannot use it).
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from dnspec.running.calling import HANGS

_STATE: dict = {}  # what a forked worker reads: the tasks, how to execute one, the capture buffer


@dataclass(frozen=True)
class WorkerDied:
    """A task whose worker process died, twice (alone the second time)."""

    task: object
    detail: str


def default_jobs() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def can_fork(device: str) -> bool:
    """Whether forked workers are safe here (see the module docstring)."""
    import torch

    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and device == "cpu"
        and not (torch.cuda.is_available() and torch.cuda.is_initialized())
    )


def run_tasks(tasks: list, execute, *, jobs: int, device: str = "cpu", capture=None, on_done=None) -> list:
    """``[execute(task) for task in tasks]``, on ``jobs`` worker processes when that is
    safe (else here, in order); ``on_done(task)`` is called as each finishes. A task whose
    worker died gets a :class:`WorkerDied` instead of its result."""
    on_done = on_done or (lambda task: None)
    if jobs < 2 or len(tasks) < 2 or not can_fork(device):
        results = []
        for task in tasks:
            results.append(execute(task))
            on_done(task)
        return results
    results: list = [None] * len(tasks)
    _STATE.update(tasks=tasks, execute=execute, capture=capture)
    try:
        unfinished = _pool_pass(range(len(tasks)), min(jobs, len(tasks)), results, capture, on_done)
        for index in unfinished:  # the pool broke: each again alone, so the culprit is found
            if _pool_pass([index], 1, results, capture, on_done):
                results[index] = WorkerDied(
                    tasks[index],
                    "its worker process died (the implementation crashed the "
                    "interpreter: a segfault, an abort or os._exit)",
                )
                on_done(tasks[index])
    finally:
        _STATE.clear()
    return results


def _pool_pass(indices, workers: int, results: list, capture, on_done) -> list[int]:
    """Run ``indices`` on a fresh pool; return those left unfinished by a broken pool."""
    unfinished = []
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = {pool.submit(_work, index): index for index in indices}
        for future in concurrent.futures.as_completed(futures):
            index = futures[future]
            try:
                value, output, hung = future.result()
            except BrokenProcessPool:
                unfinished.append(index)
                continue
            if capture is not None and output is not None:
                capture.absorb(output)
            for name, case in hung.items():
                HANGS.hung.setdefault(name, case)
            results[index] = value
            on_done(_STATE["tasks"][index])
    return sorted(unfinished)


def _work(index: int):
    """In a worker: run one task; return its result, what was printed, and what hung."""
    capture = _STATE["capture"]
    if capture is not None:
        capture.reset()
    value = _STATE["execute"](_STATE["tasks"][index])
    return value, capture.snapshot() if capture is not None else None, dict(HANGS.hung)
