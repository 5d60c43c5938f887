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

.PHONY: demo up
demo: install  ## a whole flash sale on throwaway local servers, with a report and a chart
	$(BIN)/flashsale demo $(DEMO_ARGS)

up: install  ## the platform in the foreground, data kept in ./.flashsale
	$(BIN)/flashsale up $(UP_ARGS)
