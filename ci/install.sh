#!/usr/bin/env bash
# Create .venv (if missing) and install into it exactly what CI's lock says, then dnspec.
#
# 1. ci/locks/test.txt (written by ci/lock.sh): every package dnspec and CI need (every
#    extra of pyproject.toml, ruff, build, twine, the build backend), direct and
#    transitive, at an exact version, each file checked against its sha256
#    (--require-hashes): a release published after the lock changes nothing here. torch
#    is the CPU wheel on our machines' disk (an unpinned torch pulls a multi-GB CUDA build).
#    The installer is uv (ci/uv.sh, itself locked in ci/locks/uv.txt): the same files,
#    checked the same way, in seconds rather than pip's minute.
# 2. dnspec itself, non-editable (the suite tests the installed package, as users get it),
#    --no-deps (its dependencies are the lock's) and built by the locked setuptools
#    (--no-build-isolation: no unpinned build backend is fetched).
# 3. pip check: the locked versions satisfy what dnspec's metadata asks for.
#
# The lock is for Python 3.11 (CI's); PYTHON names another interpreter for a new .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
lock=ci/locks/test.txt
quiet() { grep -v "^WARNING: Location .* is ignored" || true; }
# pip builds in ./build: a module removed or moved in the tree would linger there and be
# installed again, hiding an import of its old path
rm -rf build
if [ ! -x .venv/bin/python ]; then
    "${PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv .venv
fi
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "ci/install.sh: .venv runs Python $(.venv/bin/python -c 'import platform; print(platform.python_version())'); $lock is for Python 3.11 (remove .venv and set PYTHON=python3.11)" >&2
    exit 2
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
# (pipefail: a pipeline fails when pip does, whatever the filter says)
source ci/uv.sh
uv_install .venv/bin/python "$lock" || { echo "ci/install.sh: installing $lock failed" >&2; exit 1; }
"${pip[@]}" install --quiet --no-deps --no-build-isolation . 2>&1 | quiet \
    || { echo "ci/install.sh: building and installing dnspec failed" >&2; exit 1; }
"${pip[@]}" check >/dev/null || { "${pip[@]}" check >&2; echo "ci/install.sh: $lock does not satisfy dnspec's requirements" >&2; exit 1; }
test -x .venv/bin/dnspec || { echo "ci/install.sh: dnspec did not install" >&2; exit 1; }
