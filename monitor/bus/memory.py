"""In-process bus: the embedded default for `fundflow demo` and `fundflow replay`.

Partitioned append-only logs with committed offsets per group, so the
consumer code path (assign, seek by time, commit) is the same as on Kafka.
One consumer per group owns every partition. A poll merges the partitions
by record timestamp (each partition's order kept), so a replayed tape is
consumed in event-time order and only truly late events count as late.
"""

from __future__ import annotations

import bisect
import heapq
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from operator import attrgetter

from monitor.bus import ALL_TOPICS, AssignCallback, Record, TopicPartition


class _Log:
    __slots__ = ("records", "max_ts")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.max_ts: list[int] = []  # running max of timestamps: the time index, as Kafka keeps one


class MemoryBus:
    def __init__(self, partitions: int = 6) -> None:
        self.partitions = partitions
        self._logs: dict[TopicPartition, _Log] = {}
        self._committed: dict[tuple[str, TopicPartition], int] = {}
        self._cond = threading.Condition()
        self._waiting = 0  # consumers blocked in poll (notify only then: it is costly)

    def ensure_topics(self, topics: Iterable[str] = ALL_TOPICS) -> None:
        for topic in topics:
            self._topic(topic)

    def _topic(self, topic: str) -> None:
        for p in range(self.partitions):
            self._logs.setdefault((topic, p), _Log())

    def partition_for(self, key: bytes) -> int:
        return zlib.crc32(key) % self.partitions

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None,
                partition: int | None = None) -> None:
        if partition is None:
            partition = self.partition_for(key) if key is not None else 0
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        with self._cond:
            log = self._logs.get((topic, partition))
            if log is None:
                self._topic(topic)
                log = self._logs[(topic, partition)]
            log.records.append(Record(topic, partition, len(log.records), key, value, ts))
            log.max_ts.append(max(ts, log.max_ts[-1]) if log.max_ts else ts)
            if self._waiting:
                self._cond.notify_all()

    def flush(self, timeout_s: float | None = None) -> None:
        return None

    def consumer(self, group_id: str, topics: Iterable[str], on_assign: AssignCallback | None = None,
                 on_revoke: AssignCallback | None = None) -> MemoryConsumer:
        return MemoryConsumer(self, group_id, list(topics), on_assign)

    def read_partitions(self, topic: str, partitions: Iterable[int]) -> Iterator[Record]:
        for p in partitions:
            log = self._logs.get((topic, p))
            if log is not None:
                yield from list(log.records)

    def end_offset(self, tp: TopicPartition) -> int:
        log = self._logs.get(tp)
        return len(log.records) if log else 0

    def close(self) -> None:
        return None


class MemoryConsumer:
    def __init__(self, bus: MemoryBus, group_id: str, topics: list[str], on_assign: AssignCallback | None) -> None:
        self.bus = bus
        self.group_id = group_id
        for t in topics:
            bus._topic(t)
        self._assigned = [(t, p) for t in topics for p in range(bus.partitions)]
        self._positions = {tp: bus._committed.get((group_id, tp), 0) for tp in self._assigned}
        self._on_assign = on_assign
        self._announced = False

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        if not self._announced:
            self._announced = True
            if self._on_assign:
                self._on_assign(list(self._assigned))
        deadline = time.monotonic() + timeout_ms / 1000
        bus = self.bus
        with bus._cond:
            while True:
                slices = []
                for tp in self._assigned:
                    pos = self._positions[tp]
                    recs = bus._logs[tp].records
                    if pos < len(recs):
                        slices.append(recs[pos:pos + max_records])
                if slices:
                    out = list(_take(heapq.merge(*slices, key=_TS), max_records)) if len(slices) > 1 else slices[0]
                    for rec in out:
                        self._positions[(rec.topic, rec.partition)] = rec.offset + 1
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                bus._waiting += 1
                try:
                    bus._cond.wait(left)
                finally:
                    bus._waiting -= 1

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, off in offsets.items():
            self.bus._committed[(self.group_id, tp)] = off

    def committed(self, tp: TopicPartition) -> int | None:
        return self.bus._committed.get((self.group_id, tp))

    def offsets_for_time(self, tps: Iterable[TopicPartition], ts_ms: int) -> dict[TopicPartition, int | None]:
        out: dict[TopicPartition, int | None] = {}
        for tp in tps:
            index = self.bus._logs[tp].max_ts
            i = bisect.bisect_left(index, ts_ms)
            out[tp] = i if i < len(index) else None
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.bus.end_offset(tp) for tp in tps}

    def close(self) -> None:
        return None


_TS = attrgetter("timestamp")


def _take(it: Iterator[Record], n: int) -> Iterator[Record]:
    for i, rec in enumerate(it):
        if i >= n:
            return
        yield rec
