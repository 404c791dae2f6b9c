# make demo    base, LoRA, Astra as released (largest) and as the theorem states (smallest) on math, paired tests (CPU, <5 min)
# make test    the test suite (offline, tiny models; ~15 min on 2 cores)
# make test-exhaustive  larger settings of invariants the suite checks (Astra parity at N = 64 x 128, ~2 min)
# make tables  regenerate results/tables (next to the paper's numbers) and results/figures from run records
# make study   run what is missing of a study (STUDY=study_sst2_smollm2: SST-2, 7 inits x 6 rates, 3 seeds at the best;
#              57 runs, 2.4 h on 2 cores, resumable); make tables then shows it (docs/findings.md)
# make report  one self-contained HTML page (tables, figures, cost, fidelity options): results/report.html
# make bench   timing / memory figures for docs/benchmarks.md (calibration, inits and steps, scoring: padded vs regroup)
# make gpu-check  the GPU figures of issue 20 in <= 8 min (scripts/gpu_check.py; tiny shapes on a CPU)
# make bench-load  a training step and a scoring batch, idle and beside one busy process, per CPU thread setting
#                  (scripts/bench_load.py, ~5 min; --quick < 1 min): does a run collapse on a shared CPU?
VENV ?= .venv
PY := $(VENV)/bin/python
# Nothing here may wait on a hub: the real loading code stays, offline mode makes it fail fast.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-exhaustive tables report study bench bench-load gpu-check clean-runs methods

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt scripts/install.sh
	bash scripts/install.sh

demo: install
	$(PY) scripts/demo.py

# Two pytest-xdist workers (the suite's many Python-bound parts - imports, compositions, subprocess start-up - use
# both cores); the DDP/ZeRO tests share one worker (--dist loadgroup). TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test-exhaustive: install
	$(PY) -m pytest -q -m exhaustive

tables: install
	$(PY) -m astra_repro.tables

report: install
	$(PY) -m astra_repro.report

STUDY ?= study_sst2_smollm2
study: install
	$(PY) -m astra_repro.sweep $(STUDY) --local

methods: install
	$(PY) -m astra_repro.methods

bench: install
	$(PY) scripts/bench_calibration.py --compare
	$(PY) scripts/bench.py
	$(PY) scripts/bench_scoring.py
	$(PY) scripts/bench_decode_floor.py

bench-load: install
	$(PY) scripts/bench_load.py

clean-runs:
	rm -rf results/runs/* results/tables/*.md results/tables/*.csv results/tables/*.tex results/report.html

# The GPU figures of issue 20 (scripts/gpu_check.py: 7B-shape inits, training steps, GSM8K generation paths) on this
# machine's GPU; without one, every stage with tiny shapes on the CPU. On the lent GPU machine (no network, no .venv)
# run the script itself as scripts/gpu_wheels.sh says.
gpu-check: install
	@if $(PY) -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then \
		$(PY) scripts/gpu_check.py; else echo "no GPU here: tiny shapes on the CPU"; $(PY) scripts/gpu_check.py --tiny; fi
