# crisiswatch: `make demo` runs the pipeline, `make test` proves it. Both set up first when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test test-fast lint bench bench-detector bench-alerter eval-detector soak clean

setup: $(STAMP)

# torch goes in first, pinned, so no resolver ever pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[model,local,dev]"
	touch $(STAMP)

demo: setup
	$(BIN)/crisiswatch demo

# Everything, with every generated example the property tests ask for (what CI runs).
test: setup
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest

# The quick loop: the unit tier (no broker, no services), nothing slow, a few dozen examples per property test,
# on every core; the tests that load torch and the models (xdist_group "models") share one worker. Each worker
# imports the project and every test module: bytecode is cached even where the environment turns that off
# (about 2 s a worker), and schemathesis's pytest plugin, which only the pipeline tier uses, is left out.
test-fast: setup
	PYTHONDONTWRITEBYTECODE= HYPOTHESIS_PROFILE=dev $(BIN)/pytest tests/unit -m "not slow" -n auto --dist loadgroup \
		-p no:schemathesis

# Style, then the import layers ([tool.importlinter] in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

bench: setup
	$(BIN)/python -m benchmarks.classifier

bench-detector: setup
	$(BIN)/python -m benchmarks.detector

# The alerter service draining a pre-filled mentions.scored: three workloads, ~6 minutes (SCALE=0.5 halves them).
bench-alerter: setup
	$(BIN)/python -m benchmarks.alerter --scale $(or $(SCALE),1)

# Ten minutes through all three services on the embedded broker (MINUTES=1 for a quick look).
soak: setup
	$(BIN)/python -m benchmarks.soak --minutes $(or $(MINUTES),10) --rate $(or $(RATE),40)

eval-detector: setup
	$(BIN)/crisiswatch eval-detector --nab ../shared/data/nab

clean:
	rm -rf $(VENV) .crisiswatch runs .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
