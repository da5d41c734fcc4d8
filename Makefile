# The two commands of the README:
#   make up     install what the app needs and run all of it at http://localhost:8080
#   make test   install and prepare what the tests need, then run the whole suite
#   make bench  the performance figures and targets (not part of the suite)
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: up test install install-test bench cluster-test faults clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

up: install
	$(BIN)/ticketing up

test: install-test
	bash scripts/prepare-test-env
	$(BIN)/pytest $(PYTEST_ARGS)

# the full fault run: three rounds of kills, broker outages and terminated DB connections, then the invariants
faults: install-test
	bash scripts/prepare-test-env
	FAULTS=full $(BIN)/pytest -s -m faults tests/faults

# make bench [BENCH_ARGS=--quick]: the on-sale figures on PostgreSQL (bench/suite.py; installs wrk if missing)
bench: install-test
	bash scripts/prepare-test-env
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var artifacts

# Not in `make test`: a 3-node RabbitMQ cluster on this machine, the app as 2 replicas of every
# service on quorum queues, one node stopped and started under load; prints its invariant counts.
cluster-test: install-test
	bash scripts/prepare-test-env
	TICKETING_CLUSTER_TEST=1 $(BIN)/pytest tests/cluster -s $(PYTEST_ARGS)
