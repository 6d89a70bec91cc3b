"""Timing CDN builders: interleaved rounds in blocks, the clock, warm-up, the warm
allocator, and :func:`measure`, which times every implementation on every workload.
``dnspec bench`` and ``pytest benchmarks`` both measure through this module, so they time
the same call. The rest of a benchmark has a module per idea: what one call is
(:mod:`dnspec.benchmarks.workloads`), its peak memory (:mod:`dnspec.benchmarks.memory`),
the ratios and result files (:mod:`dnspec.benchmarks.results`), the regression gate on
those ratios (:mod:`dnspec.benchmarks.gate`) and the tables and plots
(:mod:`dnspec.benchmarks.report`).

What one call is
  A :class:`Workload` is one call's shape: batch size, max boxes per image (image 0 has
  exactly that many, the others a seeded uniform count in [0, max], empty images
  included), num_denoising, num_queries (300), num_classes (80), embed_dim (256, RT-DETR's
  hidden size), device and dtype. Every call gets freshly cloned targets, prepared
  outside the timed region, and the upstream signature with its defaults (so dnspec's
  builders validate their inputs, as users get them), with autograd on as in training
  (the class embedding's weight requires grad). Transformers ports are timed natively
  (:func:`dnspec.benchmarks.workloads.timed_callable`). CUDA and MPS work is synchronised before the clock starts
  and before it stops. Warm-up calls (the first calls cost 3x to 100x a steady one) are
  never timed.

The clock
  On a CPU with one torch thread (the default there), the clock is the calling thread's
  CPU time (``time.thread_time``): what the call costs a core, without the time spent
  waiting for a core that other processes hold. On a shared 2-core machine, wall-clock
  samples of the same call spread over +-50% and more; CPU-time samples over a few
  percent. (Two torch threads on a loaded machine are worse still: an op waits for
  whichever of its threads was descheduled.) ``clock="wall"`` is the choice for
  multi-threaded or GPU runs. The allocator is held warm too (:func:`steady_allocator`):
  left to glibc's defaults the same call costs 1x or 2.5x depending on whether malloc
  hands it fresh pages, which depends on what ran before it.

Interleaving and blocks
  Each round times every implementation once, in an order rotated by one each round
  (A B C, B C A, ...), so drifts of the machine hit all alike. A sample is ``k``
  back-to-back calls divided by ``k``, the same ``k`` for every implementation of a
  workload (sized so the fastest one's sample lasts ``min_sample_s``). The rounds are
  split into blocks, each with freshly built inputs and embeddings and one discarded
  interleaved round: what the memory layout of one block happens to favour (a bias of
  a few percent that the rounds within a block share) varies between blocks, and the
  spread between blocks measures it.

Ratios
  An implementation's speed is its time divided by the reference's, round by round:
  per block the median of log(t / t_ref), the estimate is the median of the block
  medians, and its standard error their robust spread, 1.2533 * 1.4826 * MAD / sqrt(blocks)
  (never less than the same formula on all rounds, nor :data:`dnspec.benchmarks.results.SE_FLOOR`). Medians at both
  levels: a contention burst spoils a few rounds, an allocator that settles late spoils
  the start of a block, and neither moves the estimate much. Absolute times move by tens of
  percent between runs on a shared machine; these ratios by 1% to 4% (standard deviation
  of the log ratio between runs of identical copies: 0.007 to 0.013 on a quiet day of
  this repository's 2 shared cores, 0.04 on a noisy one; ``benchmarks/gate_calibration.py``).

The gate
  Comparing these ratios with a baseline's is :mod:`dnspec.benchmarks.gate`.
"""

from __future__ import annotations

import contextlib
import gc
import math
import sys
import time
from collections.abc import Callable, Iterable

import torch

from dnspec.benchmarks.memory import peak_memory
from dnspec.benchmarks.results import Measurement
from dnspec.benchmarks.workloads import (
    DEFAULT_BLOCKS,
    DEFAULT_MIN_SAMPLE_S,
    DEFAULT_ROUNDS,
    DEFAULT_WARMUP,
    DEFAULT_WARMUP_S,
    BenchError,
    Caller,
    Workload,
    synchronize,
    timed_callable,
)

