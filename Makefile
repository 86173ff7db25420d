# Two commands on a fresh machine: `make run` and `make test`.
# Each creates .venv if it is missing and installs what it needs into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: run simulate test lint typecheck bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# One stamp per extra set, so `make run` stays lean and `make test` adds the test tools.
$(VENV)/.installed-run: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[sim]'
	touch $@

$(VENV)/.installed-test: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed-dev: $(PY) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed-run
	$(PY) run.py $(ARGS)

simulate: $(VENV)/.installed-run
	$(PY) run.py --simulate $(ARGS)

test: $(VENV)/.installed-test
	$(PY) -m pytest $(ARGS)

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy

# `make bench` (full, < 10 min), `make bench QUICK=1` (< 1 min); ARGS go to `python -m bench`,
# e.g. ARGS="--json-out report.json" or ARGS="--only api_throughput".
bench: $(VENV)/.installed-test
	@$(PY) -m bench $(if $(filter 1 yes true,$(QUICK)),--quick,) $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
