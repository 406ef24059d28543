# Every target bootstraps .venv on a fresh machine first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench sample-data clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shadowdiff run --input sample_data/envoy --out out/demo

lint: $(STAMP)
	$(BIN)/ruff check shadowdiff tests benchmarks sample_data
	$(BIN)/ruff format --check shadowdiff tests benchmarks sample_data

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

sample-data: $(STAMP)
	$(BIN)/python sample_data/generate.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
