# RMC Dialler: the commands a developer and CI use. See README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test lint format bench clean

# Reproducible install: Python packages pinned by constraints.txt, front-end libraries by
# package-lock.json (served by the app from node_modules, never committed).
install: $(STAMP) node_modules/.installed
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

## Run the whole product locally: Temporal dev server, databases, demo data, web app.
dev: install
	$(BIN)/dialler dev

## Run every test (needs PostgreSQL, MariaDB and Redis; Temporal is started by the tests).
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .dev .pytest_cache .mypy_cache .ruff_cache
