"""Nobody let in: the three-node cluster demands TLS and SCRAM-SHA-512, and its ACLs confine each user.

The broker refuses a wrong password and a client without TLS; the ingest user may write the event and
dead-letter topics and nothing else, so it can neither read nor write the consumer's state topic. When
fundflow meets such a refusal it says so in one clear line, in text or JSON logs, and the password
appears in neither.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.services import KafkaCluster, wait_until
from monitor.bus.kafka import KafkaBus
from monitor.events import STATE_TOPIC, TOPICS
from tests.faults import badinput
from tests.faults.cluster import GROUP_PREFIX, env, kafka_config

QUICK = {"request_timeout_ms": 5000, "reconnect_backoff_max_ms": 500}


@pytest.fixture
def topics(kafka_cluster: KafkaCluster) -> KafkaCluster:
    KafkaBus(kafka_config(kafka_cluster)).ensure_topics()
    return kafka_cluster


def admin_with(cluster: KafkaCluster, **overrides: Any) -> None:
    """Connect an admin client with ``overrides`` (None: the option left out) and list the topics."""
    from kafka import KafkaAdminClient

    cfg = {k: v for k, v in {**cluster.client_config("consumer"), **QUICK, **overrides}.items() if v is not None}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
        cfg["bootstrap_timeout_ms"] = 8000
    admin = KafkaAdminClient(**cfg)
    try:
        admin.list_topics()
    finally:
        admin.close()


def test_the_right_password_over_tls_is_let_in(kafka_cluster: KafkaCluster) -> None:
    admin_with(kafka_cluster)


@pytest.mark.parametrize("overrides", [
    pytest.param({"sasl_plain_password": "wrong-" + uuid.uuid4().hex}, id="wrong password"),
    pytest.param({"security_protocol": "SASL_PLAINTEXT"}, id="SASL without TLS"),
    pytest.param({"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "sasl_plain_username": None,
                  "sasl_plain_password": None, "ssl_cafile": None}, id="no TLS, no SASL"),
    pytest.param({"security_protocol": "SSL", "sasl_mechanism": None, "sasl_plain_username": None,
                  "sasl_plain_password": None}, id="TLS without SASL"),
])
def test_a_client_without_the_right_password_or_without_tls_is_refused(kafka_cluster: KafkaCluster,
                                                                        overrides: dict[str, Any]) -> None:
    with pytest.raises(Exception):  # noqa: B017 - kafka-python raises per protocol stage (SASL, TLS, timeout)
        admin_with(kafka_cluster, **overrides)


def test_the_ingest_user_writes_events_but_cannot_write_or_read_the_state_topic(topics: KafkaCluster) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    cfg = topics.client_config("ingest")
    producer = KafkaProducer(acks="all", max_block_ms=10_000, **cfg, **QUICK)
    try:
        producer.send(TOPICS["trade"], orjson.dumps(badinput.good_trade(1, "acl")), key=b"513770.SH").get(30)
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send(STATE_TOPIC, b"{}", key=b"x").get(30)
    finally:
        producer.close(timeout=5)
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **cfg, **QUICK)
    try:  # where a reader starts: the broker will not even say which offsets the state topic has
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.beginning_offsets([TopicPartition(STATE_TOPIC, 0)])
        assert consumer.beginning_offsets([TopicPartition(TOPICS["trade"], 0)])  # its own topics: allowed
    finally:
        consumer.close()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_fundflow_refused_by_an_acl_says_so_clearly_without_the_secret(topics: KafkaCluster, tmp_path: Any,
                                                                      fmt: str) -> None:
    """A consumer started with the ingest user's credentials: the ACL hides the state topic from it."""
    secret = topics.users["ingest"]
    proc = ConsumerProc(topics.bootstrap, f"{GROUP_PREFIX}acl-{fmt}", tmp_path / "consumer.log",
                        env=env(topics, "ingest", FUNDFLOW_LOG__FORMAT=fmt)).start()
    assert proc.proc is not None
    assert proc.proc.wait(120) == 2, proc.log_tail()
    text = proc.log_text()
    assert secret not in text
    assert "Traceback" not in text
    denial = [line for line in text.splitlines() if "not authorized" in line]
    assert denial, text
    assert STATE_TOPIC in denial[0] and "'ingest'" in denial[0] and "SCRAM-SHA-512" in denial[0]
    if fmt == "json":
        docs = [orjson.loads(line) for line in text.splitlines() if line.strip()]  # every line parses
        assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)
        (err,) = [d for d in docs if d["level"] == "ERROR"]
        assert err["logger"] == "fundflow" and err["reason"] == "access_denied"


