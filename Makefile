# Two commands matter: `make run` starts Argus, `make test` runs lint (ruff, mypy) and the test suite.
# Both create .venv and install the locked dependencies on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install console run test lint typecheck format bench protos lock

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The web console: npm packages from its lock file, protobuf code generated from protos/, built into dist/ (which the
# gateway serves); rebuilt when a source, a proto or the lock changes.
CONSOLE := services/gateway/console
CONSOLE_SOURCES := $(CONSOLE)/package-lock.json $(CONSOLE)/index.html $(CONSOLE)/vite.config.ts $(CONSOLE)/tsconfig.json \
	$(shell find $(CONSOLE)/src $(CONSOLE)/scripts -type f -not -path '*/gen/*' 2>/dev/null) $(wildcard protos/argus/*/v1/*.proto)
$(CONSOLE)/dist/index.html: $(VENV)/.installed $(CONSOLE_SOURCES)
	cd $(CONSOLE) && npm ci --no-audit --no-fund --loglevel=error && PYTHON=$(abspath $(BIN))/python npm run build

console: $(CONSOLE)/dist/index.html

install: $(VENV)/.installed $(CONSOLE)/dist/index.html

run: install
	$(BIN)/argus up

lint: install typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy finds a package by its folder's name, and the `argus` package is spread over shared/ and services/: it checks
# a tree of links laid out as the package is, so its messages name modules (argus/services/facedb/...).
TYPECHECK_TREE := build/typecheck
typecheck: install
	rm -rf $(TYPECHECK_TREE) && mkdir -p $(TYPECHECK_TREE)/argus
	for entry in shared/*; do ln -s ../../../$$entry $(TYPECHECK_TREE)/argus/; done
	ln -s ../../../services $(TYPECHECK_TREE)/argus/services
	cd $(TYPECHECK_TREE) && ../../$(BIN)/mypy --config-file ../../pyproject.toml -p argus

test: lint
	$(BIN)/pytest

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/detector_bench.py
	$(BIN)/python bench/embedder_bench.py
	$(BIN)/python bench/facedb_bench.py
	$(BIN)/python bench/jobs_bench.py
	$(BIN)/python bench/overload_bench.py

protos: install
	$(BIN)/python -m argus.protogen
	$(BIN)/python -m argus.services.gateway.openapi

lock: install
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra plots --python-version 3.11 -o requirements.lock
