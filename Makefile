# Two commands for a fresh clone:  make repro  (set up, run the pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m stages.NAME` through the shell: put the venv first.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test lint format clean-venv experiments report lock-check benchmark

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

repro: setup
	dvc repro

test: setup lint
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
benchmark: setup
	python benchmarks/queue_vs_sequential.py

lint: setup
	ruff check .
	ruff format --check .

format: setup
	ruff format .
	ruff check --fix .

clean-venv:
	rm -rf $(VENV)
