#!/usr/bin/env bash
# The drift check: the suite and the documented outputs against the NEWEST releases of
# every dependency, not the lock's. Non-blocking: .ci/run never calls it, and what it finds
# is a warning of what the next lock refresh (bash ci/lock.sh) will bring, not a failure of
# anyone's submission. Run it by hand or on a schedule:
#
#   bash ci/latest.sh [PYTEST ARGS...]     (default: the whole suite, properties/)
#
# 1. creates .venv-latest (reused when present) and installs dnspec into it with every
#    extra, upgrading every dependency to its newest release (--upgrade-strategy eager);
#    torch stays the CPU wheel of ci/constraints.txt (the only CPU build on our disk);
# 2. prints each package whose version differs from ci/locks/test.txt (lock -> latest);
# 3. runs the property suite (pytest -n auto) and the docs check (ci/docs.py, with
#    .venv-latest's commands: a block that differs only by a package's version says which);
#
# Exit status: 0 when the suite and the docs check pass on the newest releases, 1 when
# either fails (the drift to look at before refreshing the lock), 2 when the install failed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-latest
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv "$venv"
fi
rm -rf build
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade --upgrade-strategy eager \
    -c ci/constraints.txt ".[test,peers,plot]" 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; } \
    || { echo "ci/latest.sh: pip install of the newest releases into $venv failed" >&2; exit 2; }
"$venv/bin/python" - ci/locks/test.txt <<'PY'
import importlib.metadata as md
import re
import sys

canonical = lambda name: re.sub(r"[-_.]+", "-", name).lower()
locked = dict(re.findall(r"^([A-Za-z0-9][\w.\-]*)==(\S+)", open(sys.argv[1]).read(), re.M))
locked = {canonical(k): v for k, v in locked.items()}
moved = []
for dist in sorted(md.distributions(), key=lambda d: canonical(d.metadata["Name"])):
    name = canonical(dist.metadata["Name"])
    if name in locked and locked[name] != dist.version:
        moved.append(f"{name} {locked[name]} -> {dist.version}")
print("ci/latest.sh: newer than the lock: " + (", ".join(moved) if moved else "nothing (the lock is current)"))
PY
status=0
# no path given: pyproject.toml's testpaths (properties/); `bash ci/latest.sh properties/test_x.py` runs one file
"$venv/bin/pytest" -p no:cacheprovider -n auto "$@" || status=1
DNSPEC_DOCS_VENV="$venv" "$venv/bin/python" ci/docs.py || status=1
if [ "$status" -ne 0 ]; then
    echo "ci/latest.sh: the newest releases break the suite or change a documented output (above); the lock still holds CI" >&2
fi
exit "$status"
