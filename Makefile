# Attune: `make demo` and `make test` each set up .venv themselves (python3 and make only).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: demo test lint format install dev bench-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(PIP) -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.core

install: $(VENV)/.core
dev: $(VENV)/.dev

demo: $(VENV)/.core ## sample data in, model trained, served on http://$(HOST):$(PORT)
	$(BIN)/attune demo --sample data/ml-latest-small --host $(HOST) --port $(PORT)

test: $(VENV)/.dev ## lint, then every test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# LightFM, a peer in benchmarks/accuracy.py, ships only a source archive that no longer
# builds in pip's isolated build: build its wheel in a throwaway environment instead
bench-deps: $(VENV)/.dev ## peers the accuracy benchmark compares beyond the core ones
	$(PYTHON) -m venv $(VENV)/lightfm-build
	$(VENV)/lightfm-build/bin/python -m pip install --quiet 'setuptools<70' wheel cython numpy scipy
	$(VENV)/lightfm-build/bin/python -m pip wheel --quiet --no-build-isolation --no-deps \
		lightfm==1.17 -w $(VENV)/wheels
	$(PIP) $(VENV)/wheels/lightfm-1.17-*.whl
	rm -rf $(VENV)/lightfm-build

lint: $(VENV)/.dev
	$(BIN)/ruff check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) attune-data .pytest_cache .ruff_cache
