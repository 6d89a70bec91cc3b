# Sourced by ci/install.sh, ci/peers.sh and ci/lock.sh: uv, CI's installer and resolver.
#
#   ensure_uv                   installs uv from ci/locks/uv.txt (exact version, hashes) into
#                               .venv-lock (reused while it holds that version) and sets $uv
#   uv_sources                  the sources pip is configured with (pip.conf's find-links and
#                               indexes, PIP_* variables) as uv options, in the array $sources:
#                               uv does not read pip's configuration, and the torch wheels CI
#                               uses lie on the machines' disk (find-links)
#   uv_install PYTHON LOCK [--no-compile]
#                               installs exactly LOCK into the venv of PYTHON (--require-hashes,
#                               --no-deps), as pip would, in seconds rather than minutes
#                               (measured: ci/locks/test.txt 4 s against pip's 51 s,
#                               ci/locks/peers.txt 16 s against about 170 s, no cache), and
#                               compiles the bytecode as pip does (--compile-bytecode, 18 s
#                               for ci/locks/test.txt): uv does not by default, and where
#                               PYTHONDONTWRITEBYTECODE is set (it is on CI's machines) no
#                               process ever writes it, so every Python process CI starts
#                               outside a fork compiled torch's modules again, ~2.2 s each
#                               (`import torch, hypothesis, dnspec.commands.verify`: 4.0 s
#                               against 1.8 s); --no-compile skips it where few processes
#                               start (the release check's venv: it would cost more than it saves)
uv=.venv-lock/bin/uv
uv_version=$(sed -n 's/^uv==\([0-9.]*\).*/\1/p' ci/locks/uv.in)

ensure_uv() {
    if [ "$("$uv" --version 2>/dev/null)" != "uv ${uv_version}" ]; then
        [ -x .venv-lock/bin/python ] || python3 -m venv .venv-lock
        .venv-lock/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
            -r ci/locks/uv.txt 2>&1 | grep -v "^WARNING: Location .* is ignored" || true
    fi
    "$uv" --version >/dev/null || { echo "ci/uv.sh: uv ${uv_version} did not install into .venv-lock" >&2; return 1; }
}

uv_sources() {
    sources=()
    local link index
    for link in $(python3 -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
        sources+=(--find-links "$link")
    done
    for index in $(python3 -m pip config get global.index-url 2>/dev/null || true) ${PIP_INDEX_URL:-}; do
        sources+=(--index-url "$index")
    done
    for index in $(python3 -m pip config get global.extra-index-url 2>/dev/null || true) ${PIP_EXTRA_INDEX_URL:-}; do
        sources+=(--extra-index-url "$index")
    done
}

uv_install() { # PYTHON LOCK [--no-compile]
    ensure_uv && uv_sources
    local compile=(--compile-bytecode)
    [ "${3:-}" = "--no-compile" ] && compile=()
    "$uv" pip install --quiet --python "$1" --require-hashes --no-deps -r "$2" "${compile[@]}" \
        --index-strategy unsafe-best-match "${sources[@]}"
}
