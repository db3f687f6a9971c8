"""Ops artefacts generated from one spec: Prometheus rules, Grafana dashboards and alerting.

``monitor.ops.spec`` holds the recording rules, alerts and dashboard panels as
plain dataclasses; ``monitor.ops.render`` writes them out under ``grafana/``
(``fundflow rules render``).
"""
