#!/usr/bin/env bash
# The test command: install dnspec (ci/install.sh) and run the property suite against
# the installed package, on every core (pytest-xdist's -n auto: each worker has its own
# module-level caches, and the tests write only under their tmp_path). Extra arguments
# go to pytest (e.g. --impl fast; -n 0 runs in one process).
# pytest's exit status is kept: a failure, or no test collected (5), fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install.sh test,peers,plot
# .venv/bin/pytest (not `python -m pytest`) so the installed dnspec is tested, not ./dnspec
.venv/bin/pytest properties -p no:cacheprovider -n auto "$@"
if [ -f ci/bench.sh ]; then
    bash ci/bench.sh
fi
