"""Shared fixtures: real Kafka / Mosquitto / Prometheus / Alertmanager.

A missing server binary or jar skips the test locally and FAILS it when the
``CI`` environment variable is set (see docs/testing.md).

Fixtures:
  kafka                 session: a started KafkaBroker (``.bootstrap``)
  kafka_factory         function: ``make(**kw) -> KafkaBroker`` (own broker, stopped after)
  kafka_cluster         session: three KRaft nodes, SASL_SSL + SCRAM-SHA-512, ACLs for the
                        ``ingest`` and ``consumer`` users (tests/faults/cluster.py)
  mosquitto             session: a started Mosquitto (``.host``, ``.port``)
  mosquitto_factory     function: ``make(**kw) -> Mosquitto``
  prometheus_factory    function: ``make(scrape_targets, **kw) -> Prometheus``
  alertmanager_factory  function: ``make(webhook_url=None, **kw) -> Alertmanager``
  require               the ``require_binary`` function, for subfolder conftests
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from harness import services  # noqa: E402 - after the sys.path line above
from harness.services import (  # noqa: E402 - after the sys.path line above
    Alertmanager,
    KafkaBroker,
    KafkaCluster,
    MissingBinary,
    Mosquitto,
    Prometheus,
)


def missing(reason: str) -> None:
    """Skip locally, fail under CI: a missing server is never a silent skip in CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this is a failure)", pytrace=False)
    pytest.skip(f"{reason} (set CI to fail instead)")


def require_binary(name: str) -> str:
    """Path of binary ``name``; ``"kafka"`` means the Kafka jar dir. Skip/fail when missing."""
    if name in ("kafka", "kafka_2.13", "kafka-jars"):
        try:
            return str(services.kafka_libs())
        except MissingBinary as exc:
            missing(str(exc))
    path = services.find_binary(name)
    if path is None:
        missing(f"{name} not installed (run: bash deploy/dev/install-deps.sh)")
    return path


def _start(service):
    try:
        return service.start()
    except MissingBinary as exc:
        missing(str(exc))


def pytest_configure(config):
    # Also declared in pyproject.toml; repeated so this conftest stands alone.
    config.addinivalue_line("markers", "integration: needs real servers (Kafka, Mosquitto, Prometheus)")
    # kafka-python's protocol loader uses importlib.resources' legacy API on every request type
    config.addinivalue_line("filterwarnings", "ignore:read_text is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:open_text is deprecated:DeprecationWarning")


_SERVER_FIXTURES = {
    "kafka", "kafka_factory", "kafka_cluster", "mosquitto", "mosquitto_factory",
    "prometheus_factory", "alertmanager_factory",
}


def pytest_collection_modifyitems(config, items):
    # Anything under tests/integration/ or using a server fixture is an
    # integration test, so `-m "not integration"` runs the pure tests only.
    integration_dir = Path(__file__).parent / "integration"
    for item in items:
        if integration_dir in Path(item.fspath).parents or _SERVER_FIXTURES & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def require():
    return require_binary


@pytest.fixture(scope="session")
def kafka(tmp_path_factory):
    broker = _start(KafkaBroker(tmp_path_factory.mktemp("kafka")))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory):
    """One three-node SASL_SSL cluster for the whole session: it costs ~15-35 s and ~0.6 GB to start."""
    import secrets

    from tests.faults.cluster import grant_fundflow_acls

    users = {"ingest": secrets.token_hex(16), "consumer": secrets.token_hex(16)}
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster"), users=users)
    try:
        cluster.start()
    except MissingBinary as exc:
        missing(str(exc))
    grant_fundflow_acls(cluster)
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory):
    broker = _start(Mosquitto(tmp_path_factory.mktemp("mosquitto")))
    yield broker
    broker.stop()


def _factory(tmp_path_factory, cls, name):
    started = []

    def make(*args, **kwargs):
        service = cls(tmp_path_factory.mktemp(name), *args, **kwargs)
        started.append(service)
        return _start(service)

    return make, started


@pytest.fixture
def kafka_factory(tmp_path_factory):
    make, started = _factory(tmp_path_factory, KafkaBroker, "kafka")
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def mosquitto_factory(tmp_path_factory):
    make, started = _factory(tmp_path_factory, Mosquitto, "mosquitto")
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def prometheus_factory(tmp_path_factory):
    make, started = _factory(tmp_path_factory, Prometheus, "prometheus")
    yield make
    for s in started:
        s.stop()


@pytest.fixture
def alertmanager_factory(tmp_path_factory):
    make, started = _factory(tmp_path_factory, Alertmanager, "alertmanager")
    yield make
    for s in started:
        s.stop()
