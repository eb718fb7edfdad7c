# mmops: `make demo` runs the nightly pipeline on real data; `make test` runs the test suite.
# Both bootstrap .venv from the committed uv.lock (installing uv with pip if it is missing).

SHELL := /bin/bash
PY_VERSION ?= 3.11
export UV_PYTHON_DOWNLOADS := never
# byte-compile at install: these machines set PYTHONDONTWRITEBYTECODE=1, so without it every process
# compiles Prefect, MLflow and TensorFlow from source, every time (and Prefect's first start times out)
export UV_COMPILE_BYTECODE := 1
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
VENV := .venv
BIN := $(VENV)/bin
MMOPS_HOME ?= $(CURDIR)
export MMOPS_HOME

.PHONY: install browser postgres demo test lint flakes bench repro variant-changed

# GPU=1 (on any target that installs: make install GPU=1, make test GPU=1): the GPU variant, the `gpu`
# dependency group in place of `cpu`: onnxruntime-gpu (CUDA 13, NVIDIA driver 580+) for the service
# and TensorFlow's CUDA libraries for LSTM training, ~4 GB more. Without it, the CPU variant; the
# variant installed is kept in $(VENV)/.mmops-variant, so switching re-syncs.
VARIANT := $(if $(filter 1,$(GPU)),gpu,cpu)
SYNC_GROUPS := $(if $(filter gpu,$(VARIANT)),--no-group cpu --group gpu,)
INSTALLED_VARIANT := $(or $(shell cat $(VENV)/.mmops-variant 2>/dev/null),cpu)

$(BIN)/mmops: pyproject.toml uv.lock $(if $(filter $(VARIANT),$(INSTALLED_VARIANT)),,variant-changed)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	@echo "Installing $(VENV) ($(VARIANT) variant) from uv.lock and byte-compiling it (about a minute the first time)"
	@$(UV) sync --frozen --quiet --python $(PY_VERSION) $(SYNC_GROUPS)
	@echo $(VARIANT) > $(VENV)/.mmops-variant
	@touch $@

install: $(BIN)/mmops

demo:
	@start=$$(date +%s); $(MAKE) --no-print-directory install && $(BIN)/python -m flows.demo; rc=$$?; \
	echo "make demo: $$(( $$(date +%s) - start )) s in all, install included (exit $$rc)"; exit $$rc

# The dashboard's browser test drives Debian's chromium through chromium-driver (Selenium never
# downloads one). Installed here when missing and root; otherwise the test skips (fails under CI=true).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing chromium and chromium-driver for the dashboard's browser test (apt-get, a minute or two)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; } >/tmp/mmops-apt-chromium.log 2>&1 \
	    || echo "make browser: apt-get could not install chromium chromium-driver (see /tmp/mmops-apt-chromium.log)"; \
	else \
	  echo "make browser: /usr/bin/chromium or /usr/bin/chromedriver is missing and this is not root with apt-get:"; \
	  echo "  install them (sudo apt-get install chromium chromium-driver); without them the browser test skips, and fails under CI=true"; \
	fi

# The scale-out tests start a throwaway PostgreSQL of their own (initdb + pg_ctl from Debian's
# postgresql, run as the postgres user when the tests run as root; docs/scale-out.md). Installed here
# when missing and root; otherwise those tests skip (fail under CI=true).
postgres:
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing postgresql for the scale-out tests (apt-get, a minute)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get update -qq && apt-get install -y -qq postgresql; } >/tmp/mmops-apt-postgresql.log 2>&1 \
	    || echo "make postgres: apt-get could not install postgresql (see /tmp/mmops-apt-postgresql.log)"; \
	else \
	  echo "make postgres: PostgreSQL (initdb, pg_ctl) is missing and this is not root with apt-get:"; \
	  echo "  install it (sudo apt-get install postgresql); without it the scale-out tests skip, and fail under CI=true"; \
	fi

test: install browser postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy bench  # the benchmarks too (scripts, not a package: checked on their own)
	$(BIN)/pytest -q

# The flake hunt: the model and numeric tests in shuffled orders with new seeds, on 1 and 2 threads.
FLAKE_RUNS ?= 10
FLAKE_TESTS ?= tests/unit/training tests/unit/trading
flakes: install
	@set -o pipefail; for threads in 1 2; do for i in $$(seq 1 $(FLAKE_RUNS)); do \
	  OMP_NUM_THREADS=$$threads $(BIN)/pytest -q -o addopts="-rf --strict-markers" -p randomly \
	    -p no:cacheprovider --randomly-seed=$$((threads * 1000 + i)) $(FLAKE_TESTS) | grep -E "^FAILED|passed|failed" \
	    | sed "s/^/threads=$$threads run=$$i: /" || exit 1; done; done

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/mypy bench

bench: install
	$(BIN)/python bench/features.py --json
	$(BIN)/python bench/backtest.py --json
	$(BIN)/python bench/inference.py --json

# The DVC pipeline from data/raw: ingest -> validate, features -> tune (reads the features file,
# registers one version per family, declared in reports/tune/<family>/registered.json); `dvc dag` draws it.
repro: install
	@test -d data/raw || $(BIN)/dvc pull data.dvc || MMOPS_HOME=. $(BIN)/mmops data seed
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro
