"""Malformed input, at least 10,000 payloads, through MQTT, HTTP push and straight onto the Kafka topics.

One consumer process (which also serves POST /ingest), one MQTT ingestor process, a broker of their
own. Good events are interleaved with the bad ones on every path. Proven: no process crashes (both
exit 0 on SIGTERM at the end), every bad payload is dead-lettered once with a reason from the closed
set and its original bytes (a prefix when larger than the payload limit), the rejection counters
agree with the dead-letter topic, and the good events around them give exactly the state of a clean
run of the good events alone.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.metrics import sample_sum, sample_sum_by, sample_value
from harness.services import wait_until
from monitor.events import DEADLETTER_TOPIC, REASONS, TOPICS, Rejected
from tests.faults import badinput
from tests.faults.pipeline import clean_run, dead_letters, wait_drained
from tests.ingest.brokers import QosPublisher

N_MQTT, N_PUSH, N_KAFKA = 3_000, 4_000, 3_500  # 10,500 generated bad payloads (+ whole bad bodies, 1 MB records)
GOOD_EVERY = 4  # one good event after every 4 bad ones
PUSH_LINES = 100  # lines per POST body
ONE_MB = 1_000_000  # the most a default Kafka broker takes in one record


def expected_letters(raw: bytes) -> int:
    """MQTT: a JSON array payload is a batch, one dead letter per element."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 1
    return len(value) if isinstance(value, list) else 1


