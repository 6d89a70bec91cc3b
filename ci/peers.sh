#!/usr/bin/env bash
# The peers job: every installable peer CDN builder in one venv and one conformance matrix.
#
#   bash ci/peers.sh [OUT.md]        (default OUT.md: peers-matrix.md)
#
# 1. Creates .venv-peers in the repository root (reused when present) and installs into it
#    exactly the peers' lock, ci/locks/peers.txt (written by ci/lock.sh, --require-hashes,
#    installed by uv: ci/uv.sh):
#    every peer, transformers (the `peers` extra), libreyolo, lightly-train and
#    ultralytics, with torch 2.14.1 and torchvision 0.29.1 (both lie on our machines'
#    disk; pip never pulls another torch), then dnspec, non-editable, --no-deps. The peers need torchvision, and PyPI's torchvision does not load beside the
#    CPU torch 2.13 of the default .venv, which this job leaves as it is.
# 2. Runs the adapter tests in that venv: properties/test_peer_adapters.py (libreyolo,
#    lightly-train) and properties/test_adapters.py (transformers, ultralytics).
# 3. Runs `dnspec matrix --profile ci` over the reference and every installed peer's
#    built-in SPECs (dnspec.implementations.adapters.installed lists them, whether or not they import, so
#    a peer that fails to import gets an error row, not a missing one) and writes OUT.md.
#
# Exit status: 0 when the adapter tests passed and the matrix was written (divergences
# are data, not failures); the adapter tests' status when they failed (the matrix is still
# written); 2 when the matrix could not be produced.
#
# Nothing here reaches the network but the package registries: the settings file that
# importing ultralytics writes, Hugging Face's caches and matplotlib's go inside the venv,
# and the hubs are told to stay offline.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-peers-matrix.md}"
venv=.venv-peers
seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { printf "%.0f", b - a }'; }

export YOLO_CONFIG_DIR="$PWD/$venv/ultralytics-config"  # ultralytics writes settings.json here at import
export YOLO_OFFLINE=1                                     # no ultralytics hub / version checks
export HF_HOME="$PWD/$venv/hf-home" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HUB_DISABLE_TELEMETRY=1
export LIGHTLY_TRAIN_EVENTS_DISABLED=1                    # lightly-train's usage events
export MPLCONFIGDIR="$PWD/$venv/mpl-config"

started=$(seconds)
if [ -x "$venv/bin/python" ]; then
    how="reused"
else
    how="created"
    # Python 3.11: the torch and torchvision wheels on our disk are cp311 builds
    "${PYTHON:-$(command -v python3.11 || command -v python3)}" -m venv "$venv"
fi
status=0
rm -rf build
source ci/uv.sh
uv_install "$venv/bin/python" ci/locks/peers.txt >"$venv/pip-install.log" 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation . \
        >>"$venv/pip-install.log" 2>&1 || status=$?
fi
grep -v "^WARNING: Location .* is ignored" "$venv/pip-install.log" || true
if [ "$status" -ne 0 ]; then
    echo "ci/peers.sh: pip install into $venv failed (exit $status): ci/locks/peers.txt (bash ci/lock.sh writes it), then dnspec" >&2
    exit 2
fi
if ! "$venv/bin/python" -m pip check >"$venv/pip-check.log" 2>&1; then
    echo "ci/peers.sh: pip check reports conflicts in $venv (the matrix still runs):" >&2
    cat "$venv/pip-check.log" >&2
fi
test -x "$venv/bin/dnspec" || { echo "ci/peers.sh: dnspec did not install into $venv" >&2; exit 2; }
echo "ci/peers.sh: $venv $how and installed in $(elapsed "$started") s"
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
names = ("torch", "torchvision", "transformers", "libreyolo", "lightly-train", "ultralytics", "dnspec")
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "absent"
print("ci/peers.sh:", ", ".join(f"{n} {version(n)}" for n in names))
EOF

# the installed dnspec, not ./dnspec: .venv-peers/bin/pytest imports from site-packages
started=$(seconds)
tests=0
"$venv/bin/pytest" properties/test_peer_adapters.py properties/test_adapters.py -p no:cacheprovider -q -rs || tests=$?
echo "ci/peers.sh: adapter tests exited ${tests} in $(elapsed "$started") s"

started=$(seconds)
mapfile -t specs < <("$venv/bin/python" -m dnspec.implementations.adapters.installed)
matrix=0
# two verify runs at a time: one alone left CI's two cores idle 22% of the time (starting
# Python, importing torch and the peer's package, writing its report); the table is the same
"$venv/bin/dnspec" matrix reference "${specs[@]}" --profile ci --parallel 2 --out "$out" || matrix=$?
echo "ci/peers.sh: dnspec matrix over reference and ${#specs[@]} peer SPECs exited ${matrix} in $(elapsed "$started") s"
if [ "$matrix" -ne 0 ] || [ ! -s "$out" ]; then
    echo "ci/peers.sh: the matrix was not produced" >&2
    exit 2
fi
echo "ci/peers.sh: matrix written to $out"
exit "$tests"
