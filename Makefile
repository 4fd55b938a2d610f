# Two commands for a fresh clone:  make repro  (set up, run the pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m stages.NAME` through the shell: put the venv first.
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test lint format benchmark benchmark-quick clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

repro: setup
	dvc repro

test: setup lint
	python -m pytest

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
