"""Shared pieces for the ingest tests: valid events, a bus whose flush can fail, a publisher."""

from __future__ import annotations

import base64
import threading
from typing import Any

import orjson
import pytest

from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars
from monitor.events import DEADLETTER_TOPIC, Validator
from monitor.ingest.publisher import Publisher
from monitor.ingest.sink import Sink
from monitor.stats import PipelineStats

OPEN_SH = 1757640600000  # 2025-09-12 09:30:00 +08:00: a trading day on XSHG and XHKG
TS = OPEN_SH + 60_000
TS_HK = OPEN_SH + 3_600_000  # 10:30 HK time


def trade(i: int, symbol: str = "513770.SH", ts: int | None = None) -> dict[str, Any]:
    return {"kind": "trade", "symbol": symbol, "ts": TS + i if ts is None else ts, "price": 1.072,
            "volume": 100 + i, "side": "B" if i % 2 else "S", "trade_id": f"t{i}"}


def tick(seq: int, symbol: str = "09988.HK", channel: str = "SH") -> dict[str, Any]:
    return {"kind": "southbound", "symbol": symbol, "ts": TS_HK + seq, "channel": channel,
            "buy_hkd": 1000.0 * seq, "sell_hkd": 10.0, "seq": seq}


_CALENDARS = None


def validator(max_payload_bytes: int = 64 * 1024) -> Validator:
    global _CALENDARS
    if _CALENDARS is None:
        _CALENDARS = default_calendars()
    return Validator(_CALENDARS, 60, max_payload_bytes)


class FlakyBus(MemoryBus):
    """A memory bus whose flush fails while ``down`` is set (produced records are then discarded)."""

    def __init__(self, partitions: int = 3) -> None:
        super().__init__(partitions)
        self.ensure_topics()
        self.down = threading.Event()
        self.unflushed: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.flushes = 0
        self.failed_flushes = 0
        self.lock = threading.Lock()

    def produce(self, topic: str, key: bytes | None, value: bytes, timestamp_ms: int | None = None,
                partition: int | None = None) -> None:
        with self.lock:
            self.unflushed.append((topic, key, value, timestamp_ms))

    def flush(self, timeout_s: float | None = None) -> None:
        with self.lock:
            self.flushes += 1
            pending, self.unflushed = self.unflushed, []
            if self.down.is_set():
                self.failed_flushes += 1
                raise ConnectionError("broker unreachable")
        for topic, key, value, ts in pending:
            MemoryBus.produce(self, topic, key, value, ts)

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.read_partitions(topic, range(self.partitions))]

    def records(self, topic: str) -> list[Any]:
        return list(self.read_partitions(topic, range(self.partitions)))


def dead_letters(bus: MemoryBus) -> list[dict[str, Any]]:
    out = []
    for r in bus.read_partitions(DEADLETTER_TOPIC, range(bus.partitions)):
        doc = orjson.loads(r.value)
        doc["raw"] = base64.b64decode(doc["original"]) if "original" in doc else None
        out.append(doc)
    return out


@pytest.fixture
def bus() -> FlakyBus:
    return FlakyBus()


@pytest.fixture
def stats() -> PipelineStats:
    return PipelineStats()


@pytest.fixture
async def sink(bus: FlakyBus, stats: PipelineStats):
    s = Sink(bus, stats, max_events=1000, batch_max=100, backoff_initial_s=0.01, backoff_max_s=0.05)
    await s.start()
    yield s
    await s.close(timeout=5)


@pytest.fixture
def publisher(bus: FlakyBus, stats: PipelineStats, sink: Sink) -> Publisher:
    return Publisher(bus, validator(), stats, "test", sink)
