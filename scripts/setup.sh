#!/usr/bin/env bash
# Set improv up on a fresh Debian/Ubuntu machine: system packages, then Python packages.
# Safe to run again. Uses sudo for apt-get when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="jackd2 libportaudio2 libsndfile1 fluidsynth libfluidsynth3 timgm6mb-soundfont fluid-soundfont-gm aubio-tools sndfile-tools"
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

$PY -m pip install -q $TORCH_SPEC
# torchcrepe and pesto-pitch declare torchaudio, whose PyPI build is CUDA-only and breaks a CPU torch.
# They use it only to read files; improv reads audio with soundfile, so install them without it.
$PY -m pip install -q --no-deps torchcrepe==0.0.24 pesto-pitch==2.0.1
# Basic Pitch (a benchmark peer) declares tensorflow; it runs on onnxruntime (the bench extra).
$PY -m pip install -q --no-deps basic-pitch==0.4.0
$PY -m pip install -q -e ".[test,bench,link]"
echo "setup: done; try: improv --help"
