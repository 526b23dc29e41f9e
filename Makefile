# Two commands on a fresh machine: `make demo` and `make test`.
# The venv is created when missing; the install is redone when pyproject.toml changes.
# The first interpreter that really runs and is 3.11+ (pyenv shims can exist yet fail to run).
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	$$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_WS ?= demo-ws

.PHONY: install demo test test-slow bench bench-ingest bench-audit bench-query bench-serve bench-writers bench-peers privacy-audit demo-reliability clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "pdbg needs Python 3.11 or newer (none found on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

install: $(STAMP)

demo: install
	rm -rf $(DEMO_WS) .$(DEMO_WS).audit-mirror
	$(BIN)/pdbg demo $(DEMO_WS)

NBVAL_WS := .nbval-ws

# The whole suite, then every notebook under nbval against a freshly built demo workspace.
test: install
	$(BIN)/python -m pytest -m "not slow"
	rm -rf $(NBVAL_WS) .$(NBVAL_WS).audit-mirror
	$(BIN)/pdbg demo $(NBVAL_WS) --rows 20000 --seed 11 --no-investigate > /dev/null
	PDBG_WORKSPACE=$(CURDIR)/$(NBVAL_WS) $(BIN)/python -m pytest --nbval notebooks/ \
		--nbval-sanitize-with notebooks/nbval.cfg

test-slow: install
	$(BIN)/python -m pytest -m slow

bench: bench-ingest bench-audit bench-query bench-serve

bench-ingest: install
	$(BIN)/python benchmarks/ingest.py

bench-audit: install
	$(BIN)/python benchmarks/audit.py

bench-query: install
	$(BIN)/python benchmarks/query.py

bench-serve: install
	$(BIN)/python benchmarks/serve.py

bench-writers: install
	$(BIN)/python benchmarks/writer_starvation.py

# SmartNoise SQL and OpenDP's Polars API next to pdbg and plain DuckDB, in separate venvs.
bench-peers: install
	bash benchmarks/peers/setup.sh
	$(BIN)/python benchmarks/peers/run.py

# Empirical ε lower bounds per mechanism path, plus a broken variant the audit must catch.
privacy-audit: install
	$(BIN)/python benchmarks/privacy_audit.py

# How often the demo investigation locates the injected incident (goal: ≥ 95 of 100).
demo-reliability: install
	$(BIN)/python benchmarks/demo_reliability.py --runs 100

clean:
	rm -rf $(VENV) $(DEMO_WS) .$(DEMO_WS).audit-mirror $(NBVAL_WS) .$(NBVAL_WS).audit-mirror .pytest_cache test-output
