# eventflow: two commands do all of the set-up.
#   make study   installs everything and runs every notebook (PROFILE=quick by default, PROFILE=full on a GPU)
#   make test    installs everything and runs ruff, pytest and the notebooks under nbval
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= quick
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))
export EVENTFLOW_SHARED ?= $(abspath ../shared)
export MPLBACKEND ?= Agg

.PHONY: help install study test lint pytest nbval lab lif-op browser-deps bench clean

help:
	@echo "make study [PROFILE=quick|full]  install, then run every notebook into reports/ (figures into figures/)"
	@echo "make test                        install, then ruff, pytest and nbval on the notebooks"
	@echo "make lab                         open JupyterLab on notebooks/"
	@echo "make lif-op                      build the C++ LIF operator (cached under build/)"
	@echo "make bench                       run the benchmarks in benchmarks/"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[study,dev,aedat,nir]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# The C++ LIF operator; torch.utils.cpp_extension caches the build under build/lif_op.
lif-op: $(STAMP)
	$(PY) -m eventflow.lif_op --build

study: $(STAMP)
	@mkdir -p reports figures
	@for nb in $(NOTEBOOKS); do \
		echo "== $$nb (profile=$(PROFILE))"; \
		$(BIN)/papermill --cwd notebooks --kernel python3 -p profile $(PROFILE) \
			"$$nb" "reports/$$(basename $$nb)" || exit 1; \
	done
	@echo "Executed notebooks are in reports/, figures in figures/."

lint: $(STAMP)
	$(BIN)/ruff check eventflow tests benchmarks notebooks

pytest: $(STAMP) browser-deps
	$(BIN)/pytest -n 2 --dist loadgroup tests

nbval: $(STAMP)
	$(BIN)/pytest --nbval-lax -p no:xdist -p no:randomly $(NOTEBOOKS)

test: lint pytest nbval

# Headless Chromium and playwright-core for the widget test in a real browser.
# Installs what it can; the browser test skips with a clear message where Chromium cannot be had.
browser-deps:
	@bash tests/browser/install.sh || echo "browser-deps: Chromium could not be installed; the browser test will skip"

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf build reports .pytest_cache .ruff_cache
