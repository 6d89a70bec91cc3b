"""Throughput of each implementation on each workload, with pytest-benchmark.

One test per implementation x batch size x max boxes x num_denoising x device, grouped
by workload. Each timed round is one call on freshly cloned targets (cloned in
pytest-benchmark's untimed ``setup``), after untimed warm-up calls; device work is
synchronised inside the timed function. ``extra_info`` holds images/s and dn queries/s
(from the median), the output's bytes and the peak memory of one extra call.

On a fixed machine, pytest-benchmark's own comparison is a regression gate on absolute
times::

    pytest benchmarks --benchmark-autosave                       # once, on the reference commit
    pytest benchmarks --benchmark-compare --benchmark-compare-fail=median:15%

On shared or changing machines use ``dnspec bench --baseline`` instead (ratios to the
reference, interleaved): see the README.
"""

from __future__ import annotations

import pytest

from dnspec.benchmarks import memory as bench_memory
from dnspec.benchmarks import timing as bench_timing
from dnspec.benchmarks import workloads as bench_workloads

pytest.importorskip("pytest_benchmark", reason="pip install 'dnspec[test]' (pytest-benchmark) to run the benchmarks")


def test_throughput(
    benchmark, bench_spec, bench_impl, batch_size, max_boxes, num_denoising, bench_device, bench_rounds
):
    workload = bench_workloads.Workload(
        batch_size=batch_size, max_boxes=max_boxes, num_denoising=num_denoising, device=bench_device
    )
    fn, translate, note = bench_workloads.timed_callable(bench_impl)
    caller = bench_workloads.Caller(fn, workload, translate)
    bench_timing._warm_up(caller, bench_workloads.DEFAULT_WARMUP, bench_workloads.DEFAULT_WARMUP_S, "wall")

    def setup():
        prepared = caller.prepare(1)
        caller.seed()
        bench_workloads.synchronize(bench_device)
        return (prepared,), {}

    def call(prepared):
        out = caller.run(prepared)
        bench_workloads.synchronize(bench_device)
        return out

    benchmark.group = f"{workload.short} {bench_device}"
    peak, output, method = bench_memory.peak_memory(caller)
    benchmark.extra_info.update(
        {
            "implementation": getattr(bench_impl, "label", bench_spec),
            "batch_size": batch_size,
            "max_boxes": max_boxes,
            "num_denoising": num_denoising,
            "device": bench_device,
            "dn_queries_per_image": workload.dn_queries,
            "peak_bytes": peak,
            "output_bytes": output,
            "memory_method": method,
            "note": note,
        }
    )
    out = benchmark.pedantic(call, setup=setup, rounds=bench_rounds, iterations=1, warmup_rounds=0)
    assert out is not None and len(out) == 4, f"{bench_spec} returned {type(out).__name__}, not the four outputs"
    stats = getattr(benchmark, "stats", None)
    median = getattr(getattr(stats, "stats", None), "median", None)
    if median:
        benchmark.extra_info["images_per_s"] = batch_size / median
        benchmark.extra_info["dn_queries_per_s"] = batch_size * workload.dn_queries / median
