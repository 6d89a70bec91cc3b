#!/usr/bin/env bash
# The benchmark regression gates CI can afford (about 50 s on 2 shared cores):
# 1. the reference and `fast`, timed interleaved on the workloads of the committed
#    baseline, each one's time taken as a ratio to the reference's in the same rounds, and
#    that ratio compared with the baseline's: fails when `fast` got more than 15% slower
#    relative to the reference (and significantly so);
# 2. dnspec's own speed (benchmarks/suite_speed.py): `dnspec verify --profile ci` on a
#    metered copy of the reference, dnspec's CPU time (start-up excluded) per CPU second
#    inside the implementation, compared with benchmarks/baselines/suite-speed.json: fails
#    when that ratio rose by more than 20% or the run makes more calls than the baseline's,
#    or when its wall-time ratio (the worker processes included) exceeds 3.
# Both compare ratios measured in one run, never raw times. Exit 1 when a gate flagged a
# slowdown; 2 when a gate cannot run.
# Called by ci/test.sh after the tests. Extra arguments go to `dnspec bench`
# (e.g. --json out/bench-gate.json --markdown out/bench-gate.md).
# Refresh the baselines after an intended speed change:
#   .venv/bin/dnspec bench reference fast --repeats 40 --blocks 8 --write-baseline benchmarks/baselines/cpu.json
#   .venv/bin/python benchmarks/suite_speed.py --runs 3 --write-baseline benchmarks/baselines/suite-speed.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/dnspec ] || [ -n "$(find dnspec pyproject.toml -newer .venv/bin/dnspec -print -quit)" ]; then
    bash ci/install.sh
fi
status=0
.venv/bin/dnspec bench reference fast \
    --baseline benchmarks/baselines/cpu.json --max-slowdown 15% \
    --repeats 20 --blocks 4 "$@" || status=$?
suite=0
.venv/bin/python benchmarks/suite_speed.py --runs 2 \
    --baseline benchmarks/baselines/suite-speed.json --max-increase 20% --max-ratio 3 || suite=$?
if [ "$status" -eq 0 ]; then
    status=$suite
fi
exit "$status"
