# Three commands do everything on a fresh machine with Python 3.10+:
#   make demo   - create .venv, install yolact_edu, run the main job
#   make test   - create .venv, install yolact_edu with its test tools, run the tests
#   make lab    - create .venv, install yolact_edu with JupyterLab, open the notebooks
#                 (as root, e.g. in a container: make lab LAB_ARGS=--allow-root)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LAB_ARGS ?=

.PHONY: demo test lint lab clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/yolact-edu demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check yolact_edu tests benchmarks tools
	$(BIN)/lint-imports

$(VENV)/.installed-notebooks: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[notebooks]"
	touch $@ $(VENV)/.installed

lab: $(VENV)/.installed-notebooks
	$(BIN)/jupyter lab $(LAB_ARGS) notebooks/

clean:
	rm -rf $(VENV) outputs
