# Two commands for a new user: `make run` (the hub on its embedded defaults) and `make test`.
# Each installs what it needs: a virtual environment with the project, and the Kafka jars
# (fetched by Maven from Maven Central into .hub/ on first use).

VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run serve test lint format install kafka-stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run every processor and the API in one process, on a local Kafka the hub starts itself,
## with the Northshire demo families loaded through the agencies' adapters (`hub demo`).
run: install
	$(BIN)/hub demo --host $(HOST) --port $(PORT)

## The same hub with nothing loaded.
serve: install
	$(BIN)/hub serve --host $(HOST) --port $(PORT)

## The whole test suite: unit, integration and end-to-end, against the real broker and
## SQLite plus PostgreSQL (a throwaway cluster from Debian's postgresql package, if installed).
test: install
	@url=$$(scripts/postgres.sh start 2>/dev/null || true); \
	if [ -z "$$url" ]; then echo "PostgreSQL binaries not found: PostgreSQL variants will be skipped (apt-get install postgresql)"; fi; \
	HUB_TEST_POSTGRES_URL="$$url" $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

kafka-stop: install
	$(BIN)/hub kafka stop

clean:
	-scripts/postgres.sh stop
	rm -rf $(VENV) .hub .pytest_cache .ruff_cache
