# Two set-up commands on a fresh machine: `make run` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install run demo test lint bench docs clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install        ## the whole flow on the embedded default (SQLite + files under ./var)
	$(BIN)/cwn demo

demo: run

lint: install       ## ruff and mypy, clean
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint          ## every test, on SQLite and on the local PostgreSQL
	$(BIN)/python -m cwn.events.docs --check docs/data-format.md
	$(BIN)/pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: install      ## ingest/attribution, notify and unsolicited throughput at national scale
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/notify_bench.py
	$(BIN)/python bench/unsolicited_bench.py
	$(BIN)/python bench/api_bench.py

docs: install       ## regenerate docs generated from code
	$(BIN)/python -m cwn.events.docs --write docs/data-format.md

clean:
	rm -rf $(VENV) var bench/out .pytest_cache .mypy_cache .ruff_cache
