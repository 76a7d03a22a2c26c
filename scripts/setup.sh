#!/usr/bin/env bash
# Set improv up on a fresh Debian/Ubuntu machine: system packages, then Python packages.
# Safe to run again. Uses sudo for apt-get when not root.
#
# Where the system Python refuses `pip install` (PEP 668: Debian 12, Ubuntu 24.04 mark it
# "externally managed"), everything goes into a virtual environment, .venv/ here, and the
# `improv` command is linked into /usr/local/bin (root) or ~/.local/bin, so that
# `improv ...` works the same either way (IMPROV_BIN_DIR=... links it elsewhere).
# PYTHON=... picks another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="jackd2 libportaudio2 libsndfile1 fluidsynth libfluidsynth3 timgm6mb-soundfont fluid-soundfont-gm aubio-tools sndfile-tools python3-venv"
PY=${PYTHON:-python3}
# A CPU build of torch; on machines without a local wheel, e.g.
#   TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu" scripts/setup.sh
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $APT_PACKAGES
else
    echo "setup: no apt-get here; install these yourself: $APT_PACKAGES" >&2
fi

# Does this Python take `pip install`? Not when it is externally managed (and not a venv already).
externally_managed() {
    "$PY" - <<'PYEOF'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
in_venv = sys.prefix != sys.base_prefix
sys.exit(0 if managed and not in_venv and not os.environ.get("PIP_BREAK_SYSTEM_PACKAGES") else 1)
PYEOF
}

VENV=""
if [ -x .venv/bin/python ] || externally_managed; then
    VENV=.venv
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: $PY is externally managed (PEP 668); installing into a virtual environment, $VENV/"
        "$PY" -m venv "$VENV"
    fi
    PY="$VENV/bin/python"
    "$PY" -m pip install -q --upgrade pip
fi

"$PY" -m pip install -q $TORCH_SPEC
# torchcrepe and pesto-pitch declare torchaudio, whose PyPI build is CUDA-only and breaks a CPU torch.
# They use it only to read files; improv reads audio with soundfile, so install them without it.
"$PY" -m pip install -q --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1
# Basic Pitch (a benchmark peer) declares tensorflow; it runs on onnxruntime (the bench extra).
"$PY" -m pip install -q --no-deps basic-pitch==0.4.0
"$PY" -m pip install -q -e ".[test,bench,link]"

if [ -n "$VENV" ]; then
    # `improv` on the PATH without activating anything: a link to the venv's entry point.
    if [ -n "${IMPROV_BIN_DIR:-}" ]; then BIN=$IMPROV_BIN_DIR
    elif [ "$(id -u)" -eq 0 ]; then BIN=/usr/local/bin; else BIN="$HOME/.local/bin"; fi
    mkdir -p "$BIN"
    ln -sf "$(pwd)/$VENV/bin/improv" "$BIN/improv"
    case ":$PATH:" in
        *":$BIN:"*) ;;
        *) echo "setup: add $BIN to your PATH (e.g. in ~/.profile) for the improv command" >&2 ;;
    esac
    echo "setup: done, in $VENV/; try: improv --help; the tests: $VENV/bin/python -m pytest -q"
else
    echo "setup: done; try: improv --help"
fi
