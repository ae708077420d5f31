#!/usr/bin/env bash
# Set up .venv with everything autocompress needs. Safe to run again.
# torch is pinned to the CPU build first so that resolving the other dependencies
# never pulls a multi-GB CUDA build onto a machine without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev]"
.venv/bin/python -c "import autocompress, torch, optuna, ray, onnxruntime; print('environment ready: torch', torch.__version__)"
