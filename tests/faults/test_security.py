"""Security: the bearer token on /api, /metrics and POST /ingest (processes), never in logs or error bodies;
MQTT with username/password (a real Mosquitto refusing anonymous and wrong passwords); Kafka SASL/TLS
settings from the config file and environment reach every kafka-python client the service makes.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import orjson
import pytest

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.metrics import sample_sum, sample_value
from harness.services import wait_until
from monitor.events import TOPICS
from tests.faults import badinput
from tests.faults.pipeline import read_all
from tests.ingest.brokers import QosPublisher

PROTECTED = [("GET", "/metrics"), ("GET", "/api/v1/symbols"), ("GET", "/api/v1/status"),
             ("GET", "/api/v1/symbols/513770.SH"), ("GET", "/api/v1/flows?window=20d"), ("POST", "/ingest")]


def wrong_headers(token: str) -> list[dict[str, str]]:
    return [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {token}x"},
            {"Authorization": f"Bearer {token[:-1]}"}, {"Authorization": token},
            {"Authorization": "Basic " + base64.b64encode(f"user:{token}".encode()).decode()},
            {"Authorization": f"Bearer  {token}"}, {"Authorization": ""}, {"X-Token": token}]


def test_token_required_and_never_echoed_or_logged(kafka_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    token = "tok-" + uuid.uuid4().hex
    consumer = ConsumerProc(kb.bootstrap, "secure", tmp_path / "consumer.log", token=token).start()
    push = IngestProc("push", kb.bootstrap, tmp_path / "push.log", env={"FUNDFLOW_HTTP__TOKEN": token}).start()
    consumer.wait_ready(90)
    push.wait_http()
    good = orjson.dumps(badinput.good_trade(1, "sec", symbol="513770.SH"))
    bodies: list[bytes] = []
    refused = 0
    for base in (consumer.url, push.url):
        paths = PROTECTED if base == consumer.url else [("GET", "/metrics"), ("POST", "/ingest")]
        for method, path in paths:
            for headers in wrong_headers(token):
                data = good if method == "POST" else None
                status, body = http(method, base + path + ("" if "?" in path else f"?token={token}"), data,
                                    headers=headers)
                assert status == 401, (base, method, path, headers, status, body[:200])
                assert orjson.loads(body)["error"]["status"] == 401
                bodies.append(body)
                refused += 1
        for path in ("/healthz",):  # liveness stays open for probes
            assert http("GET", base + path)[0] == 200
    assert http("GET", consumer.url + "/readyz")[0] == 200
    # the right token
    status, body = http("POST", consumer.url + "/ingest?wait=true", good, token=token)
    assert status == 202, body
    wait_until(lambda: consumer.status()["events"]["applied"] >= 1, 60, "the trade applied")
    for method, path in PROTECTED:
        status, body = http(method, consumer.url + path, good if method == "POST" else None, token=token)
        assert status in (200, 202), (path, status, body[:200])
    assert http("POST", push.url + "/ingest", good.replace(b"sec-1", b"sec-2"), token=token)[0] == 202
    assert http("GET", push.url + "/metrics", token=token)[0] == 200
    # error answers with the right token: none of them carries the token
    for method, path, data in [("GET", "/api/v1/symbols/NOPE.XX", None), ("GET", "/api/v1/streaks?min_days=x", None),
                               ("GET", "/api/v1/flows?window=7y", None), ("POST", "/ingest", b"{not json"),
                               ("POST", "/ingest", b"x" * (9 * 1024 * 1024)), ("GET", "/api/v1/nothing", None),
                               ("DELETE", "/api/v1/symbols", None)]:
        status, body = http(method, consumer.url + path, data, token=token)
        assert 400 <= status < 500, (path, status)
        bodies.append(body)
    for body in bodies:
        assert token.encode() not in body
    wait_until(lambda: consumer.status()["events"]["applied"] >= 2, 60, "the two accepted trades applied")
    assert consumer.stop() == 0 and push.stop() == 0
    for log in (consumer.log_path.read_text(errors="replace"), push.log_text()):
        assert token not in log
        assert "Traceback" not in log
    ledger.add("security: bearer token", in_=2, applied=2, note=f"{refused} requests refused with 401")


def test_mqtt_username_password(kafka_factory, mosquitto_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    password = "pw-" + uuid.uuid4().hex
    mq = mosquitto_factory(username="feed", password=password)
    args = ["--host", mq.host, "--port", str(mq.port), "--topic", "md/#", "--client-id", "sec-mqtt",
            "--backoff-initial-s", "0.1", "--backoff-max-s", "0.3"]
    wrong = IngestProc("mqtt", kb.bootstrap, tmp_path / "wrong.log", args,
                       env={"FUNDFLOW_MQTT__USERNAME": "feed", "FUNDFLOW_MQTT__PASSWORD": "not-" + password}).start()
    wrong.wait_http()
    wait_until(lambda: sample_sum(wrong.metrics(), "fundflow_source_reconnects_total", source="mqtt") >= 2, 30,
               "refused and retrying")
    assert sample_value(wrong.metrics(), "fundflow_source_connected", {"source": "mqtt"}) != 1
    assert wrong.alive() and wrong.stop() == 0
    anonymous = IngestProc("mqtt", kb.bootstrap, tmp_path / "anon.log", args).start()
    anonymous.wait_http()
    wait_until(lambda: sample_sum(anonymous.metrics(), "fundflow_source_reconnects_total", source="mqtt") >= 2, 30,
               "anonymous refused")
    assert anonymous.stop() == 0
    ok = IngestProc("mqtt", kb.bootstrap, tmp_path / "ok.log", args,
                    env={"FUNDFLOW_SOURCES__MQTT__USERNAME": "feed", "FUNDFLOW_SOURCES__MQTT__PASSWORD": password}).start()
    ok.wait_http()
    wait_until(lambda: sample_value(ok.metrics(), "fundflow_source_connected", {"source": "mqtt"}) == 1, 30, "connected")
    pub = QosPublisher(mq, username="feed", password=password)
    events = [badinput.good_trade(i, "auth") for i in range(20)]
    pub.publish("md/etf/trades/a", orjson.dumps(events))
    pub.wait(30)
    pub.close()
    wait_until(lambda: sample_sum(ok.metrics(), "fundflow_events_ingested_total", source="mqtt") >= 20, 30, "events in")
    assert ok.stop() == 0
    got = {orjson.loads(r.value)["trade_id"] for r in read_all(kb.bootstrap, [TOPICS["trade"]])}
    assert got == {e["trade_id"] for e in events}
    for p in (wrong, anonymous, ok):
        assert password not in p.log_text(), p.log_path
    ledger.add("security: MQTT password", in_=20, applied=20, note="wrong and anonymous refused")


# ----------------------------------------------------------------------------------- Kafka SASL / TLS
class _Recorder:
    calls: list[tuple[str, dict[str, Any]]] = []

    def __init__(self, **kw: Any) -> None:
        _Recorder.calls.append((type(self).__name__, kw))

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: {} if name in ("end_offsets", "beginning_offsets") else (set() if name == "list_topics" else None)


class FakeProducer(_Recorder):
    pass


class FakeConsumer(_Recorder):
    def __init__(self, *topics: str, **kw: Any) -> None:
        super().__init__(**kw)

    def end_offsets(self, tps: list[Any], **kw: Any) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def position(self, tp: Any) -> int:
        return 0


class FakeAdmin(_Recorder):
    def describe_topics(self, topics: list[str]) -> list[dict[str, Any]]:
        return [{"name": t, "error_code": 3, "partitions": []} for t in topics]  # 3: unknown, so created

    def list_topics(self) -> list[str]:
        from monitor.bus import ALL_TOPICS

        return list(ALL_TOPICS)


def test_kafka_sasl_and_tls_settings_reach_every_client(tmp_path, monkeypatch) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    import monitor.bus.kafka as kmod
    from monitor.config import load_config
    from monitor.ingest import wiring
    from monitor.service import Service

    cfg_file = tmp_path / "fundflow.toml"
    cfg_file.write_text('[kafka]\nbootstrap_servers = "broker-a:9093,broker-b:9093"\nsecurity_protocol = "SASL_SSL"\n'
                        'sasl_mechanism = "SCRAM-SHA-512"\nsasl_username = "fundflow"\nssl_cafile = "/etc/kafka/ca.pem"\n'
                        'ssl_certfile = "/etc/kafka/client.pem"\nssl_keyfile = "/etc/kafka/client.key"\n')
    secret = "sasl-" + uuid.uuid4().hex
    cfg = load_config(cfg_file, env={"FUNDFLOW_KAFKA__SASL_PASSWORD": secret})
    monkeypatch.setattr(kmod, "KafkaProducer", FakeProducer)
    monkeypatch.setattr(kmod, "KafkaConsumer", FakeConsumer)
    monkeypatch.setattr(kmod, "KafkaAdminClient", FakeAdmin)
    _Recorder.calls = []
    svc = Service(cfg)  # the consumer's bus
    bus = svc.bus
    assert isinstance(bus, kmod.KafkaBus)
    bus.ensure_topics()
    bus.producer  # noqa: B018 - builds the producer
    bus.consumer("g", ["fundflow.etf.trades"])
    list(bus.read_partitions("fundflow.state.daily", [0]))
    ingest = wiring.ingest_bus(svc)  # the ingestors' producer of their own
    assert isinstance(ingest, kmod.KafkaBus) and ingest is not bus
    ingest.producer  # noqa: B018 - builds the ingest producer
    want = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "fundflow",
            "sasl_plain_password": secret, "ssl_cafile": "/etc/kafka/ca.pem", "ssl_certfile": "/etc/kafka/client.pem",
            "ssl_keyfile": "/etc/kafka/client.key", "bootstrap_servers": ["broker-a:9093", "broker-b:9093"]}
    kinds = [name for name, _ in _Recorder.calls]
    assert kinds.count("FakeProducer") == 2 and kinds.count("FakeConsumer") == 2 and "FakeAdmin" in kinds, kinds
    for name, kw in _Recorder.calls:
        assert {k: kw.get(k) for k in want} == want, name
        real = {"FakeProducer": KafkaProducer, "FakeConsumer": KafkaConsumer, "FakeAdmin": KafkaAdminClient}[name]
        unknown = set(kw) - set(real.DEFAULT_CONFIG)
        assert not unknown, f"{name}: kafka-python does not know {unknown}"
    # and the secret is masked wherever the config is shown
    assert secret not in repr(cfg.redacted()) and cfg.redacted()["kafka"]["sasl_password"] == "***"


def test_kafka_plaintext_default_sends_no_sasl_or_tls_options() -> None:
    from monitor.config import KafkaConfig

    assert KafkaConfig().client_security() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("protocol", ["SSL", "SASL_PLAINTEXT"])
def test_security_protocol_from_environment(protocol: str) -> None:
    from monitor.config import load_config

    cfg = load_config(None, env={"FUNDFLOW_KAFKA__SECURITY_PROTOCOL": protocol, "FUNDFLOW_KAFKA__SASL_MECHANISM": "PLAIN"})
    assert cfg.kafka.client_security()["security_protocol"] == protocol
