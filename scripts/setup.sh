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
# The optional extra torchvision (for its model definitions; the tests use it): the release made
# for the installed torch (torch 2.N pairs with torchvision 0.(N+15): 2.13 -> 0.28), installed
# without dependencies, since its pin on one torch build would otherwise replace the CPU torch.
TORCH_MINOR=$(.venv/bin/python -c "import torch; print(torch.__version__.split('.')[1])")
.venv/bin/python -m pip install -q --no-deps "torchvision==${TORCHVISION_VERSION:-0.$((TORCH_MINOR + 15)).*}"
.venv/bin/python -c "import autocompress, torch, optuna, ray, onnxruntime; print('environment ready: torch', torch.__version__)"
.venv/bin/python -c "from autocompress.models.torchvision_zoo import classifier_names as c; \
print('torchvision models:', len(c()), 'classifiers')"
