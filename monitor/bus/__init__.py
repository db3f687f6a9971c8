"""The message bus: one small interface, an in-memory and a Kafka implementation.

This module is the interface only; the implementations import it, and
:func:`monitor.bus.factory.make_bus` picks one, so the imports run one way.

Calls are synchronous (kafka-python is); async code runs them in an executor.
A record exposes the same attribute names as kafka-python's ConsumerRecord so
the Kafka implementation hands its records through without copying.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from monitor.events import DEADLETTER_TOPIC, STATE_TOPIC, TOPICS

TopicPartition = tuple[str, int]
AssignCallback = Callable[[list[TopicPartition]], None]

EVENT_TOPICS = tuple(TOPICS.values())
COMPACTED_TOPICS = (STATE_TOPIC,)
ALL_TOPICS = EVENT_TOPICS + (DEADLETTER_TOPIC, STATE_TOPIC)
INGEST_TOPICS = EVENT_TOPICS + (DEADLETTER_TOPIC,)  # what an ingestor writes (and may see, under ACLs)


class AccessDenied(RuntimeError):
    """The broker refused this client: bad credentials, or an ACL denies the operation (not retried)."""


@dataclass(slots=True, frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None  # None: a tombstone (compacted topics)
    timestamp: int  # epoch ms (event time: producers set it)


class Consumer(Protocol):
    """A group member: partitions come and go through the callbacks, invoked inside poll()."""

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Store next-offset-to-read per partition for the group."""

    def committed(self, tp: TopicPartition) -> int | None: ...

    def offsets_for_time(self, tps: Iterable[TopicPartition], ts_ms: int) -> dict[TopicPartition, int | None]:
        """Earliest offset whose timestamp is >= ts_ms (None: no such record yet)."""

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    def position(self, tp: TopicPartition) -> int: ...

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    def close(self) -> None: ...


class Bus(Protocol):
    partitions: int

    def ensure_topics(self, topics: Iterable[str] = ALL_TOPICS) -> None:
        """Create the event, dead-letter and (compacted) state topics when missing."""

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None,
                partition: int | None = None) -> None: ...

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until everything produced so far is acknowledged (raises on failure)."""

    def consumer(self, group_id: str, topics: Iterable[str], on_assign: AssignCallback | None = None,
                 on_revoke: AssignCallback | None = None) -> Consumer: ...

    def read_partitions(self, topic: str, partitions: Iterable[int]) -> Iterator[Record]:
        """Everything currently in these partitions, from the beginning (no group)."""

    def partition_for(self, key: bytes) -> int:
        """The partition a keyed record lands in, so related topics can be co-partitioned."""

    def close(self) -> None: ...
