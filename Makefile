# RMC Dialler: the commands a developer and CI use. See README.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install dev test lint format bench clean

# Reproducible install: every package pinned by constraints.txt.
install: $(STAMP)
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

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
