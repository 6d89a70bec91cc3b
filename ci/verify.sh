#!/usr/bin/env bash
# The main job: install dnspec (ci/install.sh) and verify an implementation against the
# RT-DETR contract. Arguments go to `dnspec verify` (default: reference).
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/install.sh
if [ "$#" -eq 0 ]; then set -- reference; fi
.venv/bin/dnspec verify "$@"
