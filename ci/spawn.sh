#!/usr/bin/env bash
# The macOS/Windows/CUDA route, run on Linux: workers started with spawn (or the start method
# given as $1: forkserver), so everything handed to a worker must pickle. Runs the whole
# self-test (broken, stopping and hanging variants) and `dnspec verify` on the reference
# (must conform) and on a mask mutant (must be exactly one divergence). Expects the .venv
# ci/test.sh made. Cost: see docs/speed.md ("Workers that are not forked").
set -euo pipefail
cd "$(dirname "$0")/.."
export DNSPEC_START_METHOD="${1:-spawn}"
.venv/bin/pytest properties/selftest -p no:cacheprovider -n auto -q
.venv/bin/dnspec verify reference --profile ci
report="$(mktemp -d)/mutant.json"
status=0
.venv/bin/dnspec verify properties/cli_fixtures/broken.py:build --profile ci --report "$report" > /dev/null || status=$?
.venv/bin/python - "$report" "$status" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
names = [d["name"] for d in data["divergences"]]
if sys.argv[2] != "1" or len(names) != 1:
    sys.exit(f"spawn route: the mask mutant should be one divergence (exit 1), got exit {sys.argv[2]} and {names}")
print(f"spawn route: the mask mutant is one divergence ({names[0]})")
PY
