# cnnbench: `make bench` runs the default benchmark, `make test` the tests.
# Both create .venv and install the project on first use (and when pyproject.toml changes);
# the tests also install every optional extra they exercise (Ray, MLflow, TensorBoard).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BENCH_STAMP := $(VENV)/.installed-bench
TEST_STAMP := $(VENV)/.installed-test
ARGS ?=

.PHONY: bench test perf setup clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(BENCH_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -c constraints.txt -e .
	touch $@

$(TEST_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,numba,ray,mlflow,tensorboard]'
	touch $@

setup: $(TEST_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench $(ARGS)

test: $(TEST_STAMP)
	$(PY) -m pytest $(ARGS)

perf: $(BENCH_STAMP)
	$(PY) -m bench perf $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
