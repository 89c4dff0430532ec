# crisiswatch: `make demo` runs the pipeline, `make test` proves it. Both set up first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-fast lint bench bench-detector eval-detector soak clean

setup: $(STAMP)

# torch goes in first, pinned, so no resolver ever pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[model,local,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/crisiswatch demo

test: setup
	$(BIN)/pytest

test-fast: setup
	$(BIN)/pytest -m "not pipeline"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python -m benchmarks.classifier

bench-detector: setup
	$(BIN)/python -m benchmarks.detector

# Ten minutes through all three services on the embedded broker (MINUTES=1 for a quick look).
soak: setup
	$(BIN)/python -m benchmarks.soak --minutes $(or $(MINUTES),10) --rate $(or $(RATE),40)

eval-detector: setup
	$(BIN)/crisiswatch eval-detector --nab ../shared/data/nab

clean:
	rm -rf $(VENV) .crisiswatch runs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
