# make demo    base, LoRA, Astra as released (largest) and as the theorem states (smallest) on math, paired tests (CPU, <5 min)
# make test    the test suite (offline, tiny models)
# make tables  regenerate results/tables (next to the paper's numbers) and results/figures from run records
# make report  one self-contained HTML page (tables, figures, cost, fidelity options): results/report.html
# make bench   timing / memory figures for docs/benchmarks.md
# make bench-load  a training step and a scoring batch, idle and beside one busy process, per CPU thread setting
#                  (scripts/bench_load.py, ~5 min; --quick < 1 min): does a run collapse on a shared CPU?
VENV ?= .venv
PY := $(VENV)/bin/python
# Nothing here may wait on a hub: the real loading code stays, offline mode makes it fail fast.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test tables report bench bench-load clean-runs methods

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints-cpu.txt scripts/install.sh
	bash scripts/install.sh

demo: install
	$(PY) scripts/demo.py

test: install
	$(PY) -m pytest -q

tables: install
	$(PY) -m astra_repro.tables

report: install
	$(PY) -m astra_repro.report

methods: install
	$(PY) -m astra_repro.methods

bench: install
	$(PY) scripts/bench_calibration.py --compare
	$(PY) scripts/bench.py

bench-load: install
	$(PY) scripts/bench_load.py

clean-runs:
	rm -rf results/runs/* results/tables/*.md results/tables/*.csv results/tables/*.tex results/report.html
