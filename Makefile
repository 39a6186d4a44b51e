# langchain-vllm: every target does its own set-up (idempotent; a second run reuses it),
# of only the rig parts it uses (scripts/setup_rig.py --only ...).
#   make demo   - start a local vLLM on the bundled test model, run the seed walkthrough
#                 (prepares the chat model only: no adapter training, no vision model)
#   make test   - unit tests (newest dependencies and their declared floors),
#                 live integration tests (servers started by the suite),
#                 the notebook, a smoke against an older vLLM release (compat_tests),
#                 and reduced sizes of the load and scale-out tests
#   make compat VLLM_VERSION=x.y.z - the smoke against that vLLM release (docs/compat.md)
.PHONY: all demo serve test tests unit_tests unit_tests_floors integration_tests notebook_tests lint \
        format typing rig bench load scale_test scale_tests compat compat_tests clean

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.langchain-vllm-dev
PYTEST := $(PY) -m pytest
TEST_FILE ?= tests/integration_tests/

all: test

# uv installs the dev environment and the rig's (scripts/setup_rig.py: vLLM's in
# about 45 s against pip's 130 s); pip where uv is not found. Bytecode compiled at
# install, as pip does: PYTHONDONTWRITEBYTECODE is set on these machines.
$(STAMP): pyproject.toml
	@began=$$(date +%s); \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	$(PY) -m pip install --quiet --progress-bar off "uv>=0.13" \
		|| echo "uv is not installable here: pip installs everything"; \
	if [ -x $(VENV)/bin/uv ]; then \
		(set -x; $(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) \
			-e . --group dev --group bench) || exit 1; \
	else \
		(set -x; $(PY) -m pip install --quiet --progress-bar off --upgrade "pip>=25.1" \
		&& $(PY) -m pip install --quiet --progress-bar off -e . --group dev --group bench) \
		|| exit 1; \
	fi; \
	echo "[setup] dev environment $(VENV) took $$(( $$(date +%s) - began )) s"
	@touch $(STAMP)

# The vLLM server environment and the test models, in a cache outside the clone.
# `make rig` builds every model; RIG_PARTS narrows it (e.g. make rig RIG_PARTS="chat lora").
RIG_PARTS ?=
rig: $(STAMP)
	$(PY) scripts/setup_rig.py $(if $(strip $(RIG_PARTS)),--only $(RIG_PARTS))

# The walkthrough starts only the rig's chat server.
demo: $(STAMP)
	$(PY) scripts/setup_rig.py --only chat
	$(PY) scripts/demo.py

KIND ?= chat
serve: $(STAMP)
	$(PY) scripts/setup_rig.py --only $(KIND)
	$(PY) scripts/serve.py $(KIND)

# Each part timed; its pytest runs write JUnit files; the summary at the end gives
# every part's total and the 15 slowest tests (scripts/test_report.py).
REPORT := $(PY) scripts/test_report.py
test tests: $(STAMP)
	@rm -rf .test-reports
	$(REPORT) run rig $(MAKE) --no-print-directory rig
	@# every part runs even when an earlier one failed; `summary` fails if any did
	-$(REPORT) run unit $(MAKE) --no-print-directory unit_tests
	-$(REPORT) run unit-floors $(MAKE) --no-print-directory unit_tests_floors
	-$(REPORT) run integration $(MAKE) --no-print-directory integration_tests
	-$(REPORT) run compat $(MAKE) --no-print-directory compat_tests
	-$(REPORT) run scale $(MAKE) --no-print-directory scale_tests
	@$(REPORT) summary

unit_tests: $(STAMP)
	$(PYTEST) tests/unit_tests --disable-socket --allow-unix-socket -q

# The unit suite on every runtime dependency's declared floor (pyproject), in its own
# environment (scripts/floor_env.py); `unit_tests` runs it on the newest versions.
FLOORS_VENV := .venv-floors
unit_tests_floors: $(STAMP)
	$(PY) scripts/floor_env.py $(FLOORS_VENV)
	$(FLOORS_VENV)/bin/python -m pytest tests/unit_tests --disable-socket --allow-unix-socket -q

# Every server kind (the suite and the notebook start them all).
integration_tests: rig
	$(PYTEST) $(TEST_FILE) -q --timeout 900

# The notebook alone: it starts the chat, embeddings, vision and LoRA servers.
notebook_tests: $(STAMP)
	$(PY) scripts/setup_rig.py --only chat embeddings vision lora plain
	$(PYTEST) tests/integration_tests/test_notebook.py -q --timeout 900

# The compat smoke (tests/compat_tests) against the rig's servers on one vLLM release,
# in its own environment (vllm-VERSION-venv in the rig's cache; docs/compat.md).
# `make test` runs it against COMPAT_VERSION, the oldest release that installs as is.
VLLM_VERSION ?= 0.32.0
COMPAT_VERSION ?= 0.30.0
COMPAT_PARTS := chat embeddings reasoning agent
compat: $(STAMP)
	$(PY) scripts/setup_rig.py --only $(COMPAT_PARTS) --vllm $(VLLM_VERSION)
	COMPAT_VLLM_VERSION=$(VLLM_VERSION) $(PYTEST) tests/compat_tests -q --timeout 900

compat_tests: $(STAMP)
	$(MAKE) compat VLLM_VERSION=$(COMPAT_VERSION)

# Client overhead against a stub and live throughput, side by side (docs/BENCHMARKS.md).
bench: $(STAMP)
	$(PY) scripts/setup_rig.py --only chat
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

# Mixed load against a live server (docs/RELIABILITY.md). Full size: make load N=1000 C=128
N ?= 1000
C ?= 128
load: $(STAMP)
	$(PY) scripts/setup_rig.py --only chat
	$(PY) benchmarks/load.py --requests $(N) --concurrency $(C)

# Replicas behind vllm-router: routing, session affinity, LoRA adapters on every
# replica, failover under load (docs/scaling.md). `make test` runs the reduced size
# (200 requests at concurrency 16 in the failover test); full size here.
SCALE_N ?= 600
SCALE_C ?= 32
# Chat and LoRA replicas behind the router.
SCALE_PARTS := chat lora router
scale_test: $(STAMP)
	$(PY) scripts/setup_rig.py --only $(SCALE_PARTS)
	SCALE_REQUESTS=$(SCALE_N) SCALE_CONCURRENCY=$(SCALE_C) \
		$(PYTEST) tests/scale_tests -q --timeout 1800

scale_tests: $(STAMP)
	$(PY) scripts/setup_rig.py --only $(SCALE_PARTS)
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
	rm -rf $(VENV) $(FLOORS_VENV) .pytest_cache .mypy_cache .ruff_cache .test-reports
