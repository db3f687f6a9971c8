"""Measurement 7, "recovery": kill -9 a live consumer at 14:30 of a market day, time the restart to /readyz.

Against its own Kafka broker: the market-day tape up to 14:30 (exchange time) is produced, a
``fundflow consume`` catches up on it, then the next minute of the tape arrives at the tape's own
rate while the consumer checkpoints as configured (every 30 s). The producer stops, the consumer
applies what it got, its business series are read, and it is killed with SIGKILL: whatever came
after its last checkpoint is not in the state topic. A new process in the same group starts; the
measurement is the time from its start to ``/readyz`` 200, and its business series must equal the
killed one's exactly. The state topic's size is read at the end (raw, and compacted: latest record
per key).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.kafka_bench import BenchError, Consume, _ready, fill, start_broker
from bench.tape import Rec, TapeSpec, key_of
from monitor.calendars import midnight_ms
from monitor.events import STATE_TOPIC, TOPICS
from monitor.simulator import generate

KILL_AT = "14:30"
LIVE_SECONDS = 60.0

# the series that are state (pipeline counters and process metrics differ between processes)
STATE_PREFIXES = ("fundflow_etf_", "fundflow_southbound_", "fundflow_macd", "fundflow_stream_as_of")


def state_lines(text: str) -> list[str]:
    return sorted(ln for ln in text.splitlines() if ln.startswith(STATE_PREFIXES))


def _tape(spec: TapeSpec) -> Iterator[Rec]:
    dumps = orjson.dumps
    for ev in generate(spec.scenario()):
        ts = ev.get("ts")
        if isinstance(ts, int):
            yield TOPICS[ev["kind"]], key_of(ev).encode(), dumps(ev), ts


def _split(spec: TapeSpec, cut_ms: int, live_ms: int) -> tuple[Iterator[Rec], list[Rec]]:
    """The tape before the cut (streamed), and the live minute after it (a list: ~30k events)."""
    live: list[Rec] = []

    def before() -> Iterator[Rec]:
        for rec in _tape(spec):
            if rec[3] < cut_ms:
                yield rec
            elif rec[3] < cut_ms + live_ms:
                live.append(rec)
    return before(), live


def _paced(bootstrap: str, recs: list[Rec], seconds: float, partitions: int = 6) -> None:
    """Produce ``recs`` spread evenly over ``seconds`` (the live feed), partitioned as fundflow's producers do."""
    from kafka import KafkaProducer
    from kafka.partitioner.default import murmur2

    prod = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    t0 = time.monotonic()
    for i, (topic, key, value, ts) in enumerate(recs):
        prod.send(topic, value=value, key=key, partition=(murmur2(key) & 0x7FFFFFFF) % partitions, timestamp_ms=ts)
        if i % 200 == 0:
            time.sleep(max(0.0, t0 + seconds * i / max(1, len(recs)) - time.monotonic()))
    prod.flush()
    prod.close()


def _wait_ready(c: Consume, timeout: float) -> float:
    t0 = time.monotonic()
    while not ("partitions assigned" in c.log_text() and _ready(c)):
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"consumer not ready in {timeout:.0f}s:\n{c.log_tail()}")
        time.sleep(0.05)
    return time.monotonic() - t0


def _lag_zero(c: Consume, timeout: float) -> None:
    t0 = time.monotonic()
    while True:
        st = c.status()
        if st is not None and st.get("consumer_lag_messages") == 0 and st.get("ready"):
            return
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"consumer lag not 0 in {timeout:.0f}s:\n{c.log_tail()}")
        time.sleep(1.0)


def state_topic_size(bootstrap: str) -> dict[str, float]:
    from monitor.bus.kafka import KafkaBus
    from monitor.config import KafkaConfig

    bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap))
    raw = 0
    latest: dict[bytes | None, int] = {}
    for rec in bus.read_partitions(STATE_TOPIC, range(6)):
        size = len(rec.key or b"") + len(rec.value or b"")
        raw += size
        if rec.value is None:
            latest.pop(rec.key, None)
        else:
            latest[rec.key] = size
    bus.close()
    return {"raw_mb": raw / 1e6, "compacted_mb": sum(latest.values()) / 1e6, "records": len(latest)}


def run(spec: TapeSpec, workdir: Path, log: Any, live_seconds: float = LIVE_SECONDS) -> dict[str, Any]:
    h, m = map(int, KILL_AT.split(":"))
    cut_ms = midnight_ms(spec.scenario().end_date) + (h * 60 + m) * 60_000
    broker = start_broker(workdir / "kafka-recovery")
    try:
        before, live = _split(spec, cut_ms, int(live_seconds * 1000))
        t0 = time.monotonic()
        fill(broker.bootstrap, before)
        filled = time.monotonic() - t0
        log(f"recovery: the day up to {KILL_AT} produced in {filled:.0f}s; catching up ...")
        group = "bench-recovery"
        first = Consume(broker.bootstrap, group, workdir / "recovery-1.log")
        try:
            caught_up = _wait_ready(first, 1800)
            log(f"recovery: caught up in {caught_up:.0f}s; the next minute at the tape's rate ({len(live):,} events)")
            t_live = time.monotonic()
            _paced(broker.bootstrap, live, live_seconds)
            log(f"recovery: live minute sent in {time.monotonic() - t_live:.0f}s")
            _lag_zero(first, 300)
            before_kill = state_lines(first.metrics())
            log(f"recovery: applied, {len(before_kill):,} series read; kill -9")
            first.kill()
        finally:
            first.stop()
        second = Consume(broker.bootstrap, group, workdir / "recovery-2.log")
        try:
            ready_s = _wait_ready(second, 600)
            after = state_lines(second.metrics())
            log(f"recovery: restarted process ready in {ready_s:.1f}s")
        finally:
            second.stop()
        size = state_topic_size(broker.bootstrap)
        log("recovery: state topic read")
    finally:
        broker.stop()
    identical = after == before_kill
    if not identical:
        diff = sorted(set(before_kill) ^ set(after))[:10]
        raise BenchError(f"state after recovery differs from before the kill ({len(diff)} lines, first {diff})")
    return {"ready_seconds": ready_s, "series": len(after), "identical": identical, "catch_up_seconds": caught_up,
            "live_events": len(live), "state_topic": size, "fill_seconds": filled}
