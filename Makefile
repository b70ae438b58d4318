# Every target creates and uses the project virtualenv by itself: a fresh machine needs only
# Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml setup.py | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
# checkov (the security scanner) pins an older boto3: it gets a virtualenv of its own, beside
# .venv, where ccstate finds it. Installed in parallel with the project (see `install`).
CHECKOV_VENV  := .venv-checkov
CHECKOV_SPEC := checkov>=3.2,<4
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell echo '$(CHECKOV_SPEC)' | cksum | cut -d' ' -f1)

.PHONY: help install scanner test lint format bench bench-docs demo serve sandbox clean

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

$(CHECKOV_STAMP):
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet '$(CHECKOV_SPEC)'
	@rm -f $(CHECKOV_VENV)/.installed-*
	@touch $@

# Both virtualenvs at once: checkov's install is mostly waiting on downloads.
install:
	@$(MAKE) --no-print-directory -j2 $(STAMP) $(CHECKOV_STAMP)

scanner: $(CHECKOV_STAMP)

# CCSTATE_REQUIRE_CHECKOV: the tests that run the real checkov fail instead of skipping.
test: install
	CCSTATE_REQUIRE_CHECKOV=1 $(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

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

demo: install
	$(BIN)/python -m ccstate.demo

serve: install
	$(BIN)/ccstate serve --sandbox

sandbox: $(STAMP)
	$(BIN)/ccstate sandbox

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .ruff_cache .hypothesis .bench build *.egg-info
