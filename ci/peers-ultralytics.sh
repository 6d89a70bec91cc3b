#!/usr/bin/env bash
# Optional job, not in the default CI path: install ultralytics beside the CPU torch in
# its own venv, run the adapter tests against it, and verify it against the contract.
#
# ultralytics declares torchvision, but the import chain of ultralytics.models.utils.ops
# (its get_cdn_group) only reads torchvision's *version* (importlib.metadata) and never
# imports it. So torchvision is installed --no-deps for its metadata (16 MB; PyPI's
# torchvision does not import beside the on-disk CPU torch, and nothing here imports it),
# and of ultralytics' other requirements only what the import needs: numpy, pillow,
# pyyaml, opencv-python-headless. About 230 MB on top of torch, under a minute.
#
# Environment: DNSPEC_ULTRALYTICS_VENV (default: $TMPDIR/dnspec-venv-ultralytics),
# ULTRALYTICS_VERSION (default 8.4.190, the version the README's account describes),
# TORCHVISION_VERSION (default 0.28.0, the release paired with ci/constraints.txt's torch 2.13).
# Exit status: the adapter tests' (0 pass); `dnspec verify ultralytics` is expected to
# report divergences (exit 1) and only an exit 2 (cannot load) fails this script.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${DNSPEC_ULTRALYTICS_VENV:-${TMPDIR:-/tmp}/dnspec-venv-ultralytics}"
ultralytics_version="${ULTRALYTICS_VERSION:-8.4.190}"
torchvision_version="${TORCHVISION_VERSION:-0.28.0}"
# importing ultralytics writes its settings.json to the user's config folder: keep it in the venv
export YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$venv/ultralytics-config}"
pip_quiet() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
        | grep -v -e "^WARNING: Location .* is ignored" -e "dependency resolver" -e "^ultralytics .* requires " || true
}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
pip_quiet -c ci/constraints.txt ".[test]"
pip_quiet --no-deps "ultralytics==${ultralytics_version}" "torchvision==${torchvision_version}"
pip_quiet -c ci/constraints.txt numpy pillow pyyaml opencv-python-headless
"$venv/bin/python" -c "import ultralytics, ultralytics.models.utils.ops; print('ultralytics', ultralytics.__version__)"

# the installed dnspec, not ./dnspec: run from outside the work tree's package
"$venv/bin/pytest" properties/test_adapters.py -p no:cacheprovider -q -rs

status=0
"$venv/bin/dnspec" verify ultralytics --profile ci --report "${TMPDIR:-/tmp}/dnspec-verify-ultralytics.md" || status=$?
echo "dnspec verify ultralytics exited ${status} (1 = divergences reported, as expected; report: ${TMPDIR:-/tmp}/dnspec-verify-ultralytics.md)"
if [ "$status" -ge 2 ]; then
    exit "$status"
fi
