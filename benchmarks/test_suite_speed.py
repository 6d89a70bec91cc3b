"""dnspec's own speed, as a pytest check without pytest-benchmark (``benchmarks/suite_speed.py``
measures; this asserts):

    pytest benchmarks/test_suite_speed.py [-s]

One verify run of the metered reference under ``--profile ci``, judged against the
committed baseline ``benchmarks/baselines/suite-speed.json`` by ratios measured in that
run, never by a time: the CPU-time ratio (dnspec's CPU seconds, start-up excluded, per CPU
second inside the implementation) at most 20% above the baseline's, and no more calls of
the implementation than the baseline made. Re-baseline after an intended change:

    python benchmarks/suite_speed.py --runs 3 --write-baseline benchmarks/baselines/suite-speed.json
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BASELINE = HERE / "baselines" / "suite-speed.json"
MAX_INCREASE = 0.20


def _suite_speed():
    spec = importlib.util.spec_from_file_location("dnspec_suite_speed", HERE / "suite_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured():
    suite_speed = _suite_speed()
    return suite_speed, suite_speed.summary(suite_speed.measure(runs=1))


def test_measurement_is_sane(measured):
    _, now = measured
    assert now["calls"] > 0 and now["inside_s"] > 0 and now["inside_cpu_s"] > 0
    assert now["wall_s"] > now["startup_wall_s"] > 0
    assert now["ratio_wall"] > 0 and now["ratio_cpu"] > 0
    print(
        f"\n{now['calls']:.0f} calls, {now['inside_s']:.2f} s inside, wall {now['wall_s']:.1f} s, "
        f"start-up {now['startup_wall_s']:.2f} s, ratio {now['ratio_wall']:.2f} (CPU time {now['ratio_cpu']:.2f})"
    )


def test_own_time_per_implementation_second_has_not_grown(measured):
    suite_speed, now = measured
    if not BASELINE.exists():
        pytest.skip(f"no baseline at {BASELINE}")
    problems = suite_speed.gate(now, suite_speed._load(BASELINE), MAX_INCREASE, None)
    assert not problems, "; ".join(problems)
