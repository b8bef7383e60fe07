# Portrait: `make demo` and `make test` each set everything up on a fresh machine
# (Python 3.11 and Java 17) and then run.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip --disable-pip-version-check -q
# uv installs the same pinned packages as pip in less time: it unpacks and compiles in parallel. Bytecode is
# compiled at install, as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine), nothing else would
# write it, and every Spark worker, training process and command would compile torch and the rest from
# source on each import. uv does not read pip's configuration, so pip's find-links (where this machine keeps
# torch's CPU wheel) are passed on.
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null) $(PIP_FIND_LINKS)
INSTALL := $(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python $(addprefix --find-links ,$(sort $(FIND_LINKS)))
# uv keeps every wheel it builds and every archive it unpacks. pyspark comes only as a source distribution, and uv
# builds it again at each setup (about 1.5 GB a build): 66 clean-clone setups filled this machine's disk and failed
# CI's install with "No space left on device". Pruning after each install drops the builds and archives no longer
# referenced (18.8 GiB here) and keeps the current ones, so a setup on a warm cache stays as fast.
PRUNE := $(BIN)/uv cache prune -q

.PHONY: demo test setup setup-test clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(PIP) install uv==0.13.9

$(VENV)/.installed: setup.py | $(BIN)/uv
	$(INSTALL) -e .
	$(PRUNE)
	touch $@

$(VENV)/.installed-test: setup.py $(VENV)/.installed
	$(INSTALL) -e ".[test]"
	$(PRUNE)
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
