"""Launchers for the real services (Kafka, Mosquitto, Prometheus, Alertmanager) and for fundflow
processes, shared by the tests and the benchmarks.

A top-level package of the source checkout (not in the wheel), so ``bench``
uses it without importing ``tests``. Import as ``from harness.services import
KafkaBroker, ...`` (the repo root must be on ``sys.path``; ``tests/conftest.py``
and ``python -m bench`` from the repo root both arrange that). This package
never imports pytest.
"""
