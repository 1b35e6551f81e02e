# The two commands a new user needs: `make dev` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test lint typecheck check clean histories bench chaos schemas fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make dev: install if needed, then run the whole local stack until Ctrl-C
dev: $(STAMP)
	$(BIN)/revsync dev

## make test: install or update, then run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

## make histories: re-record the replay tests' workflow histories (read docs/quote-to-cash.md first)
histories: $(STAMP)
	$(BIN)/python -m tests.histories.record

## make schemas: regenerate schemas/ (event, webhook and OpenAPI contracts) from the models
schemas: $(STAMP)
	$(BIN)/revsync schemas

## make bench: every benchmark in bench/; prints figures, writes bench/results/*.json
bench: $(STAMP)
	$(BIN)/python -m bench.run_all

## make chaos: the full chaos run (300 quotes, workers and the server killed mid-saga);
## more options in CHAOS_ARGS, e.g. make chaos CHAOS_ARGS="--seed random --kills 4"
CHAOS_ARGS ?=
chaos: $(STAMP)
	$(BIN)/python -m chaos.run --quotes 300 $(CHAOS_ARGS)

## make fuzz: the long contract fuzz of the gateway (Schemathesis, 10,000 cases, real Temporal);
## prints the counts, exits 1 on any failure. make test runs a bounded one (tests/fuzz).
FUZZ_CASES ?= 10000
FUZZ_SEED ?= 1
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz.run --cases $(FUZZ_CASES) --seed $(FUZZ_SEED)

## make check: everything CI runs
check: lint typecheck test

clean:
	rm -rf $(VENV) .revsync .pytest_cache .mypy_cache .ruff_cache
