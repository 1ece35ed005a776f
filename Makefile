# Every target creates .venv itself; PYTHON picks the interpreter used to make it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=
# pytest-xdist workers for `make test`: most tests wait on processes, sockets and browsers, not on CPU.
TEST_WORKERS ?= 4

.PHONY: run test bench lint install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

run: install
	$(BIN)/return-router serve $(ARGS)

test: install-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

bench: install-test
	$(BIN)/python -m tests.bench $(ARGS)

lint: install-test
	$(BIN)/ruff check router well_known tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
