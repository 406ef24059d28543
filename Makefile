# Every target bootstraps .venv on a fresh machine first; nothing is installed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench bench-deps sample-data clean system-deps

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The sample pipeline ends with its check, which fails (exit 1) on purpose: v2 of the sample
# API really does answer differently. Any other exit code is an error.
demo: $(STAMP)
	$(BIN)/shadowdiff run pipelines/sample.toml || test $$? -eq 1
	@echo
	@echo "Open the report: out/sample/report.html"

lint: $(STAMP)
	$(BIN)/ruff check shadowdiff tests benchmarks sample_data
	$(BIN)/ruff format --check shadowdiff tests benchmarks sample_data

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# Debian's packages the tests need: Chromium for the report's browser test
# (tests/integration/test_report_browser.py), libpcap for the BPF filters of `shadowdiff
# capture` (scapy compiles them with it; tests/integration/test_capture.py).
SYSTEM_PACKAGES := chromium libpcap0.8
system-deps:
	(command -v chromium && ldconfig -p | grep -q 'libpcap\.so') || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(SYSTEM_PACKAGES))

# The benchmarks' baselines also need tshark (benchmarks/pcap.py).
bench-deps: system-deps
	command -v tshark || \
	  (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y tshark)

test: system-deps lint typecheck unit

# Each benchmark measures shadowdiff beside its baseline in one run and rewrites its own
# section of BENCHMARKS.md. Run them on a quiet machine.
bench: $(STAMP) bench-deps
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/taps.py
	$(BIN)/python benchmarks/pcap.py
	$(BIN)/python benchmarks/body_diff.py
	$(BIN)/python benchmarks/noise.py --write
	$(BIN)/python benchmarks/scale.py

sample-data: $(STAMP)
	$(BIN)/python sample_data/generate.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
