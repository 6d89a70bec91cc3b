#!/usr/bin/env bash
# The macOS/Windows/CUDA route, run on Linux: workers that are not forked, so everything
# handed to a worker must pickle (tasks, executors, the implementation, the properties).
# 1. the whole self-test (broken, stopping and hanging variants) with workers started by
#    forkserver (the route that pickles, as spawn does; its server preloads torch, so each
#    of the self-test's many short runs starts its worker in milliseconds, not seconds);
# 2. `dnspec verify` with workers forced to spawn and to forkserver: the reference must
#    conform, a mask mutant must be exactly one divergence.
# Expects the .venv ci/test.sh made. Cost: docs/speed.md ("Workers that are not forked").
set -euo pipefail
cd "$(dirname "$0")/.."
DNSPEC_START_METHOD=forkserver .venv/bin/pytest properties/selftest -p no:cacheprovider -n auto -q
for method in spawn forkserver; do
    DNSPEC_START_METHOD=$method .venv/bin/dnspec verify reference --profile ci
    report="$(mktemp -d)/mutant.json"
    status=0
    DNSPEC_START_METHOD=$method .venv/bin/dnspec verify properties/cli_fixtures/broken.py:build --profile ci \
        --report "$report" > /dev/null || status=$?
    .venv/bin/python - "$report" "$status" "$method" <<'PY'
import json, sys
names = [d["name"] for d in json.load(open(sys.argv[1]))["divergences"]]
if sys.argv[2] != "1" or len(names) != 1:
    sys.exit(f"{sys.argv[3]} workers: the mask mutant should be one divergence (exit 1), got exit {sys.argv[2]}, {names}")
print(f"{sys.argv[3]} workers: the mask mutant is one divergence ({names[0]})")
PY
done
