# FlashSale developer entry points. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint fmt clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint,bench]'
	touch $(STAMP)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check flashsale tests
	$(BIN)/ruff format --check flashsale tests
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix flashsale tests
	$(BIN)/ruff format flashsale tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: demo
demo: install
	@echo "make demo (a whole simulated sale with a report) is not in this release yet."
	@echo "See README.md, 'Running it', to run the components yourself."
	@exit 1
