# The two quick-start commands are `make plan` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: plan test lint typecheck unit bench system-deps clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

plan: $(STAMP)
	$(VENV)/bin/fleet plan --stack prod

system-deps:
	bash scripts/system-deps

lint: $(STAMP)
	$(VENV)/bin/ruff check fleet_sdk tests bench stacks __main__.py
	$(VENV)/bin/ruff format --check fleet_sdk tests bench stacks __main__.py

typecheck: $(STAMP)
	$(VENV)/bin/mypy fleet_sdk

unit: $(STAMP) system-deps
	$(PY) -m pytest -q

test: lint typecheck unit

bench: $(STAMP) system-deps
	$(PY) -m pytest -q -m bench -s

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
