"""Launchers for the real services the integration tests and benchmarks use.

Import as ``from tests.harness.services import KafkaBroker, ...`` (the repo
root must be on ``sys.path``; ``tests/conftest.py`` and ``python -m bench``
from the repo root both arrange that). This package never imports pytest.
"""
