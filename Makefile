# The two commands a newcomer needs: `make hub` and `make test`. Each one does its own set-up,
# idempotently: a second run re-installs nothing unless pyproject.toml, the constraints or
# package.json changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# pytest-xdist workers; notebooks and hub tests are mostly waiting on kernels and servers.
WORKERS ?= auto

.PHONY: setup hub test test-fast lint lock clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[all,dev]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $@

hub: setup
	PATH="$(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/jupyterhub -f hub_config/jupyterhub_config.py

# ruff (ruff.toml) and the package's allowed imports (.importlinter, drawn in docs/architecture.md).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: setup
	PATH="$(CURDIR)/node_modules/.bin:$(CURDIR)/$(BIN):$$PATH" \
		$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# The quick loop while editing: everything but notebook runs and real servers.
test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# Re-pin every dependency to what is installed now (after changing pyproject.toml).
lock: $(STAMP)
	{ sed -n '1,2p' requirements/constraints.txt; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; \
	} > requirements/constraints.txt.new && mv requirements/constraints.txt.new requirements/constraints.txt

clean:
	rm -rf $(VENV) node_modules .pytest_cache
