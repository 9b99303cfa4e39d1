# zerodowntime.rollout developer entry points. `make demo` and `make test` bootstrap everything.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV     := .venv
VENV_MIN := .venv-min
PY       := $(VENV)/bin/python
PY_MIN   := $(VENV_MIN)/bin/python
ANSIBLE_ENV := ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections:$(CURDIR)/.cache/deps \
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false
PYTEST_ARGS ?=

.PHONY: help venv demo test lint sanity units units-min integration integration-min packaging molecule clean docs docs-check

help:
	@echo "make demo    bring up a local fleet (4 hosts behind HAProxy) and roll it v1 -> v2 under load"
	@echo "make test    the whole suite: lint, sanity, unit and integration tests (ansible-core 2.21 and 2.17), packaging"
	@echo "make venv    create .venv / .venv-min, fetch amazon.aws offline, install haproxy if missing"
	@echo "make docs    regenerate docs/reference/ (modules, filters, lookup, callback, role) from the plugins' own docs"

venv:
	@scripts/bootstrap.sh 2> >(grep -v "^WARNING: Location 'file:///opt" >&2)

demo: venv
	$(PY) demo/rollout.py --dir $(CURDIR)/demo/run $(DEMO_ARGS)

test: venv lint sanity units units-min integration integration-min packaging docs-check molecule
	@echo "make test: all passed"

lint: venv
	$(VENV)/bin/ruff check .
	shellcheck scripts/*.sh .ci/run
	$(VENV)/bin/ruff format --check .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH=$(CURDIR)/.cache/collections:$(CURDIR)/.cache/deps $(VENV)/bin/ansible-lint --offline --profile production
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
	@# CHANGELOG.rst is generated from changelogs/changelog.yaml: regenerating it must change nothing.
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/antsibull-changelog generate
	@git diff --quiet -- CHANGELOG.rst || { git diff --stat -- CHANGELOG.rst; echo "CHANGELOG.rst is stale: run antsibull-changelog generate"; exit 1; }

sanity: venv
	@for f in tests/sanity/ignore-*.txt; do [ ! -s "$$f" ] || { echo "sanity ignore file $$f is not empty"; exit 1; }; done
	scripts/ansible-test.sh sanity --requirements

units: venv
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

units-min: venv
	$(PY_MIN) -m pytest tests/unit -q -p no:cacheprovider $(PYTEST_ARGS)

# Integration tests mostly wait on real processes, so they run three at a time (whole files per
# worker: each file's fleets use their own loopback addresses and free ports).
INTEGRATION_ARGS ?= -n 3 --dist loadfile --durations=12
integration: venv
	$(PY) -m pytest tests/integration -q $(INTEGRATION_ARGS) $(PYTEST_ARGS)

# On the oldest ansible-core: every test but those marked latest_only (version-independent ones, such as
# the demo fleet and ansible-builder, and flows whose templating the core rollout tests already cover).
integration-min: venv
	$(PY_MIN) -m pytest tests/integration -q -p no:cacheprovider -m "not latest_only" $(INTEGRATION_ARGS) $(PYTEST_ARGS)

packaging: venv
	scripts/check-packaging.sh

# docs/reference/ is generated from the plugins' DOCUMENTATION/EXAMPLES/RETURN and the role's argument specs.
docs: venv
	$(PY) scripts/gen_reference.py

docs-check: venv
	$(PY) scripts/gen_reference.py --check

# Molecule scenarios (molecule/<name>/ on the shared .config/molecule/config.yml): local processes, no
# containers, the source tree on the collections path. Unless the caller set ANSIBLE_HOME, HOME and
# ANSIBLE_HOME point at a temporary directory (kept, and printed, if a scenario fails).
# The scenarios run side by side (scripts/molecule-all.sh); name some with MOLECULE_SCENARIOS="default aws".
MOLECULE_SCENARIOS ?=
molecule: venv
	@tmp=""; \
	if [ -z "$${ANSIBLE_HOME:-}" ]; then \
	    tmp=$$(mktemp -d /tmp/molecule-home.XXXXXX); export HOME="$$tmp" ANSIBLE_HOME="$$tmp/.ansible"; \
	fi; \
	rc=0; \
	cd $(CURDIR) && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CI=true $(ANSIBLE_ENV) MOLECULE=$(VENV)/bin/molecule \
	    scripts/molecule-all.sh $(MOLECULE_SCENARIOS) </dev/null || rc=$$?; \
	if [ -n "$$tmp" ]; then \
	    if [ "$$rc" -eq 0 ]; then rm -rf "$$tmp"; else echo "molecule failed (rc=$$rc); its HOME is kept in $$tmp"; fi; \
	fi; \
	exit "$$rc"

clean:
	rm -rf .cache/collections build tests/output .pytest_cache .ruff_cache
