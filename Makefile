# The only commands a contributor needs. `make run` and `make test` are the README's quick start.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint fix typecheck bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## serve on ./dingbox-data/dingbox.db with the demo org
	$(BIN)/dingbox serve $(ARGS)

test: $(STAMP)  ## the whole suite, against real servers
	$(BIN)/pytest -n auto --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)  ## style, types, and the layers of docs/architecture.md (tests/test_layers.py)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy
	$(BIN)/pytest -q tests/test_layers.py

fix: $(STAMP)
	$(BIN)/ruff check --fix src tests bench scripts
	$(BIN)/ruff format src tests bench scripts

soak: $(STAMP)  ## the fuzz tests with many more examples (FUZZ_EXAMPLES per test, default 5000)
	DINGBOX_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),5000) $(BIN)/pytest -p no:xdist -s tests/test_fuzz.py $(PYTEST_ARGS)

bench: $(STAMP)  ## benchmarks with ratios against references measured in the same run
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) dingbox-data .pytest_cache .mypy_cache .ruff_cache
