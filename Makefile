# cnnbench: `make bench` runs the default benchmark, `make test` the tests.
# Both create .venv and install the project on first use (and when pyproject.toml changes).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: bench test perf setup clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,ray,mlflow,tensorboard]'
	touch $(STAMP)

setup: $(STAMP)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

perf: $(STAMP)
	$(PY) -m bench perf $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
