# Two commands for a fresh machine (Python 3.11 + pip): `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint bench venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

## Train a small spiking classifier end to end, print accuracy, write plots to out/.
demo: $(VENV)/.installed
	$(PY) -m snnx.demo --out out

## Run the test suite (including the notebooks).
test: $(VENV)/.installed
	$(PY) -m pytest -q -n 2 --dist loadgroup tests

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check snnx tests bench

## Benchmarks against hand-written JAX and the peer libraries (sets up its own environment).
bench:
	$(PYTHON) bench/run.py

clean:
	rm -rf $(VENV) out .pytest_cache
