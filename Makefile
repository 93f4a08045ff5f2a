# ResolutionFlow developer entry points. `make` lists them; `make up` runs everything on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
# `pip install --user` puts uv here, which is often not on PATH yet.
export PATH := $(HOME)/.local/bin:$(PATH)
# --frozen: run exactly what uv.lock pins, never rewrite it.
RUN := uv run --frozen
PYTEST_ARGS ?=

.PHONY: help uv install kafka-jars up start stop status test compose-test lint bench api-docs

help:
	@echo "ResolutionFlow"
	@echo "  make install     uv, the locked Python environment and (if needed) the Kafka jars"
	@echo "  make up          Kafka, PostgreSQL and the four services in the foreground; Ctrl-C stops all"
	@echo "  make start       the same in the background; returns when every service is ready"
	@echo "  make stop        stop what start (or infra-up) runs"
	@echo "  make status      KEY=VALUE addresses and the state of each component"
	@echo "  make test        every test (PYTEST_ARGS='-k name -x' to narrow)"
	@echo "  make compose-test  compose.yaml in a real container engine (Docker, else Podman): build, run, check, remove"
	@echo "  make lint        ruff, the import contracts (lint-imports) and mypy"
	@echo "  make api-docs    regenerate docs/openapi.json and docs/asyncapi.yaml from the code (commit them)"
	@echo "  make bench       every benchmark"
	@echo "  make kafka-jars  resolve the local Kafka broker's jars with Maven"
	@echo "Kafka and PostgreSQL come from RF_KAFKA_BOOTSTRAP / RF_DATABASE_URL when set, else Docker when an"
	@echo "engine answers, else local processes (needs Java 17+ and Maven). Run state lives in .run/."

uv:
	@command -v uv >/dev/null 2>&1 || { \
		command -v python3 >/dev/null 2>&1 || { echo "error: python3 is missing; install Python 3.11 first" >&2; exit 2; }; \
		echo "uv not found: installing uv==$(UV_VERSION) with pip --user"; \
		python3 -m pip install --user --quiet "uv==$(UV_VERSION)" \
			|| python3 -m pip install --user --quiet --break-system-packages "uv==$(UV_VERSION)"; \
	}

install: uv
	uv sync --frozen
	$(RUN) python -m rf_devstack kafka-jars --if-needed

kafka-jars: uv
	$(RUN) python -m rf_devstack kafka-jars

up: install
	$(RUN) python -m rf_devstack up

start: install
	$(RUN) python -m rf_devstack start

stop: uv
	$(RUN) python -m rf_devstack stop

status: uv
	@$(RUN) python -m rf_devstack status

test: install
	$(RUN) pytest $(PYTEST_ARGS)

# Builds the images (locally when no registry answers), runs compose.yaml, drives it through the gateway, kills a
# service and checks it comes back with nothing lost, then removes every container, network and volume it made.
compose-test: install
	$(RUN) python -m rf_devstack.compose

# lint-imports: the service shape's import contracts ([tool.importlinter] in pyproject.toml).
lint: uv
	$(RUN) ruff check . && $(RUN) lint-imports --no-cache --no-logo && $(RUN) mypy $(wildcard libs/*/src services/*/src) bench tools

bench: install
	$(RUN) python -m bench

# The committed API documents: the gateway's OpenAPI and the events' AsyncAPI (tests/test_api_documents.py fails
# when they differ from what the code produces).
api-docs: uv
	$(RUN) python -m tools.api_docs
