# mmops: `make demo` runs the nightly pipeline on real data; `make test` runs the test suite.
# Both bootstrap .venv from the committed uv.lock (installing uv with pip if it is missing).

SHELL := /bin/bash
PY_VERSION ?= 3.11
export UV_PYTHON_DOWNLOADS := never
# the temporary Prefect server otherwise logs a failed telemetry call on machines without internet
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
BIN := $(VENV)/bin
MMOPS_HOME ?= $(CURDIR)
export MMOPS_HOME

.PHONY: install demo test lint bench repro

$(BIN)/mmops: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --python $(PY_VERSION)
	@touch $@

install: $(BIN)/mmops

demo: install
	$(BIN)/python -m flows.demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: install
	$(BIN)/python bench/features.py --json
	$(BIN)/python bench/backtest.py --json
	$(BIN)/python bench/inference.py --json

repro: install  ## the DVC pipeline (ingest -> validate -> features) from data/raw
	@test -d data/raw || $(BIN)/dvc pull data.dvc || MMOPS_HOME=. $(BIN)/mmops data seed
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro
