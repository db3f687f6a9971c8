"""Smoke tests for the real-service harness (harness/services.py).

They prove that the launchers bring up working servers: Kafka (KRaft) with a
produce/consume roundtrip and data surviving a restart, Mosquitto QoS 1 (also
across a restart, for persistent sessions), Prometheus scraping a real
target, Alertmanager answering and receiving an alert from Prometheus.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import uuid

import pytest

from harness.services import free_port, wait_until

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------
# Kafka
# --------------------------------------------------------------------------


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


def _read_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Read every partition of ``topic`` from the beginning (no consumer group)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    try:
        parts = wait_until(
            lambda: consumer.partitions_for_topic(topic), 30, f"partitions of {topic}"
        )
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def test_kafka_produce_consume_roundtrip(kafka):
    from kafka import KafkaConsumer

    topic = f"harness.smoke.{uuid.uuid4().hex[:8]}"
    kafka.create_topics(topic)  # 6 partitions by default
    admin = kafka.admin()
    try:
        assert topic in admin.list_topics()
        (desc,) = admin.describe_topics([topic])
        assert len(desc["partitions"]) == 6
    finally:
        admin.close()

    sent = [(f"SYM{i % 7}".encode(), json.dumps({"n": i}).encode()) for i in range(200)]
    _produce(kafka.bootstrap, topic, sent)

    # through a consumer group (the way the consumers run), offsets committed
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=f"harness-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        got: list = []
        deadline = time.monotonic() + 60
        while len(got) < len(sent) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                got.extend(batch)
        consumer.commit()
    finally:
        consumer.close()
    assert sorted(json.loads(r.value)["n"] for r in got) == list(range(200))
    # same key -> same partition
    by_key: dict[bytes, set[int]] = {}
    for r in got:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for p in by_key.values())


def test_kafka_auto_create_is_off(kafka):
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, max_block_ms=2000)
    try:
        with pytest.raises(KafkaTimeoutError):
            producer.send("harness.not.created", b"x").get(timeout=5)
    finally:
        producer.close(timeout=5)
    admin = kafka.admin()
    try:
        assert "harness.not.created" not in admin.list_topics()
    finally:
        admin.close()


def test_kafka_restart_keeps_data(kafka_factory):
    broker = kafka_factory()
    port = broker.port
    topic = "harness.restart"
    broker.create_topics(topic, partitions=3)
    first = [(b"k%d" % i, b"before-%d" % i) for i in range(50)]
    _produce(broker.bootstrap, topic, first)

    broker.stop()  # clean shutdown (SIGTERM)
    assert not broker.running
    broker.start()
    assert broker.port == port
    assert len(_read_all(broker.bootstrap, topic, 50)) == 50

    second = [(b"k%d" % i, b"after-%d" % i) for i in range(50)]
    _produce(broker.bootstrap, topic, second)
    broker.kill()  # crash (SIGKILL): written data is still in the page cache / files
    broker.start()
    records = _read_all(broker.bootstrap, topic, 100)
    assert sorted(r.value for r in records) == sorted(v for _, v in first + second)


# --------------------------------------------------------------------------
# Mosquitto
# --------------------------------------------------------------------------


def _mqtt_client(client_id: str, clean_session: bool = True):
    import paho.mqtt.client as mqtt

    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )


class _Collector:
    def __init__(self):
        self.messages: list = []
        self.subscribed = threading.Event()

    def on_message(self, client, userdata, msg):
        self.messages.append((msg.topic, msg.payload, msg.qos))

    def on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subscribed.set()


def _connect(client, broker) -> None:
    client.connect(broker.host, broker.port, keepalive=30)
    client.loop_start()


def _publish_qos1(broker, topic: str, payloads: list[bytes]) -> None:
    pub = _mqtt_client(f"pub-{uuid.uuid4().hex[:6]}")
    _connect(pub, broker)
    try:
        infos = [pub.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_mosquitto_pubsub_qos1(mosquitto):
    topic = f"harness/smoke/{uuid.uuid4().hex[:6]}"
    col = _Collector()
    sub = _mqtt_client(f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = col.on_message
    sub.on_subscribe = col.on_subscribe
    _connect(sub, mosquitto)
    try:
        sub.subscribe(topic, qos=1)
        assert col.subscribed.wait(10)
        payloads = [b"tick-%d" % i for i in range(20)]
        _publish_qos1(mosquitto, topic, payloads)
        wait_until(lambda: len(col.messages) >= 20, 10, "20 MQTT messages")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert [m[1] for m in col.messages] == payloads
    assert {m[2] for m in col.messages} == {1}


def test_mosquitto_persistent_session_survives_restart(mosquitto_factory):
    broker = mosquitto_factory()
    port = broker.port
    topic = "harness/persist"
    client_id = "harness-persistent-sub"

    sub = _mqtt_client(client_id, clean_session=False)
    col = _Collector()
    sub.on_subscribe = col.on_subscribe
    _connect(sub, broker)
    sub.subscribe(topic, qos=1)
    assert col.subscribed.wait(10)
    sub.disconnect()
    sub.loop_stop()

    # queued for the offline persistent session, then the broker restarts
    payloads = [b"queued-%d" % i for i in range(10)]
    _publish_qos1(broker, topic, payloads)
    broker.restart()
    assert broker.port == port

    col = _Collector()
    sub = _mqtt_client(client_id, clean_session=False)
    sub.on_message = col.on_message
    _connect(sub, broker)
    try:
        wait_until(lambda: len(col.messages) >= 10, 15, "queued MQTT messages after restart")
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert [m[1] for m in col.messages] == payloads


def test_mosquitto_password_auth(mosquitto_factory):
    broker = mosquitto_factory(username="feed", password="s3cret")

    def connack(password: str):
        result = {}
        done = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            result["rc"] = reason_code
            done.set()

        client = _mqtt_client(f"auth-{uuid.uuid4().hex[:6]}")
        client.on_connect = on_connect
        client.username_pw_set("feed", password)
        _connect(client, broker)
        try:
            assert done.wait(10), "no CONNACK"
            return result["rc"]
        finally:
            client.disconnect()
            client.loop_stop()

    assert not connack("s3cret").is_failure
    assert connack("wrong").is_failure


# --------------------------------------------------------------------------
# Prometheus / Alertmanager
# --------------------------------------------------------------------------


@pytest.fixture
def metrics_server():
    """A tiny prometheus_client HTTP server on a free port with one gauge = 42."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    registry = CollectorRegistry()
    Gauge("harness_smoke_value", "harness smoke gauge", registry=registry).set(42)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_prometheus_scrapes_target(prometheus_factory, metrics_server):
    prom = prometheus_factory([metrics_server])
    result = prom.wait_for("harness_smoke_value", timeout=30)
    assert float(result[0]["value"][1]) == 42.0
    assert result[0]["metric"]["job"] == "fundflow"
    assert prom.query_value('up{job="fundflow"}') == 1.0
    assert prom.targets()[0]["health"] == "up"


class _Webhook:
    """An HTTP server collecting Alertmanager webhook POSTs."""

    def __init__(self):
        self.payloads: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server dispatches to
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_alertmanager_ready_and_receives_alert(
    prometheus_factory, alertmanager_factory, metrics_server, tmp_path
):
    import urllib.request

    hook = _Webhook()
    try:
        am = alertmanager_factory(hook.url)
        with urllib.request.urlopen(f"{am.url}/-/ready", timeout=5) as resp:
            assert resp.status == 200

        rules = tmp_path / "smoke.rules.yml"
        rules.write_text(
            "groups:\n"
            "- name: harness\n"
            "  rules:\n"
            "  - alert: FundflowHarnessSmoke\n"
            "    expr: harness_smoke_value > 1\n"
            "    labels: {severity: info}\n"
            "    annotations: {summary: harness smoke alert}\n"
        )
        prom = prometheus_factory([metrics_server], rule_files=[rules], alertmanager_url=am.url)
        wait_until(
            lambda: any(a["state"] == "firing" for a in prom.alerts()), 30, "firing alert"
        )
        wait_until(lambda: hook.payloads, 30, "webhook notification")
        alert = hook.payloads[0]["alerts"][0]
        assert alert["labels"]["alertname"] == "FundflowHarnessSmoke"
        assert alert["status"] == "firing"
    finally:
        hook.close()
