# fundflow — top-level commands.  `make test` is THE test command (CI runs it).
PYTHON ?= python3

.PHONY: install demo test-deps test test-unit render

install:
	$(PYTHON) -m pip install -e .

demo: install
	$(PYTHON) -m monitor demo

# Debian packages (mosquitto, prometheus, alertmanager, chromium), the Python
# test extras and the Kafka jars from Maven Central; idempotent.
test-deps:
	bash deploy/dev/install-deps.sh

# Benchmarks: a smoke run with ratios (missed targets are printed, never a failure).
test: test-deps
	$(PYTHON) -m pytest -q tests
	$(PYTHON) -m bench --quick

# Unit tests only: no servers, no installs.
test-unit:
	$(PYTHON) -m pytest -q tests -m "not integration"

render:
	$(PYTHON) -m monitor rules render
