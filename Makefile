# stemsweep: `make demo` runs the main job on the simulator, `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install test wheel-smoke configs demo bench lint clean

install: $(STAMP)

# Re-install when pyproject.toml changes; create the venv when missing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest -q

# Build the wheel, install it into fresh venvs in a temporary folder and use it from there.
wheel-smoke: install
	$(BIN)/python scripts/wheel_smoke.py

# configs/ holds copies of the catalogue and the simulator profiles that the package ships
# (and reads); refresh them after editing the originals. A test checks that they agree.
configs:
	rm -f configs/models.yaml configs/simulator/*.yaml
	mkdir -p configs/simulator
	for source in orchestrator/models.yaml orchestrator/simulator/profiles/*.yaml; do \
	  case $$source in \
	    */profiles/*) copy=configs/simulator/$${source##*/} ;; \
	    *) copy=configs/$${source##*/} ;; \
	  esac; \
	  printf '# A copy of %s, the one stemsweep reads:\n# edit that one, then run `make configs`.\n' \
	    "$$source" | cat - "$$source" > "$$copy"; \
	done

# The demo, then songs from files: three synthesized songs written to out/songs-demo-music/,
# priced, then made into projects and separated (jobs/songs-demo.yaml).
demo: install
	$(BIN)/stemsweep run jobs/demo.yaml
	$(BIN)/stemsweep report out/demo
	$(BIN)/python scripts/demo_songs.py out/songs-demo-music
	$(BIN)/stemsweep plan jobs/songs-demo.yaml --quote
	$(BIN)/stemsweep run jobs/songs-demo.yaml

bench: install
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check orchestrator tests scripts
	$(BIN)/mypy orchestrator

clean:
	rm -rf out .pytest_cache
