#!/usr/bin/env bash
# The test command: install dnspec (ci/install.sh) and run the property suite against
# the installed package. Extra arguments go to pytest (e.g. --impl fast).
# pytest's exit status is kept: a failure, or no test collected (5), fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install.sh test,peers,plot
# .venv/bin/pytest (not `python -m pytest`) so the installed dnspec is tested, not ./dnspec
.venv/bin/pytest properties -p no:cacheprovider "$@"
if [ -f ci/bench.sh ]; then
    bash ci/bench.sh
fi
