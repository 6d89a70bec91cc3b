"""Benchmarks: workloads, interleaved timing, peak memory, result files, the regression gate and its report."""
