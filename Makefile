# Two entry points, both self-contained on a fresh machine with only Python 3.11+:
#   make report   simulate every built-in scenario and write reports/index.md
#   make test     run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the compiled serving engine (setup.py): rebuilt when its sources change
NATIVE := sim/serving/native.json

.PHONY: report test lint bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

$(NATIVE): $(wildcard sim/serving/lean.p* sim/serving/decoderun.p*) | $(STAMP)
	$(BIN)/pip install --quiet --no-deps -e .

report: $(STAMP) $(NATIVE)
	$(BIN)/clustersim report

test: $(STAMP) $(NATIVE)
	$(BIN)/ruff check sim hardware scenarios tests benchmarks
	$(BIN)/python -m pytest

bench: $(STAMP) $(NATIVE)
	for b in benchmarks/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info sim/serving/*.so sim/serving/*.c $(NATIVE)
