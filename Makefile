# fundflow — top-level commands.  `make test` is THE test command (CI runs it).
PYTHON ?= python3

.PHONY: install demo test-deps lint test test-unit render

install:
	$(PYTHON) -m pip install -e .

demo: install
	$(PYTHON) -m monitor demo

# Debian packages (mosquitto, prometheus, alertmanager, chromium), the Python
# test extras and the Kafka jars from Maven Central; idempotent.
test-deps:
	bash deploy/dev/install-deps.sh

# Lint and types first: ruff on the code and tests, mypy on the packages; a type: ignore or
# noqa must say why on its own line.
LINTED = monitor consumers bench tests harness
lint:
	$(PYTHON) -m ruff check $(LINTED)
	$(PYTHON) -m mypy monitor consumers
	@! grep -rnE --include='*.py' '# (type: ignore(\[[^]]*\])?|noqa(: *[A-Z]+[0-9]+(, *[A-Z]+[0-9]+)*)?) *$$' $(LINTED) \
		|| { echo "lint: the type: ignore / noqa above has no reason on its line"; exit 1; }

# Benchmarks: a smoke run with ratios (missed targets are printed, never a failure).
test: test-deps
	$(MAKE) --no-print-directory lint
	$(PYTHON) -m pytest -q tests
	$(PYTHON) -m bench --quick

# Unit tests only: no servers, no installs.
test-unit:
	$(PYTHON) -m pytest -q tests -m "not integration"

render:
	$(PYTHON) -m monitor rules render
