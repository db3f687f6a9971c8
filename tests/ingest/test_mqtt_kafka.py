"""MQTT -> real Mosquitto -> ingestor -> real Kafka: no QoS 1 message lost, per-symbol order kept.

The ingestor acknowledges a message only once Kafka has its events, so a
broker restart, an ingestor restart or a Kafka outage loses nothing; what is
redelivered is a duplicate (same trade_id) that consumers count once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import orjson
import pytest

from monitor.events import DEADLETTER_TOPIC, TOPICS
from tests.ingest.brokers import QosPublisher, Running, Stack, mqtt_source, read_topic, until
from tests.ingest.conftest import TS, trade

SYMBOLS = [f"51377{i}.SH" for i in range(8)]


def events(prefix: str, n: int) -> list[dict]:
    out = []
    for i in range(n):
        ev = trade(i, symbol=SYMBOLS[i % len(SYMBOLS)], ts=TS + i)
        ev["trade_id"] = f"{prefix}-{i}"
        out.append(ev)
    return out


def payloads(evs: list[dict]) -> list[bytes]:
    """Singles and JSON arrays of up to 7 events, in order."""
    out, i = [], 0
    while i < len(evs):
        size = 1 if (i // 7) % 3 else 7
        chunk = evs[i:i + size]
        out.append(orjson.dumps(chunk[0]) if size == 1 else orjson.dumps(chunk))
        i += size
    return out


def check_arrived(bootstrap: str, prefix: str, n: int, timeout: float = 60) -> list:
    recs = read_topic(bootstrap, TOPICS["trade"], lambda v: str(v.get("trade_id", "")).startswith(prefix + "-"), n,
                      timeout)
    seen: dict[str, object] = {}
    for r in recs:
        seen.setdefault(orjson.loads(r.value)["trade_id"], r)
    assert len(seen) == n, f"{len(seen)} distinct of {n} arrived ({len(recs)} records)"
    # keyed by symbol, one partition per symbol, and per-symbol order (after dedupe) as published
    by_symbol: dict[bytes, list[int]] = defaultdict(list)
    parts: dict[bytes, set[int]] = defaultdict(set)
    first: set[str] = set()
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        v = orjson.loads(r.value)
        assert r.key == v["symbol"].encode()
        parts[r.key].add(r.partition)
        if v["trade_id"] not in first:
            first.add(v["trade_id"])
            by_symbol[r.key].append(int(v["trade_id"].rsplit("-", 1)[1]))
    assert all(len(p) == 1 for p in parts.values())
    for key, seq in by_symbol.items():
        assert seq == sorted(seq), f"{key!r} out of order"
    return recs


async def test_n_events_json_arrays_bad_payloads_and_broker_restart(kafka, mosquitto_factory) -> None:
    broker = mosquitto_factory()
    prefix = uuid.uuid4().hex[:8]
    n = 10_000
    evs = events(prefix, n)
    msgs = payloads(evs)
    async with Stack(kafka.bootstrap) as stack:
        running = Running(mqtt_source(stack, broker, ["md/etf/trades/#"], f"ingest-{prefix}"))
        await until(lambda: stack.stats.connected.get("mqtt"), 10, "ingestor connected")
        pub = QosPublisher(broker)
        loop = asyncio.get_running_loop()

        def publish_all() -> None:
            for i, m in enumerate(msgs):
                pub.publish(f"md/etf/trades/{i % 4}", m)
                if i == len(msgs) // 2:
                    time.sleep(0.2)
            pub.publish("md/etf/trades/x", b"{definitely not json")
            pub.publish("md/etf/trades/x", orjson.dumps([{"kind": "trade", "symbol": "513770.SH"}]))

        pub_task = loop.run_in_executor(None, publish_all)
        # Mosquitto restarted in the middle of the run: both sides reconnect by themselves
        await until(lambda: stack.publisher.stats.ingested[("mqtt", "trade")] > n // 4, 30, "a quarter in")
        await loop.run_in_executor(None, broker.restart)
        await pub_task
        await loop.run_in_executor(None, pub.wait, 60)
        pub.close()
        await until(lambda: stack.sink.pending == 0 and stack.stats.rejected[("mqtt", "missing_field")] >= 1,
                    60, "all messages through")
        assert stack.stats.reconnects["mqtt"] >= 1
        await running.close()
    check_arrived(kafka.bootstrap, prefix, n)
    letters = read_topic(kafka.bootstrap, DEADLETTER_TOPIC,
                         lambda v: v.get("source") == "mqtt" and v.get("reason") in ("bad_json", "missing_field"), 2)
    assert {orjson.loads(r.value)["reason"] for r in letters} >= {"bad_json", "missing_field"}
    assert stack.stats.rejected[("mqtt", "bad_json")] >= 1


async def test_persistent_session_delivers_what_was_published_while_down(kafka, mosquitto_factory) -> None:
    broker = mosquitto_factory()
    prefix = uuid.uuid4().hex[:8]
    client_id = f"ingest-{prefix}"
    async with Stack(kafka.bootstrap) as stack:
        running = Running(mqtt_source(stack, broker, ["md/etf/trades/#"], client_id))
        await until(lambda: stack.stats.connected.get("mqtt"), 10, "subscribed")
        await running.close()  # the ingestor goes away; its session stays at the broker
        assert not stack.stats.connected.get("mqtt")
        pub = QosPublisher(broker)
        for m in payloads(events(prefix, 300)):
            pub.publish("md/etf/trades/a", m)
        await asyncio.get_running_loop().run_in_executor(None, pub.wait, 30)
        pub.close()
        running = Running(mqtt_source(stack, broker, ["md/etf/trades/#"], client_id))
        await until(lambda: stack.stats.ingested[("mqtt", "trade")] >= 300, 30, "queued messages")
        await stack.sink.wait_empty(30)
        await running.close()
    check_arrived(kafka.bootstrap, prefix, 300)


async def test_username_password(kafka, mosquitto_factory) -> None:
    broker = mosquitto_factory(username="feed", password="s3cret")
    prefix = uuid.uuid4().hex[:8]
    async with Stack(kafka.bootstrap) as stack:
        wrong = Running(mqtt_source(stack, broker, ["md/#"], f"bad-{prefix}", username="feed", password="nope"))
        await until(lambda: stack.stats.reconnects["mqtt"] >= 2, 10, "refused and retrying")
        assert not stack.stats.connected.get("mqtt")
        await wrong.close()
        running = Running(mqtt_source(stack, broker, ["md/#"], f"ok-{prefix}", username="feed", password="s3cret"))
        await until(lambda: stack.stats.connected.get("mqtt"), 10, "connected with the password")
        pub = QosPublisher(broker, username="feed", password="s3cret")
        pub.publish("md/etf/trades/a", orjson.dumps(events(prefix, 5)))
        await asyncio.get_running_loop().run_in_executor(None, pub.wait, 10)
        pub.close()
        await until(lambda: stack.stats.ingested[("mqtt", "trade")] >= 5, 10, "events")
        await stack.sink.wait_empty(30)
        await running.close()
    check_arrived(kafka.bootstrap, prefix, 5)


@pytest.mark.parametrize("outage_s", [1.0])
async def test_kafka_outage_buffers_then_delivers_and_never_blocks_the_loop(kafka_factory, mosquitto_factory,
                                                                               outage_s) -> None:
    kbroker = kafka_factory()
    broker = mosquitto_factory()
    prefix = uuid.uuid4().hex[:8]
    evs = events(prefix, 2_000)
    msgs = [orjson.dumps(e) for e in evs]
    loop = asyncio.get_running_loop()
    max_stall = 0.0

    async def ticker(stop: asyncio.Event) -> None:
        nonlocal max_stall
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = loop.time()
            max_stall = max(max_stall, now - last - 0.01)
            last = now

    async with Stack(kbroker.bootstrap, max_events=800, flush_timeout_s=2.0) as stack:
        tick_stop = asyncio.Event()
        tick_task = asyncio.create_task(ticker(tick_stop))
        running = Running(mqtt_source(stack, broker, ["md/etf/trades/#"], f"ingest-{prefix}"))
        await until(lambda: stack.stats.connected.get("mqtt"), 10, "connected")
        pub = QosPublisher(broker)
        for m in msgs[:500]:
            pub.publish("md/etf/trades/a", m)
        await until(lambda: stack.sink.produced >= 500, 30, "first 500 produced")
        await loop.run_in_executor(None, kbroker.stop)
        for m in msgs[500:]:
            pub.publish("md/etf/trades/a", m)
        # Kafka is down: events wait in the bounded buffer, then the source stops reading (back-pressure)
        await until(lambda: stack.stats.buffered >= 800, 30, "buffer full")
        await until(lambda: not stack.sink.healthy, 10, "the sink notices")
        await asyncio.sleep(outage_s)
        assert stack.stats.buffered == 800  # bounded: nothing more was read
        await loop.run_in_executor(None, kbroker.start)
        await until(lambda: stack.sink.healthy, 60, "sink healthy")
        await loop.run_in_executor(None, pub.wait, 60)
        pub.close()
        await until(lambda: stack.stats.ingested[("mqtt", "trade")] >= 2_000 and stack.sink.pending == 0, 60,
                    "everything produced after Kafka returned")
        assert stack.sink.failures >= 1
        await running.close()
        tick_stop.set()
        await tick_task
    recs = check_arrived(kbroker.bootstrap, prefix, 2_000)
    assert len(recs) >= 2_000
    assert max_stall < 0.5, f"the event loop stalled {max_stall:.2f}s"