def goods(prefix: str, n: int, seq0: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append(badinput.good_tick(i, seq0) if i % 4 == 3 else badinput.good_trade(i, prefix))
    return out


def test_ten_thousand_bad_payloads_on_three_paths(kafka_factory, mosquitto_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    mq = mosquitto_factory()
    consumer = ConsumerProc(kb.bootstrap, "fuzz", tmp_path / "consumer.log").start()
    consumer.wait_ready(90)
    ingest = IngestProc("mqtt", kb.bootstrap, tmp_path / "mqtt.log",
                        ["--host", mq.host, "--port", str(mq.port), "--topic", "md/#", "--client-id", "fuzz-mqtt",
                         "--backoff-max-s", "1"]).start()
    ingest.wait_http()
    wait_until(lambda: sample_value(ingest.metrics(), "fundflow_source_connected", {"source": "mqtt"}) == 1, 30,
               "MQTT ingestor connected")

    # -- MQTT ------------------------------------------------------------------------------------
    mqtt_bad = list(badinput.payloads(101, N_MQTT, big_every=500))
    mqtt_good = goods("mq", N_MQTT // GOOD_EVERY, 1_000_000)
    pub = QosPublisher(mq)
    gi = 0
    for i, (_, raw) in enumerate(mqtt_bad):
        pub.publish("md/etf/trades/fuzz", raw)
        if i % GOOD_EVERY == GOOD_EVERY - 1:
            pub.publish("md/etf/trades/fuzz", orjson.dumps(mqtt_good[gi]))
            gi += 1
    assert gi == len(mqtt_good)

    # -- HTTP push (into the consumer process) -------------------------------------------------------
    push_bad = list(badinput.payloads(202, N_PUSH, big_every=500))
    push_good = goods("push", N_PUSH // GOOD_EVERY, 2_000_000)
    accepted = rejected = 0
    reasons: Counter[str] = Counter()
    gi = 0
    for start in range(0, N_PUSH, PUSH_LINES):
        lines = [orjson.dumps(push_good[gi])]  # a good first line: a body starting with '[' is one JSON array
        gi += 1
        for j, (_, raw) in enumerate(push_bad[start:start + PUSH_LINES]):
            lines.append(raw.replace(b"\n", b" "))
            if j % GOOD_EVERY == GOOD_EVERY - 1 and j != PUSH_LINES - 1 and gi < len(push_good):
                lines.append(orjson.dumps(push_good[gi]))
                gi += 1
        status, body = http("POST", consumer.url + "/ingest", b"\n".join(lines))
        assert status == 202, (status, body[:300])
        doc = orjson.loads(body)
        accepted += doc["accepted"]
        rejected += doc["rejected"]
        reasons.update(r["reason"] for r in doc["reasons"])
    push_good = push_good[:gi]
    assert (accepted, rejected) == (len(push_good), N_PUSH)
    assert set(reasons) <= set(REASONS)
    whole_bodies = [b"", b"   ", b"[1, 2", b"\xff\xfe\xfd", b"[" * 50_000, b'{"kind": "trade"', b"{,}\n{,}"]
    for body in whole_bodies:
        status, resp = http("POST", consumer.url + "/ingest", body)
        assert status == 400, (body[:20], status, resp[:200])
        assert orjson.loads(resp)["error"]["status"] == 400
    status, resp = http("POST", consumer.url + "/ingest", b"x" * (9 * 1024 * 1024))  # over [http] max_body_bytes
    assert status == 413, (status, resp[:200])

    # -- straight onto the Kafka topics --------------------------------------------------------------
    from kafka import KafkaProducer

    kafka_bad = [raw for _, raw in badinput.payloads(303, N_KAFKA)]
    rng = random.Random(3)
    kafka_bad += [b'{"kind": "trade", "pad": "' + b"y" * (ONE_MB - 40) + b'"}', b"\xff" * (ONE_MB - 100),
                  orjson.dumps(badinput.good_tick(1, 5))]  # a valid tick on the trades topic: wrong kind there
    kafka_good = goods("kafka", N_KAFKA // GOOD_EVERY, 3_000_000)
    producer = KafkaProducer(bootstrap_servers=kb.bootstrap, acks="all", max_request_size=1_100_000, linger_ms=20)
    gi = 0
    for i, raw in enumerate(kafka_bad):
        topic = TOPICS["trade"] if i % 3 or i == len(kafka_bad) - 1 else TOPICS[rng.choice(list(TOPICS))]
        producer.send(topic, value=raw, key=None)
        if i % GOOD_EVERY == GOOD_EVERY - 1 and gi < len(kafka_good):
            ev = kafka_good[gi]
            producer.send(TOPICS[ev["kind"]], value=orjson.dumps(ev), key=ev["symbol"].encode(), timestamp_ms=ev["ts"])
            gi += 1
    producer.flush(60)
    producer.close()
    kafka_good = kafka_good[:gi]

    pub.wait(60)
    pub.close()
    good = mqtt_good + push_good + kafka_good
    n_mqtt_letters = sum(expected_letters(raw) for _, raw in mqtt_bad)
    n_push_letters = N_PUSH + len(whole_bodies)
    wait_until(lambda: sample_sum(ingest.metrics(), "fundflow_events_rejected_total", source="mqtt") >= n_mqtt_letters
               and sample_sum(ingest.metrics(), "fundflow_events_ingested_total", source="mqtt") >= len(mqtt_good)
               and sample_sum(ingest.metrics(), "fundflow_ingest_buffered_events") == 0,
               90, "MQTT ingestor through every message")
    status = wait_drained(consumer, len(good), 120)

    # -- nothing crashed -------------------------------------------------------------------------------
    assert consumer.alive() and ingest.alive()
    mqtt_metrics = ingest.metrics()
    metrics = consumer.metrics()
    assert sample_sum(mqtt_metrics, "fundflow_events_rejected_total", source="mqtt") == n_mqtt_letters
    assert sample_sum(mqtt_metrics, "fundflow_events_ingested_total", source="mqtt") == len(mqtt_good)
    assert sample_sum(metrics, "fundflow_events_rejected_total", source="push") == n_push_letters
    assert sample_sum(metrics, "fundflow_events_rejected_total", source="consumer") == len(kafka_bad)
    assert sample_sum(metrics, "fundflow_events_ingested_total", source="push") == len(push_good)

    # -- every one dead-lettered, with a reason ---------------------------------------------------------
    def all_letters_written() -> list[dict[str, Any]]:
        letters = dead_letters(kb.bootstrap)
        return letters if len(letters) >= n_mqtt_letters + n_push_letters + len(kafka_bad) else []

    letters = wait_until(all_letters_written, 60, "every dead letter on the topic")
    by_source = Counter("consumer" if x["source"].startswith("consumer:") else x["source"] for x in letters)
    assert by_source == {"mqtt": n_mqtt_letters, "push": n_push_letters, "consumer": len(kafka_bad)}, by_source
    for x in letters:
        assert x["reason"] in REASONS and x["detail"], x
        assert len(x["raw"]) <= 64 * 1024 + 1024, (x["source"], x["reason"], len(x["raw"]))
    kafka_originals = Counter(x["raw"] for x in letters if x["source"].startswith("consumer:"))
    for raw in kafka_bad:
        key = raw if len(raw) <= 64 * 1024 else None
        if key is not None:
            assert kafka_originals[key] >= 1, raw[:100]
    letter_reasons = Counter(x["reason"] for x in letters)
    assert sample_sum_by(metrics, "fundflow_events_rejected_total", "reason") + sample_sum_by(mqtt_metrics, "fundflow_events_rejected_total",
                                                                              "reason") == letter_reasons
    for wanted in ("bad_json", "too_large", "unknown_kind", "missing_field", "wrong_type", "bad_number",
                   "bad_value", "bad_symbol", "bad_timestamp", "outside_session"):
        assert letter_reasons[wanted] > 0, wanted

    # -- the good events around them: exactly a clean run of the good events ----------------------------
    ref = clean_run(good)
    assert status["events"]["applied"] == len(good) == ref["applied"]
    assert status["events"]["duplicates"] == 0
    assert consumer.documents() == ref["documents"]

    # -- exits cleanly ---------------------------------------------------------------------------------
    assert ingest.stop() == 0, ingest.log_tail()
    assert consumer.stop() == 0, consumer.log_tail()
    for log in (ingest.log_text(), consumer.log_path.read_text(errors="replace")):
        assert "Traceback" not in log, log[-3000:]
    n_bad = N_MQTT + N_PUSH + len(whole_bodies) + len(kafka_bad)
    n_rejected = n_mqtt_letters + n_push_letters + len(kafka_bad)
    assert n_bad >= 10_000
    ledger.add("malformed input fuzz", in_=len(good) + n_rejected, applied=len(good), rejected=n_rejected,
               note=f"{n_bad:,} bad payloads: MQTT {N_MQTT:,}, push {N_PUSH + len(whole_bodies):,}, "
                    f"Kafka {len(kafka_bad):,}")


# ------------------------------------------------------------------------------------------- in process
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=6),
                    max_leaves=20)
FIELDS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(["trade", "units", "southbound", "southbound_daily", "x"]) | JSON,
    "symbol": st.sampled_from(["513770.SH", "09988.HK", "159920.SZ", "x"]) | JSON,
    "ts": st.integers(min_value=-(2**63), max_value=2**63) | st.floats() | st.text(max_size=30) | JSON,
    "date": st.dates().map(str) | JSON, "price": JSON, "volume": JSON, "amount": JSON, "side": JSON,
    "trade_id": JSON, "channel": st.sampled_from(["SH", "SZ"]) | JSON, "seq": JSON, "buy_hkd": JSON,
    "sell_hkd": JSON, "shares_outstanding": JSON, "nav": JSON})


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(obj=FIELDS | JSON, raw=st.binary(max_size=200))
def test_validator_never_raises_anything_but_rejected(obj: Any, raw: bytes) -> None:
    """Any JSON value or byte string: an event or Rejected with a reason from the closed set, nothing else."""
    v = _validator()
    for attempt in (lambda: v.validate(obj), lambda: v.decode(raw), lambda: v.decode(_dump(obj))):
        try:
            attempt()
        except Rejected as exc:
            assert exc.reason in REASONS


def _dump(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:
        return b"{}"


_V: list[Any] = []


def _validator() -> Any:
    if not _V:
        from monitor.calendars import default_calendars
        from monitor.events import Validator

        _V.append(Validator(default_calendars()))
    return _V[0]


def test_symbols_are_ascii_digits_without_trailing_newline() -> None:
    v = _validator()
    for sym in badinput.SYMBOLS_LOOKALIKE:
        if sym.endswith(".HK") or sym.endswith(".HK\n"):
            obj = badinput.good_tick(1, 1) | {"symbol": sym}
        else:
            obj = badinput.good_trade(1, "x") | {"symbol": sym}
        with pytest.raises(Rejected) as exc:
            v.validate(obj)
        assert exc.value.reason == "bad_symbol", (sym, exc.value.reason)


def test_large_payloads_are_dead_lettered_truncated_not_stuck() -> None:
    """A dead letter keeps at most the payload limit of the original (plus its size), so it always fits in a
    Kafka record: a 2 MB MQTT message or a 1 MB record must not make a dead letter Kafka refuses."""
    import base64

    from monitor.deadletter import deadletter_record

    letter = orjson.loads(deadletter_record(b"z" * (2 * 1024 * 1024), "mqtt", "too_large", "big"))
    assert len(base64.b64decode(letter["original"])) <= 64 * 1024
    assert letter["original_bytes"] == 2 * 1024 * 1024


def _unused(*_: Any) -> None:  # keep imports used by readers of this module
    return None


_unused(time, DEADLETTER_TOPIC)
