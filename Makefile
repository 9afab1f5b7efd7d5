# One-command entry points. Every target installs what it needs itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MCP_VENV := .venv-mcp
MCP_STAMP := $(MCP_VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8079

.PHONY: run test bench lint typecheck clean chromium nginx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The official MCP SDK (2.x) cannot live beside zhipuai (PyJWT < 2.9), so the
# MCP client tests drive the server from this separate, client-only venv.
$(MCP_STAMP):
	$(PYTHON) -m venv $(MCP_VENV)
	$(MCP_VENV)/bin/pip install --quiet --upgrade pip
	$(MCP_VENV)/bin/pip install --quiet 'mcp>=2.3,<3'
	touch $(MCP_STAMP)

# make run PORT=8080 HOST=0.0.0.0 to choose where it listens; `.env` is read if present.
run: $(STAMP)
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

# The dashboard's browser test drives Debian's chromium; without it (and without root to
# install it) that one test is skipped, saying so.
chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "installing Debian's chromium for the dashboard's browser test" && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "no chromium here: the dashboard's browser test will be skipped"

# The deployment test runs Debian's nginx in front of two server processes (deploy/); installed
# without starting its own service (policy-rc.d), or the test is skipped, saying so.
nginx:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "installing Debian's nginx for the deployment test" && \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && \
		{ apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		  status=$$?; rm -f /usr/sbin/policy-rc.d; exit $$status; }; } || \
		echo "no nginx here: the deployment test will be skipped"

test: $(STAMP) $(MCP_STAMP) chromium nginx
	EXAI_MCP_CLIENT_PYTHON=$(CURDIR)/$(MCP_VENV)/bin/python $(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/ws_overhead.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/throttle.py
	$(BIN)/python benchmarks/error_capture.py
	$(BIN)/python benchmarks/file_ingest.py
	$(BIN)/python benchmarks/metrics_overhead.py
	$(BIN)/python benchmarks/tool_schemas.py
	$(BIN)/python benchmarks/providers.py
	$(BIN)/python benchmarks/hardening.py
	$(BIN)/python benchmarks/connections.py
	$(BIN)/python benchmarks/mcp_streams.py

# ruff, and the layer contract in pyproject.toml (import-linter: no cycles, the core imports no feature app).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy exai_site tools_app files_app errors_app metrics_app

clean:
	rm -rf $(VENV) $(MCP_VENV) .pytest_cache
