#!/usr/bin/env bash
# Create .venv (if missing) and install dnspec into it, non-editable, with the extras
# given as arguments (default: test,peers,plot). torch is pinned to the CPU wheel by
# ci/constraints.txt; an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test,peers,plot}"
# pip builds in ./build: a module removed or moved in the tree would linger there and be
# installed again, hiding an import of its old path
rm -rf build
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c ci/constraints.txt ".[${extras}]" 2>&1 \
    | grep -v "^WARNING: Location .* is ignored" || true
test -x .venv/bin/dnspec || { echo "ci/install.sh: dnspec did not install" >&2; exit 1; }
