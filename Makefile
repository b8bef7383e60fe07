# Portrait: `make demo` and `make test` each set everything up on a fresh machine
# (Python 3.11 and Java 17) and then run.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q

.PHONY: demo test setup setup-test clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: setup.py | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed
	$(PIP) install -e ".[test]"
	command -v chromium >/dev/null || $(MAKE) chromium
	touch $@

# Debian's chromium renders the HTML report headlessly in tests/test_notebook_and_report.py.
chromium:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium); \
	else echo "the report test needs Debian's chromium: sudo apt-get install chromium" >&2; fi

setup: $(VENV)/.installed
setup-test: $(VENV)/.installed-test

demo: setup
	$(BIN)/portrait demo

test: setup-test
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=40

clean:
	rm -rf $(VENV) warehouse spark-warehouse .pytest_cache mlruns .portrait/checkpoints portrait-report.html
