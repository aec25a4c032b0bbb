# Two commands do everything on a fresh machine:
#   make demo   - set up .venv, write the sample data, run the whole workflow on it
#   make test   - set up .venv, run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.affectflow-installed
PROFILE ?= profiles/local
TARGET ?= all

.PHONY: setup demo test bench clean-demo

setup: $(STAMP)

# torch and torchvision are pinned together (with everything else) in the constraints file.
$(STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"affectflow needs Python >= 3.11 (the pinned snakemake, numpy, pandas and torch do): run make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements/constraints.txt -e '.[ml,dev]'
	touch $@

demo: setup
	$(BIN)/affectflow sample demo/data
	$(BIN)/affectflow tiny-models demo/models
	$(BIN)/snakemake $(TARGET) --profile $(PROFILE) --configfile demo/config.yaml

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python benchmarks/run_all.py

clean-demo:
	rm -rf demo/data demo/results demo/logs
