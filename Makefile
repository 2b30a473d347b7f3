# The README's commands. Everything runs from a fresh clone with Python 3.11.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STATE := $(CURDIR)/.state
PG_PORT ?= 54329

export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__EXECUTOR := LocalExecutor
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN := sqlite:///$(CURDIR)/.airflow/airflow.db
export AIRFLOW__LOGGING__BASE_LOG_FOLDER := $(CURDIR)/.airflow/logs
export GX_ANALYTICS_ENABLED := false
export FEEDBACKLOOP_PG_PORT := $(PG_PORT)

.PHONY: help install demo test test-unit test-integration test-dags lint format typecheck bench clean cluster cluster-down

help:
	@echo "make demo   - set up .venv, start the embedded PostgreSQL, seed demo data, run feedback_retraining"
	@echo "make test   - set up .venv and run the whole test suite"
	@echo "make lint   - ruff check + format check;  make typecheck - mypy on include and plugins"
	@echo "make bench  - run the benchmarks (see BENCHMARKS.md)"
	@echo "make cluster - the CeleryExecutor topology as local processes on 127.0.0.1 (docs/cluster.md)"
	@echo "make cluster-down - stop every process make cluster started"

$(BIN)/activate: requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(BIN)/activate

install: $(BIN)/activate

demo: install
	$(BIN)/python -m feedbackloop.demo --state $(STATE)

test: install
	$(BIN)/python -m pytest tests -q -p no:cacheprovider

test-unit: install
	$(BIN)/python -m pytest tests/unit -q

test-integration: install
	$(BIN)/python -m pytest tests/integration -q

test-dags: install
	$(BIN)/python -m pytest tests/dags -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy include/feedbackloop plugins

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The production topology without Docker (docs/cluster.md). CLUSTER_ARGS passes options to
# `python -m feedbackloop.cluster up`, e.g. CLUSTER_ARGS="--workers 3 --api-port 0".
CLUSTER_STATE ?= $(STATE)/cluster
CLUSTER_ARGS ?=

cluster: install
	$(BIN)/python -m feedbackloop.cluster up --state $(CLUSTER_STATE) $(CLUSTER_ARGS)

cluster-down:
	$(BIN)/python -m feedbackloop.cluster down --state $(CLUSTER_STATE)

clean:
	-$(BIN)/python -m feedbackloop.embedded_pg stop $(STATE)/pg
	rm -rf $(STATE) .airflow
