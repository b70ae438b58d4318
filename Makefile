# Every target creates and uses the project virtualenv by itself: a fresh machine needs only
# Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=

.PHONY: help install test lint format bench bench-docs demo serve sandbox clean

help:
	@echo "make demo    install, then run the offline demo"
	@echo "make test    install, then run the whole test suite"
	@echo "make lint    ruff check + format check"
	@echo "make bench   run benchmarks -> .bench/report.json (untracked)"
	@echo "make bench-docs  run benchmarks, update benchmarks/report.json, docs/performance.md"
	@echo "make serve   run the MCP server (stdio) against the offline sandbox"

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,sandbox]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

bench-docs: $(STAMP)
	$(BIN)/python -m benchmarks --update-docs $(BENCH_ARGS)

demo: $(STAMP)
	$(BIN)/python -m ccstate.demo

serve: $(STAMP)
	$(BIN)/ccstate serve --sandbox

sandbox: $(STAMP)
	$(BIN)/ccstate sandbox

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .bench build *.egg-info
