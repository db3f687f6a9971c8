"""Broker restarts in the middle of a simulated day, with every process of the pipeline running.

Ingestors (``fundflow ingest mqtt`` for the ETF feed, ``fundflow ingest push`` for southbound) and a
consumer (``fundflow consume``) run as processes the test never restarts: they must recover by
themselves. The final state must equal a clean run of the same events (same code, embedded bus,
nothing interrupted), and every input must be accounted for: what the sources sent = what was
applied + what was rejected, and what the consumer read = applied + rejected + duplicates.

Consumer kill -9 (five moments, including during recovery) and scale-out are in
tests/integration/test_consume.py.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import orjson

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.metrics import sample_sum, sample_value
from harness.services import wait_until
from monitor.simulator import Scenario, generate
from tests.faults.pipeline import (
    EVENT_TOPICS,
    business_lines,
    clean_run,
    dead_letters,
    event_ids,
    identity,
    read_all,
    wait_drained,
)
from tests.ingest.brokers import QosPublisher

DAY = Scenario(days=2, trade_interval_s=20, tick_interval_s=300)  # ~7,800 events over two trading days
BAD_PER_PHASE = 20  # per path and phase: dead-lettered, counted


def tape() -> list[dict[str, Any]]:
    return list(generate(DAY))


def bad(phase: int, path: str) -> list[bytes]:
    out = []
    for i in range(BAD_PER_PHASE):
        if i % 2:
            out.append(b'{"kind": "trade", "symbol": "513770.SH", "ts": ' + f"{phase}{i}".encode())  # truncated
        else:
            out.append(orjson.dumps({"kind": "trade", "symbol": "BAD", "ts": 1757640600000, "price": 1, "volume": 1,
                                     "trade_id": f"{path}-{phase}-{i}"}))
    return out


class Feeds:
    """ETF events over MQTT (QoS 1), southbound events over HTTP push; bad payloads on both."""

    def __init__(self, mq: Any, push: IngestProc) -> None:
        self.pub = QosPublisher(mq)
        self.push = push
        self.sent_good = 0
        self.sent_bad = 0
        self.retried = 0  # bodies answered 503 and sent again

    def send(self, events: list[dict[str, Any]], phase: int) -> None:
        etf = [e for e in events if e["kind"] in ("trade", "units")]
        sb = [e for e in events if e["kind"] not in ("trade", "units")]
        for i in range(0, len(etf), 5):
            chunk = etf[i:i + 5]
            self.pub.publish(f"md/etf/trades/{chunk[0]['symbol']}", orjson.dumps(chunk if i % 2 else chunk[0]))
            if not i % 2:
                for e in chunk[1:]:
                    self.pub.publish(f"md/etf/trades/{e['symbol']}", orjson.dumps(e))
        for raw in bad(phase, "mqtt"):
            self.pub.publish("md/etf/trades/bad", raw)
        lines = [orjson.dumps(e) for e in sb]
        for i in range(0, len(lines), 500):
            self._post(b"\n".join(lines[i:i + 500]))
        self._post(b"\n".join([orjson.dumps(sb[0])] + [r.replace(b"\n", b" ") for r in bad(phase, "push")]) if sb
                   else b"\n".join(bad(phase, "push")))
        self.sent_good += len(events) + (1 if sb else 0)  # the re-sent first tick: a duplicate, applied once
        self.sent_bad += 2 * BAD_PER_PHASE

    def _post(self, body: bytes) -> None:
        """Like a careful client: a 503 (the bus cannot make the body durable now) is sent again later."""
        deadline = time.monotonic() + 180
        while True:
            status, resp = http("POST", self.push.url + "/ingest", body, timeout=60)
            if status != 503 or time.monotonic() > deadline:
                break
            self.retried += 1
            time.sleep(1)
        assert status in (202, 400), (status, resp[:300])

    def close(self) -> None:
        self.pub.wait(120)
        self.pub.close()


def start_pipeline(kb: Any, mq: Any, tmp_path: Any, group: str) -> tuple[ConsumerProc, IngestProc, IngestProc]:
    consumer = ConsumerProc(kb.bootstrap, group, tmp_path / "consumer.log").start()
    consumer.wait_ready(90)
    mqtt = IngestProc("mqtt", kb.bootstrap, tmp_path / "mqtt.log",
                      ["--host", mq.host, "--port", str(mq.port), "--topic", "md/#", "--client-id", f"{group}-mqtt",
                       "--backoff-max-s", "1"]).start()
    push = IngestProc("push", kb.bootstrap, tmp_path / "push.log").start()
    mqtt.wait_http()
    push.wait_http()
    wait_until(lambda: sample_value(mqtt.metrics(), "fundflow_source_connected", {"source": "mqtt"}) == 1, 30, "MQTT ingestor connected")
    return consumer, mqtt, push


def account(kb: Any, consumer: ConsumerProc, ingestors: list[IngestProc], events: list[dict[str, Any]],
            feeds: Feeds, tmp_path: Any, client: dict[str, Any] | None = None) -> dict[str, int]:
    """in = applied + rejected + duplicates, from the sources to the consumer; returns the numbers.

    The live consumer may have replayed part of the day after the broker restart (a rebalance re-reads the
    open session from its checkpoint), and its applied counter counts a replayed event again; so the
    exact identity is taken by an audit consumer (a new group) reading the topics once, and the live one
    is held to "everything applied, state equal to the clean run". ``client``: kafka-python options for
    the audit's reads (SASL/TLS on a secured cluster).
    """
    distinct = {identity(e) for e in events}
    wait_until(lambda: all(sample_sum(p.metrics(), "fundflow_ingest_buffered_events") == 0 for p in ingestors), 120,
               "ingest buffers empty")
    live = wait_drained(consumer, len(distinct), 180)["events"]
    on_topics = event_ids(read_all(kb.bootstrap, EVENT_TOPICS, **(client or {})))
    records = sum(on_topics.values())
    edge_rejected = int(sum(sample_sum(p.metrics(), "fundflow_events_rejected_total") for p in ingestors))
    edge_ingested = int(sum(sample_sum(p.metrics(), "fundflow_events_ingested_total") for p in ingestors))
    # nothing lost: every distinct event sent is on the topics, nothing else is
    assert set(on_topics) == distinct
    assert live["rejected"] == 0, live
    # the sources: everything sent was ingested or rejected at the edge (a redelivery may add to both)
    assert edge_rejected >= feeds.sent_bad and edge_ingested >= feeds.sent_good
    assert records >= len(distinct)
    letters = [x for x in dead_letters(kb.bootstrap, **(client or {})) if x["source"] in ("mqtt", "push")]
    assert len({(x["source"], x["raw"]) for x in letters}) == feeds.sent_bad and len(letters) == edge_rejected
    # the consumer side, exactly: the records on the topics, read once in partition order through the same
    # validation and engine, give records = applied + rejected + duplicates with applied = distinct events
    audit = audit_stream(read_all(kb.bootstrap, EVENT_TOPICS, **(client or {})))
    assert audit["applied"] == len(distinct), (audit, len(distinct))
    assert records == audit["applied"] + audit["rejected"] + audit["duplicates"], (records, audit)
    # the live consumer: exactly the same, also when a rebalance made it replay part of the day
    # (a replay rebuilds state without counting again: fundflow_events_replayed_total)
    assert live["applied"] == len(distinct) and live["duplicates"] == audit["duplicates"], (live, audit)
    replayed = live["replayed"]
    return {"in": records + edge_rejected, "applied": audit["applied"], "rejected": edge_rejected,
            "duplicates": audit["duplicates"], "replayed": replayed}


def audit_stream(records: list[Any]) -> dict[str, int]:
    from consumers.engine import Engine
    from monitor.calendars import default_calendars
    from monitor.events import KIND_OF_TOPIC, Rejected, Validator

    cal = default_calendars()
    validator, engine = Validator(cal), Engine(cal, 60)
    out: Counter[str] = Counter()
    for r in sorted(records, key=lambda r: (r.topic, r.partition, r.offset)):
        try:
            ev = validator.decode(r.value, KIND_OF_TOPIC[r.topic])
        except Rejected:
            out["rejected"] += 1
            continue
        out["duplicates" if engine.apply(ev) == "duplicate" else "applied"] += 1
    return {k: out[k] for k in ("applied", "rejected", "duplicates")}


def test_kafka_broker_sigterm_and_sigkill_mid_day(kafka_factory, mosquitto_factory, tmp_path, ledger) -> None:
    events = tape()
    ref = clean_run(events)
    kb = kafka_factory()
    mq = mosquitto_factory()
    consumer, mqtt, push = start_pipeline(kb, mq, tmp_path, "restart")
    feeds = Feeds(mq, push)
    phases = [events[i * len(events) // 5:(i + 1) * len(events) // 5] for i in range(5)]
    try:
        t0 = time.monotonic()

        def mark(what: str) -> None:
            print(f"[{time.monotonic() - t0:6.1f}s] {what}", flush=True)

        feeds.send(phases[0], 0)
        wait_until(lambda: consumer.status()["events"]["applied"] > 0, 60, "first events applied")
        mark('stop')
        kb.stop()  # SIGTERM: a clean broker shutdown mid-day
        feeds.send(phases[1], 1)  # into the ingestors' buffers (and Mosquitto's queue) while Kafka is away
        time.sleep(1)
        mark('start')
        kb.start()
        mark('started')
        feeds.send(phases[2], 2)
        time.sleep(1)
        mark('kill')
        kb.kill()  # SIGKILL: the broker dies without a word
        feeds.send(phases[3], 3)
        time.sleep(1)
        mark('start')
        kb.start()
        mark('started')
        feeds.send(phases[4], 4)
        feeds.close()
        mark('published')
        numbers = account(kb, consumer, [mqtt, push], events, feeds, tmp_path)
        mark('accounted')
        assert consumer.documents() == ref["documents"]
        assert business_lines(consumer.metrics()) == ref["metrics"]
        crashes = sum(not p.alive() for p in (consumer, mqtt, push))
        assert crashes == 0
        assert mqtt.stop() == 0, mqtt.log_tail()
        assert push.stop() == 0, push.log_tail()
        assert consumer.stop() == 0, consumer.log_tail()
    finally:
        for p in (mqtt, push):
            p.stop()
        consumer.stop()
    ledger.add("Kafka restart (TERM+KILL)", in_=numbers["in"], applied=numbers["applied"],
               rejected=numbers["rejected"], duplicates=numbers["duplicates"], restarts=2,
               note=f"live consumer re-applied {numbers['replayed']:,} after a rebalance")
