"""Peak memory of one benchmarked call, and the bytes its output holds.

On the CPU: the peak of the bytes torch's allocator allocated minus freed during one
untimed call (torch.profiler's memory events; tensor storage only). On CUDA: the caching
allocator's peak during the call above what was allocated before it. Elsewhere, or where
the profiler is missing, not measured, and the reason says why (never a made-up number).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import torch

from dnspec.benchmarks.workloads import Caller, synchronize

MEMORY_METHODS = {
    "cpu": "torch CPU allocator: peak of the bytes allocated minus freed during the call (torch.profiler memory events); "
    "tensor storage only, Python objects not counted",
    "cuda": "CUDA caching allocator: torch.cuda.max_memory_allocated during the call minus memory_allocated before it",
}


@contextlib.contextmanager
def _quiet_native_stderr():
    """Hide the profiler's own lines on fd 2 (kineto prints 'profiler_start/stop'),
    passing through anything else the call writes there."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                if "ActivityProfiler" not in line and "profiler_st" not in line
            ]
            if kept:
                sys.stderr.write("".join(kept))


def peak_memory(caller: Caller) -> tuple[int | None, int | None, str]:
    """(peak bytes allocated during one call above what was live before it, output bytes,
    method) for one untimed call; (None, None, reason) where it cannot be measured."""
    device = torch.device(caller.workload.device)
    prepared = caller.prepare(1)
    caller.seed()
    synchronize(caller.workload.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = caller.run(prepared)
        synchronize(caller.workload.device)
        return torch.cuda.max_memory_allocated(device) - before, output_bytes(out), "cuda"
    if device.type != "cpu":
        out = caller.run(prepared)
        return None, output_bytes(out), f"not measured on {device.type}"
    try:
        from torch.profiler import ProfilerActivity, profile

        with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = caller.run(prepared)
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    except Exception as exc:  # profiler missing or changed: say so, measure nothing
        out = caller.run(caller.prepare(1))
        return None, output_bytes(out), f"unavailable ({type(exc).__name__}: {exc})"
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        if event.device_type() == torch.autograd.DeviceType.CPU:
            live += event.nbytes()
            peak = max(peak, live)
    return peak, output_bytes(out), "cpu"


def output_bytes(out) -> int:
    """Bytes of the distinct storages the output's tensors hold (views counted once)."""
    seen: dict[int, int] = {}

    def visit(obj):
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                visit(item)

    visit(out)
    return sum(seen.values())
