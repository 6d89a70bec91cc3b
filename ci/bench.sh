#!/usr/bin/env bash
# The benchmark regression gate CI can afford (about 20 s on 2 shared cores): the
# reference and `fast`, timed interleaved on the workloads of the committed baseline,
# each one's time taken as a ratio to the reference's in the same rounds, and that ratio
# compared with the baseline's. Exit 1 when `fast` got more than 15% slower relative to
# the reference (and significantly so); 2 when the gate cannot run.
# Called by ci/test.sh after the tests. Extra arguments go to `dnspec bench`
# (e.g. --json out/bench-gate.json --markdown out/bench-gate.md).
# Refresh the baseline after an intended speed change:
#   .venv/bin/dnspec bench reference fast --repeats 40 --blocks 8 --write-baseline benchmarks/baselines/cpu.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/dnspec ] || [ -n "$(find dnspec pyproject.toml -newer .venv/bin/dnspec -print -quit)" ]; then
    bash ci/install.sh test,peers,plot
fi
.venv/bin/dnspec bench reference fast \
    --baseline benchmarks/baselines/cpu.json --max-slowdown 15% \
    --repeats 20 --blocks 4 "$@"
