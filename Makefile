# sekimori developer targets. `make install` then `make test`; see README.md.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PKGS := libpcap-dev libmagic1 redis-server nftables iproute2 tcpdump
PACKAGES := sensor signatures responders cli tests
PYTEST_ARGS ?=

# `make run` prints the demo's alerts as a table (no jq needed).
define SHOW_ALERTS
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
alerts = [r for r in rows if r.get('event_type') == 'alert']
for r in alerts:
    a = r['alert']
    src = f"{r['src_ip']}:{r.get('src_port', '')}"
    dst = f"{r['dest_ip']}:{r.get('dest_port', '')}"
    print(f"{r['timestamp'][11:26]}  {src:>21} -> {dst:<21} sev {a.get('severity', '?')}  [{a['signature_id']}] {a['signature']}")
print(f'{len(alerts)} alert(s) in {sys.argv[1]}')
endef
export SHOW_ALERTS

.PHONY: help install system-packages venv test lint run bench fuzz conformance demo-data cli-docs install-service

help:
	@echo "make install      system packages (apt) + .venv with sekimori and dev tools"
	@echo "make test         run the test suite (PYTEST_ARGS='-k name' to select)"
	@echo "make lint         ruff check, ruff format --check, mypy"
	@echo "make run          the demo: tests/data/demo.pcap with tests/data/demo.rules"
	@echo "make conformance  score against ../shared/conformance (Suricata 7.0.10 alerts)"
	@echo "make bench / fuzz benchmarks / fuzzers (when present)"

install: system-packages venv

# Root installs what is missing; anyone else is told the exact command to run.
system-packages:
	@missing=""; \
	for pkg in $(SYSTEM_PKGS); do \
	  dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then echo "system packages: all present"; exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	else \
	  echo "sudo apt-get install -y$$missing"; \
	  echo "make: missing system packages; run the command above, then make install again" >&2; \
	  exit 1; \
	fi

venv:
	@if [ ! -x $(BIN)/python ]; then \
	  if ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	    if [ "$$(id -u)" -eq 0 ]; then \
	      export DEBIAN_FRONTEND=noninteractive; apt-get update -q && apt-get install -y -q python3-venv; \
	    else \
	      echo "sudo apt-get install -y python3-venv"; exit 1; \
	    fi; \
	  fi; \
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	    { echo "make: sekimori needs Python >= 3.11 ($(PYTHON) is older)" >&2; exit 1; }; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install -q -e '.[dev]'

test:
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check $(PACKAGES)
	$(BIN)/ruff format --check $(PACKAGES)
	$(BIN)/mypy $(PACKAGES)

# docs/cli.md is generated from the commands' help (tests/test_ops_clidocs.py checks it).
cli-docs:
	$(BIN)/python -m cli.docsgen

# systemd units (root): SERVICE_ARGS='--enable eth1' also starts a sensor on eth1.
install-service:
	$(BIN)/sekimori install-service $(SERVICE_ARGS)

demo-data:
	$(BIN)/python tests/data/make_demo.py

run:
	@mkdir -p out
	@rm -f out/demo-eve.json
	$(BIN)/sekimori run --pcap tests/data/demo.pcap --rules tests/data/demo.rules --eve out/demo-eve.json
	@$(BIN)/python -c "$$SHOW_ALERTS" out/demo-eve.json

bench:
	$(BIN)/python bench/run.py
	$(BIN)/python bench/alerts.py
	$(BIN)/python bench/hs_modes.py
	$(BIN)/python bench/capture_floor.py

# Each target runs SEKIMORI_FUZZ_SECONDS (default 60) seconds; atheris is installed on first use.
fuzz:
	@$(BIN)/python -c 'import atheris' 2>/dev/null || $(BIN)/python -m pip install -q -e '.[fuzz]'
	$(BIN)/python tests/fuzz/run.py

conformance:
	@if [ -x ../shared/conformance/run ]; then ../shared/conformance/run --cmd $(BIN)/sekimori; \
	else echo "make conformance: ../shared/conformance/run is absent" >&2; exit 1; fi