MAX_WARMUP_CALLS = 50
WARM_ROUNDS = 1  # interleaved rounds run and discarded at the start of each block
MAX_CALLS_PER_SAMPLE = 200


@contextlib.contextmanager
def _no_gc():
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run with ``threads`` intra-op threads (None: leave torch's setting)."""
    if threads is None:
        yield torch.get_num_threads()
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(saved)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
CLOCK_TEXT = {
    "wall": "wall-clock time (time.perf_counter), device work synchronised",
    "cpu": "CPU time of the calling thread (time.thread_time): what the call costs a core, excluding time spent "
    "waiting for one on a shared machine; needs one torch thread and a CPU workload",
}


def resolve_clock(clock: str, device: str, threads: int) -> str:
    """'auto' -> 'cpu' for a single-threaded CPU workload, else 'wall'."""
    on_cpu = torch.device(device).type == "cpu"
    if clock == "auto":
        return "cpu" if on_cpu and threads == 1 else "wall"
    if clock not in CLOCKS:
        raise BenchError(f"--clock {clock!r}: choose wall, cpu or auto")
    if clock == "cpu" and not (on_cpu and threads == 1):
        raise BenchError(
            "--clock cpu times the calling thread only: it needs --device cpu and --threads 1 (use --clock wall)"
        )
    return clock


def time_sample(caller: Caller, k: int, clock: str = "wall") -> float:
    """Seconds per call over ``k`` back-to-back calls (arguments prepared beforehand)."""
    now = CLOCKS[clock]
    prepared = caller.prepare(k)
    caller.seed()
    device = caller.workload.device
    synchronize(device)
    with _no_gc():
        start = now()
        out = caller.run(prepared)
        synchronize(device)
        elapsed = now() - start
    del out
    return elapsed / k


def _warm_up(caller: Caller, calls: int, seconds: float, clock: str) -> float:
    """Call until both ``calls`` calls and ``seconds`` of wall time have passed (first
    calls pay lazy set-up, and the allocator takes a few calls to settle: the first
    calls can be 3x to 100x a steady one), at most :data:`MAX_WARMUP_CALLS`; returns the
    fastest of the last half, which sizes the samples."""
    start, times = time.perf_counter(), []
    while len(times) < max(1, calls) or (time.perf_counter() - start < seconds and len(times) < MAX_WARMUP_CALLS):
        times.append(time_sample(caller, 1, clock))
    return min(times[len(times) // 2 :])


def _error_text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


_ALLOCATOR_NOTE = ""


def steady_allocator() -> str:
    """Serve every allocation from glibc malloc's heap and never give memory back to the
    OS (M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB), once per process, so that a call's cost no
    longer depends on whether malloc happens to hand it fresh pages.

    Left to glibc's defaults, an output of a few MB up is served sometimes from the heap
    and sometimes from fresh mmap'd or re-grown memory that the kernel must fault in and
    zero (about 0.28 ms per MB here: 14 ms of a 22 ms call at batch 256), depending on
    what ran before: the same call costs 1x or 2.5x, run to run and block to block. That
    is the allocator's history, not the builder's work (a CUDA caching allocator, or
    jemalloc/tcmalloc, would not pay it per call), so the benchmark measures the warm
    regime; ``--default-allocator`` measures glibc as configured. Returns a note for
    the report ('' where malloc is not glibc's, and nothing is changed)."""
    global _ALLOCATOR_NOTE
    if _ALLOCATOR_NOTE or not sys.platform.startswith("linux"):
        return _ALLOCATOR_NOTE
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return ""
        ok = libc.mallopt(-4, 0) == 1 and libc.mallopt(-1, 2**31 - 1) == 1  # M_MMAP_MAX, M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return ""
    if ok:
        _ALLOCATOR_NOTE = (
            "glibc malloc held warm (M_MMAP_MAX=0, M_TRIM_THRESHOLD=2 GiB; dnspec.benchmarks.timing.steady_allocator): "
            "times exclude page faults on fresh memory"
        )
    return _ALLOCATOR_NOTE


def measure(
    impls: list,
    workloads: Iterable[Workload],
    *,
    rounds: int = DEFAULT_ROUNDS,
    blocks: int = DEFAULT_BLOCKS,
    min_sample_s: float = DEFAULT_MIN_SAMPLE_S,
    warmup: int = DEFAULT_WARMUP,
    warmup_s: float = DEFAULT_WARMUP_S,
    clock: str = "wall",
    memory: bool = True,
    steady: bool = True,
    specs: list[str] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    time_limit_s: float | None = None,
    native_peers: bool = True,
) -> list[Measurement]:
    """Time every implementation on every workload, interleaved within each workload.

    ``impls``: :class:`~dnspec.implementations.specs.Implementation` objects (or plain callables), named
    by ``specs`` (default: their names). The ``rounds`` of a workload are split into
    ``blocks``; each block builds fresh inputs and embeddings (new allocations), so that
    what the memory layout of one block favours is averaged out over blocks, and the
    spread between blocks measures it. ``on_progress(description, n)`` hears of every
    round. An implementation that raises, or whose sample runs past ``time_limit_s``
    (SIGALRM, main thread only; the alarm is set outside the timed region), is recorded
    with its error for that workload and not called again on it.
    """
    from dnspec.calling.call import time_limit

    if steady:
        steady_allocator()
    specs = specs or [getattr(impl, "name", None) or getattr(impl, "__name__", repr(impl)) for impl in impls]
    timed = {spec: timed_callable(impl, native_peers) for spec, impl in zip(specs, impls, strict=True)}
    blocks = max(1, min(blocks, rounds))
    out: list[Measurement] = []
    for workload in workloads:
        rows = {
            spec: Measurement(spec=spec, label=getattr(impl, "label", spec), workload=workload, note=timed[spec][2])
            for spec, impl in zip(specs, impls, strict=True)
        }
        k = None
        done = 0
        for block in range(blocks):
            callers: dict[str, Caller] = {}
            block_rounds = rounds // blocks + (1 if block < rounds % blocks else 0)
            fastest = math.inf
            for spec in specs:
                if rows[spec].error is not None:
                    continue
                try:
                    callers[spec] = Caller(timed[spec][0], workload, timed[spec][1])
                    with time_limit(time_limit_s and time_limit_s * (warmup + 1), f"{spec} on {workload.short}"):
                        if block == 0:
                            fastest = min(fastest, _warm_up(callers[spec], warmup, warmup_s, clock))
                        else:  # the process is warm; settle the new inputs' allocations
                            _warm_up(callers[spec], 2, 0.0, clock)
                except Exception as exc:  # the implementation's failure, recorded for its row
                    rows[spec].error = _error_text(exc)
            live = [spec for spec in specs if rows[spec].error is None]
            if k is None:
                # One k for the workload, sized by its fastest implementation: every
                # implementation's samples then have the same structure (k calls, k inputs).
                k = max(1, min(MAX_CALLS_PER_SAMPLE, math.ceil(min_sample_s / max(fastest, 1e-9)))) if live else 1
            for _ in range(WARM_ROUNDS):  # untimed for the result: the interleaved pattern settles
                for spec in live:
                    if rows[spec].error is None:
                        try:
                            with time_limit(time_limit_s and time_limit_s * k, f"{spec} on {workload.short}"):
                                time_sample(callers[spec], k, clock)
                        except Exception as exc:
                            rows[spec].error = _error_text(exc)
            for _ in range(block_rounds):
                shift = done % len(live) if live else 0
                measured = {}
                for spec in live[shift:] + live[:shift]:
                    if rows[spec].error is not None:
                        continue
                    try:
                        with time_limit(time_limit_s and time_limit_s * k, f"{spec} on {workload.short}"):
                            measured[spec] = time_sample(callers[spec], k, clock)
                    except Exception as exc:
                        rows[spec].error = _error_text(exc)
                for spec in specs:
                    rows[spec].samples.append(measured.get(spec))
                    rows[spec].blocks.append(block)
                done += 1
                if on_progress:
                    on_progress(workload.short, 1)
            if memory and block == blocks - 1:
                for spec in live:
                    row = rows[spec]
                    if row.error is not None:
                        continue
                    try:
                        with time_limit(time_limit_s, f"{spec} on {workload.short}"):
                            row.peak_bytes, row.output_bytes, row.memory_method = peak_memory(callers[spec])
                    except Exception as exc:
                        row.error = _error_text(exc)
            callers.clear()
        for row in rows.values():
            row.calls_per_sample = k or 1
        out.extend(rows[spec] for spec in specs)
    return out
