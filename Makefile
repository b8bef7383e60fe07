# Portrait: `make demo` and `make test` each set everything up on a fresh machine
# (Python 3.11 and Java 17) and then run.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q

.PHONY: demo test setup setup-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: setup.py | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed
	$(PIP) install -e ".[test]"
	touch $@

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

demo: setup
	$(BIN)/portrait demo

test: setup-test
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) warehouse spark-warehouse .pytest_cache
