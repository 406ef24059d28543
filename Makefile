# Every target bootstraps .venv on a fresh machine first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench sample-data clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_PRIMARY := sample_data/envoy/primary/istio_text.log
DEMO_MIRROR := sample_data/envoy/mirror/istio_text.log

demo: $(STAMP)
	$(BIN)/shadowdiff run --primary $(DEMO_PRIMARY) --mirror $(DEMO_MIRROR) --out out/demo
	$(BIN)/shadowdiff sql out/demo "SELECT endpoint, primary_status, mirror_status, count(*) AS n \
	    FROM pairs WHERE outcome = 'diverged' GROUP BY ALL ORDER BY n DESC"


lint: $(STAMP)
	$(BIN)/ruff check shadowdiff tests benchmarks sample_data
	$(BIN)/ruff format --check shadowdiff tests benchmarks sample_data

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# Debian's Chromium, for the report's browser test (tests/integration/test_report_browser.py).
system-deps:
	command -v chromium || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: system-deps lint typecheck unit

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

sample-data: $(STAMP)
	$(BIN)/python sample_data/generate.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
