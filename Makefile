# The two quick-start commands are `make plan` and `make test`; both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: plan test lint typecheck unit bench mutate system-deps clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

plan: $(STAMP)
	$(VENV)/bin/fleet plan --stack prod

system-deps:
	bash scripts/system-deps

# lint-imports checks the layer contracts of [tool.importlinter] (README, "Code map") on this checkout
# (PYTHONPATH), whichever checkout the venv's editable install points at.
lint: $(STAMP)
	$(VENV)/bin/ruff check fleet_sdk tests bench stacks __main__.py
	$(VENV)/bin/ruff format --check fleet_sdk tests bench stacks __main__.py
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports --no-logo --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy fleet_sdk

# Two workers (pytest-xdist): most tests wait on ssh, nix and subprocesses, so the suite runs in
# about three quarters of the time on two cores. Tests must not depend on running alone.
unit: $(STAMP) system-deps
	$(PY) -m pytest -q -n 2

test: lint typecheck unit

bench: $(STAMP) system-deps
	$(PY) -m pytest -q -m bench -s

# Mutation testing of the core with mutmut ([tool.mutmut] in pyproject.toml), not part of `make test`:
# a fresh run in mutants/, then the score per module (scripts/mutation_score.py). The tests run from
# mutants/tests/, so FLEET_SHARED tells them where the shared fixtures folder (../shared) is.
# The whole core is more than an hour on two cores: a fixed MUTATE_SAMPLE percent of each module's
# mutants is checked (scripts/mutation_sample.py; MUTATE_SAMPLE=100 checks all of them).
FLEET_SHARED ?= $(abspath $(CURDIR)/../shared)
MUTATE_SAMPLE ?= 10
MUTATE_SEED ?= 1
mutate: $(STAMP) system-deps
	rm -rf mutants && mkdir mutants
	$(PY) scripts/mutation_sample.py $(MUTATE_SAMPLE) --seed $(MUTATE_SEED) > mutants/sample.txt
	FLEET_SHARED=$(FLEET_SHARED) $(VENV)/bin/mutmut run --max-children 2 $$(cat mutants/sample.txt)
	$(PY) scripts/mutation_score.py --fail-under 85

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
