# stemsweep: `make demo` runs the main job on the simulator, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install test demo bench lint clean

install: $(STAMP)

# Re-install when pyproject.toml changes; create the venv when missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/stemsweep run jobs/demo.yaml
	$(BIN)/stemsweep report out/demo

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check orchestrator tests
	$(BIN)/mypy orchestrator

clean:
	rm -rf out .pytest_cache
