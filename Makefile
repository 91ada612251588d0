# ltd-bert: `make demo` and `make test` work as the first command on a fresh clone.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TORCH   := torch==2.13.0
DEMO    ?= demo_work
export LTD_WORKDIR ?= $(DEMO)

.PHONY: install test test-fast demo lint fix bench clean reproduce reproduce-tiny

install: $(STAMP)

# torch first and pinned: the CPU build on local disk (an open range would pull CUDA).
$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]' $(TORCH)
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check ltd_bert tests benchmarks scripts experiments
	$(BIN)/ruff format --check ltd_bert tests benchmarks scripts experiments

fix: $(STAMP)
	$(BIN)/ruff check --fix ltd_bert tests benchmarks scripts experiments
	$(BIN)/ruff format ltd_bert tests benchmarks scripts experiments

demo: $(STAMP)
	bash scripts/demo.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info

reproduce: $(STAMP)
	LTD_WORKDIR=repro_work bash scripts/reproduce.sh

reproduce-tiny: $(STAMP)
	LTD_WORKDIR=repro_work bash scripts/reproduce_tiny.sh
