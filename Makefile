# langchain-vllm: every target does its own set-up (idempotent; a second run reuses it).
#   make demo   - start a local vLLM on the bundled test model, run the seed walkthrough
#   make test   - unit tests, live integration tests (servers started by the suite),
#                 the notebook, and reduced sizes of the load and scale-out tests
.PHONY: all demo serve test tests unit_tests integration_tests notebook_tests lint \
        format typing rig bench load scale_test scale_tests clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.langchain-vllm-dev
PYTEST := $(PY) -m pytest
TEST_FILE ?= tests/integration_tests/

all: test

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --progress-bar off --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet --progress-bar off -e . --group dev --group bench
	@touch $(STAMP)

# The vLLM server environment and the test models, in a cache outside the clone.
rig: $(STAMP)
	$(PY) scripts/setup_rig.py

demo: rig
	$(PY) scripts/demo.py

serve: rig
	$(PY) scripts/serve.py $(KIND)

test tests: unit_tests integration_tests scale_tests

unit_tests: $(STAMP)
	$(PYTEST) tests/unit_tests --disable-socket --allow-unix-socket -q

integration_tests: rig
	$(PYTEST) $(TEST_FILE) -q --timeout 900

# Client overhead against a stub and live throughput, side by side (docs/BENCHMARKS.md).
bench: rig
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# Mixed load against a live server (docs/RELIABILITY.md). Full size: make load N=1000 C=128
N ?= 1000
C ?= 128
load: rig
	$(PY) benchmarks/load.py --requests $(N) --concurrency $(C)

# Replicas behind vllm-router: routing, session affinity, LoRA adapters on every
# replica, failover under load (docs/scaling.md). `make test` runs the reduced size
# (200 requests at concurrency 16 in the failover test); full size here.
SCALE_N ?= 600
SCALE_C ?= 32
scale_test: $(STAMP)
	$(PY) scripts/setup_rig.py --router
	SCALE_REQUESTS=$(SCALE_N) SCALE_CONCURRENCY=$(SCALE_C) \
		$(PYTEST) tests/scale_tests -q --timeout 1800

scale_tests: $(STAMP)
	$(PY) scripts/setup_rig.py --router
	SCALE_REQUESTS=200 SCALE_CONCURRENCY=16 $(PYTEST) tests/scale_tests -q --timeout 1800

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy langchain_vllm tests scripts benchmarks rig.py

typing: $(STAMP)
	$(PY) -m mypy langchain_vllm tests scripts benchmarks rig.py

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
