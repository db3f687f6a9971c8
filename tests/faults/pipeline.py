"""Helpers for the fault suite: ingestors and consumers as processes, a clean in-process reference,
counting what is on the Kafka topics (counters on /metrics: ``harness.metrics``).

The processes are ``harness.fundflow.ConsumerProc`` and ``IngestProc``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

from harness.fundflow import ConsumerProc
from harness.services import wait_until
from monitor.events import DEADLETTER_TOPIC, TOPICS
from tests.integration.fundflow_procs import business_lines

EVENT_TOPICS = tuple(TOPICS.values())


def read_all(bootstrap: str, topics: Iterable[str], timeout: float = 60, **client: Any) -> list[Any]:
    """Every record of ``topics`` (all partitions, from the beginning, up to the end offsets now).

    ``client``: more kafka-python options (SASL/TLS for a secured cluster).
    """
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      fetch_max_bytes=52_428_800, max_partition_fetch_bytes=8_388_608, **client)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "reading the topics timed out"
            for batch in c.poll(timeout_ms=500, max_records=50_000).values():
                out.extend(batch)
        return out
    finally:
        c.close()


def event_ids(records: Iterable[Any]) -> Counter[str]:
    """trade_id / symbol+channel+seq / symbol+date of event records: how often each is on the topics."""
    ids: Counter[str] = Counter()
    for r in records:
        ids[identity(orjson.loads(r.value))] += 1
    return ids


def identity(v: dict[str, Any]) -> str:
    kind = v.get("kind")
    if kind == "trade":
        return f"t|{v['trade_id']}"
    if kind == "southbound":
        return f"s|{v['symbol']}|{v['channel']}|{v['seq']}"
    if kind == "southbound_quota":
        return f"q|{v['channel']}|{v['ts']}"  # one record per channel and event time
    if kind == "iopv":
        return f"i|{v['symbol']}|{v['ts']}"  # one IOPV per ETF and event time
    return f"{kind}|{v['symbol']}|{v.get('date')}"  # one units / daily record per symbol and date


def dead_letters(bootstrap: str, **client: Any) -> list[dict[str, Any]]:
    out = []
    for r in read_all(bootstrap, [DEADLETTER_TOPIC], **client):
        doc = orjson.loads(r.value)
        doc["raw"] = base64.b64decode(doc["original"])
        out.append(doc)
    return out


# --------------------------------------------------------------------------------------------- reference
def clean_run(events: Iterable[dict[str, Any]], config: Any = None) -> dict[str, Any]:
    """The same events through the same code on the embedded bus, uninterrupted: the reference.

    Returns the API documents per symbol (as ``ConsumerProc.documents()`` gives them) and the business
    series of /metrics.
    """
    from monitor import documents
    from monitor.bus.memory import MemoryBus
    from monitor.config import Config
    from monitor.service import Service

    cfg = config or Config()
    bus = MemoryBus(cfg.kafka.partitions)
    bus.ensure_topics()
    svc = Service(cfg, bus=bus, live_clock=False)
    pub = svc.publisher("reference")
    n = 0
    for ev in events:
        assert pub.publish_obj(ev) is not None, ev
        n += 1
    asyncio.run(svc.runner.run(asyncio.Event(), until_caught_up=True))
    eng = svc.engine
    docs = {}
    for s in eng.symbols():
        doc = documents.symbol_answer(eng, s)
        docs[s] = orjson.loads(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    return {"documents": docs, "metrics": business_lines(svc.metrics.render().decode()),
            "applied": sum(eng.applied.values()), "events": n}


def wait_drained(proc: ConsumerProc, applied: int, timeout: float = 120) -> dict[str, Any]:
    """Until the consumer applied ``applied`` events, has no lag and is ready; returns its status."""
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        if not proc.alive():
            raise AssertionError(f"consumer exited: {proc.log_tail()}")
        try:
            last = proc.json("/api/v1/status")
        except OSError:
            return False
        ev = last["events"]
        return bool(last["ready"]) and ev["applied"] >= applied and last["consumer_lag_messages"] == 0

    try:
        wait_until(done, timeout, f"{applied} events applied")
    except Exception as exc:  # noqa: BLE001 - any failure is re-raised with the status and the log
        raise AssertionError(f"{exc}; last status {last}; log:\n{proc.log_tail()}") from None
    return last
