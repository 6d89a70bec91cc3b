#!/usr/bin/env bash
# Regenerate CI's lock files (the one documented way to refresh them):
#
#   bash ci/lock.sh            then review `git diff ci/locks/` and commit it on its own
#
#   ci/locks/test.txt   .venv (ci/install.sh, ci/test.sh, ci/verify.sh, ci/bench.sh,
#                       ci/release.sh): dnspec's dependencies with every extra
#                       (pyproject.toml), CI's tools (ci/locks/test.in: ruff, build, twine,
#                       the build backend), torch held to the CPU wheel by ci/constraints.txt
#   ci/locks/peers.txt  .venv-peers (ci/peers.sh): the same plus the peer packages
#                       (ci/locks/peers.in), held by ci/constraints-peers.txt (torch 2.14.1,
#                       torchvision 0.29.1 and the peer releases)
#
# Every package, direct and transitive, is pinned to an exact version with the sha256 of
# every file of that version on the indexes (pip installs them with --require-hashes).
# The resolver is uv's `pip compile` (uv locked in ci/locks/uv.txt, installed into
# .venv-lock by ci/uv.sh, which the installs use too), for CI's
# Python (3.11) and platform (x86_64 Linux, glibc 2.28 or newer), whatever machine runs
# this script. It takes the newest version across all the indexes pip is configured with
# (--index-strategy unsafe-best-match: what pip itself does), so the lock holds what a
# fresh `pip install` got the day it was made.
#
# Local-disk wheels: the torch and torchvision builds CI uses lie on the machines' disk
# (pip's find-links and the file:// extra indexes of its configuration, which this script
# passes on to uv). uv hashes those files itself, so their hashes are the files' own
# sha256, and pip checks them like any other; a rebuilt local wheel under the same name
# fails the install (a hash mismatch) instead of slipping in. The paths are read from
# `pip config`, not written into the locks: the locks hold names, versions and hashes only.
#
# On an unchanged index the script rewrites the locks byte for byte (`git diff` stays
# empty). A refresh is a commit of its own; when a locked version that a documented output
# prints moved (transformers in docs/lineages.md, say), regenerate those blocks in the same
# commit: `python ci/docs.py` names the package that moved.
set -euo pipefail
cd "$(dirname "$0")/.."
source ci/uv.sh
ensure_uv
uv_sources

compile() { # OUT.txt IN.in CONSTRAINTS
    "$uv" pip compile --quiet pyproject.toml "$2" --all-extras --constraint "$3" \
        --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --index-strategy unsafe-best-match "${sources[@]}" --no-emit-find-links --no-emit-index-url \
        --custom-compile-command "bash ci/lock.sh" --output-file "$1"
}
"$uv" pip compile --quiet ci/locks/uv.in --generate-hashes --python-version 3.11 \
    --python-platform x86_64-manylinux_2_28 --index-strategy unsafe-best-match "${sources[@]}" \
    --no-emit-find-links --no-emit-index-url --custom-compile-command "bash ci/lock.sh" --output-file ci/locks/uv.txt
compile ci/locks/test.txt ci/locks/test.in ci/constraints.txt
compile ci/locks/peers.txt ci/locks/peers.in ci/constraints-peers.txt
for lock in ci/locks/uv.txt ci/locks/test.txt ci/locks/peers.txt; do
    echo "ci/lock.sh: $lock: $(grep -c '^[A-Za-z0-9]' "$lock") packages"
done
