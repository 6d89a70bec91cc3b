#!/usr/bin/env bash
# The test command: install dnspec (ci/install.sh), lint and format-check the code (ruff,
# configured in pyproject.toml), run the property suite against the installed package on
# every core (pytest-xdist's -n auto: each worker has its own module-level caches, and the
# tests write only under their tmp_path), check that every output shown in README.md and
# docs/ is still what its command prints and every link resolves (ci/docs.py), the release
# artifact check (ci/release.sh), then the speed gates (ci/bench.sh). Extra arguments go
# to pytest (e.g. --impl fast; -n 0 runs in one process). pytest's exit status is kept: a failure, or no test collected (5), fails
# this script; so does any ruff finding or documentation difference.
set -euo pipefail
cd "$(dirname "$0")/.."
# each step's wall time, printed as it ends (where CI's minutes go: CONTRIBUTING.md)
mark=$(date +%s)
took() { local now; now=$(date +%s); echo "ci/test.sh: $1 took $((now - mark)) s"; mark=$now; }
bash ci/install.sh
took "install"
# ruff comes from the lock (ci/locks/test.in pins it: another version formats differently)
.venv/bin/ruff check .
.venv/bin/ruff format --check .
took "ruff"
# .venv/bin/pytest (not `python -m pytest`) so the installed dnspec is tested, not ./dnspec
.venv/bin/pytest properties -p no:cacheprovider -n auto "$@"
took "the property suite"
# the documented outputs: each marked block's command re-run (in parallel), links checked
.venv/bin/python ci/docs.py
took "the docs check"
# the release artifact: sdist and wheel built, checked, installed into a new venv and run
# from outside the repository (ci/release.sh)
bash ci/release.sh
took "the release check"
if [ -f ci/bench.sh ]; then
    bash ci/bench.sh
    took "the speed gates"
fi
# the macOS/Windows/CUDA route: the self-test and verify again with workers that are not forked (issue 26)
bash ci/spawn.sh
took "the spawn route"