def test_an_ingestor_with_a_wrong_password_stays_up_not_ready_and_names_the_refusal_not_the_secret(
        topics: KafkaCluster, tmp_path: Any) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    environ = env(topics, "ingest", FUNDFLOW_KAFKA__SASL_PASSWORD=wrong)
    push = IngestProc("push", topics.bootstrap, tmp_path / "push.log", env=environ).start()
    try:
        push.wait_http()
        body = orjson.dumps(badinput.good_trade(2, "wrong-pw"))
        assert http("POST", push.url + "/ingest", body)[0] == 202  # taken before any write has failed

        def refused() -> bool:
            return http("GET", push.url + "/readyz")[0] == 503 and "fundflow_bus_available 0.0" in push.metrics()

        wait_until(refused, 90, "the ingestor reporting the bus unavailable")
        assert http("GET", push.url + "/healthz")[0] == 200  # alive: a liveness probe must not restart it in a loop
        assert http("POST", push.url + "/ingest", body)[0] == 503  # nothing more taken that cannot be made durable
    finally:
        push.stop(10)
    text = push.log_text()
    assert wrong not in text and topics.users["ingest"] not in text
    assert "refused user 'ingest' (SASL_SSL SCRAM-SHA-512): authentication failed" in text, text


def test_deploy_configs_carry_the_cluster_settings_with_secrets_from_the_environment() -> None:
    """What the tests run against is what deploy/ configures: SASL_SSL, SCRAM-SHA-512, RF 3, min ISR 2, JSON logs."""
    from pathlib import Path

    import yaml

    from monitor.config import load_config

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    k8s = load_config(deploy / "k8s" / "fundflow.toml", env={})
    assert (k8s.kafka.security_protocol, k8s.kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (k8s.kafka.replication_factor, k8s.kafka.min_insync_replicas) == (3, 2)
    assert len(k8s.kafka.bootstrap_servers.split(",")) >= 3 and k8s.kafka.ssl_cafile
    assert k8s.log.format == "json" and k8s.secrets() == []  # no secret in the ConfigMap
    (secret,) = yaml.safe_load_all((deploy / "k8s" / "secret.yaml").read_text())
    assert all(v == "" for v in secret["stringData"].values())  # placeholders only
    for name, user in (("ingest", "ingest"), ("consume", "consumer")):
        (dep, *_) = yaml.safe_load_all((deploy / "k8s" / f"{name}.yaml").read_text())
        env_vars = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env_vars["FUNDFLOW_KAFKA__SASL_USERNAME"]["value"] == user
        ref = env_vars["FUNDFLOW_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    for svc in ("ingest", "consume"):
        environment = compose["services"][svc]["environment"]
        for key in ("FUNDFLOW_KAFKA__SECURITY_PROTOCOL", "FUNDFLOW_KAFKA__SASL_MECHANISM", "FUNDFLOW_KAFKA__SSL_CAFILE",
                    "FUNDFLOW_KAFKA__REPLICATION_FACTOR", "FUNDFLOW_KAFKA__MIN_INSYNC_REPLICAS",
                    "FUNDFLOW_KAFKA__SASL_USERNAME", "FUNDFLOW_KAFKA__SASL_PASSWORD", "FUNDFLOW_LOG__FORMAT"):
            assert str(environment[key]).startswith("${"), (svc, key)  # from the environment, not the file
