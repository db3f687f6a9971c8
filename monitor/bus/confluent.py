"""Kafka bus on confluent-kafka (librdkafka): the optional fast backend (extra ``fast``).

Chosen with ``[kafka] backend = "confluent"`` (or ``FUNDFLOW_KAFKA__BACKEND=confluent``);
kafka-python stays the default. Same contract as :mod:`monitor.bus.kafka`: acks=all
idempotent producer, group consumer with manual commits, records that carry event time as
their Kafka timestamp, and the same murmur2 partition choice so both backends co-partition
identically. librdkafka fetches and parses in its own threads, so the consumer's Python
thread only decodes, validates and applies.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka.partitioner.default import murmur2

from monitor.bus import ALL_TOPICS, AssignCallback, Record
from monitor.bus import TopicPartition as TP
from monitor.bus.kafka import KafkaBus
from monitor.config import KafkaConfig

log = logging.getLogger("fundflow.kafka")
TIMEOUT_S = 10.0


def _client_config(cfg: KafkaConfig) -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": cfg.bootstrap_servers, "client.id": cfg.client_id,
                            "security.protocol": cfg.security_protocol.lower(),
                            "reconnect.backoff.max.ms": 1000}
    pairs = {
        "sasl.mechanisms": cfg.sasl_mechanism,
        "sasl.username": cfg.sasl_username,
        "sasl.password": cfg.sasl_password,
        "ssl.ca.location": cfg.ssl_cafile,
        "ssl.certificate.location": cfg.ssl_certfile,
        "ssl.key.location": cfg.ssl_keyfile,
    }
    conf.update({k: v for k, v in pairs.items() if v})
    return conf


class ConfluentBus:
    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.partitions = cfg.partitions
        self._producer: Producer | None = None
        self._errors: list[Any] = []
        self._lock = threading.Lock()

    def ensure_topics(self, topics: Iterable[str] = ALL_TOPICS) -> None:
        KafkaBus(self.cfg).ensure_topics(topics)  # topic creation is rare: one implementation of it

    def partition_for(self, key: bytes) -> int:
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    # -- producing ---------------------------------------------------------
    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer({**_client_config(self.cfg), "acks": "all", "enable.idempotence": True,
                                       "linger.ms": self.cfg.linger_ms, "batch.size": self.cfg.batch_size,
                                       "delivery.timeout.ms": 120_000})
        return self._producer

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            with self._lock:
                self._errors.append(err)

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None,
                partition: int | None = None) -> None:
        if partition is None and key is not None:
            partition = self.partition_for(key)
        kwargs: dict[str, Any] = {"on_delivery": self._delivered}
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        producer = self.producer
        for _ in range(1000):
            try:
                producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        else:
            raise KafkaException(KafkaError(KafkaError._QUEUE_FULL))
        producer.poll(0)

    def flush(self, timeout_s: float | None = None) -> None:
        if self._producer is not None:
            left = self._producer.flush(-1 if timeout_s is None else timeout_s)
            if left:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{left} record(s) not delivered in time"))
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise KafkaException(KafkaError(KafkaError._FAIL, f"{len(errors)} record(s) not delivered: {errors[0]}"))

    # -- consuming ---------------------------------------------------------
    def consumer(self, group_id: str, topics: Iterable[str], on_assign: AssignCallback | None = None,
                 on_revoke: AssignCallback | None = None) -> ConfluentGroupConsumer:
        return ConfluentGroupConsumer(self, group_id, list(topics), on_assign, on_revoke)

    def read_partitions(self, topic: str, partitions: Iterable[int]) -> Iterator[Record]:
        parts = list(partitions)
        if not parts:
            return
        reader = Consumer({**_client_config(self.cfg), "group.id": f"fundflow-reader-{uuid.uuid4().hex[:8]}",
                           "enable.auto.commit": False, "enable.partition.eof": False})
        try:
            admin = AdminClient(_client_config(self.cfg))
            marks = {}
            for name, spec in (("low", OffsetSpec.earliest()), ("high", OffsetSpec.latest())):
                futures = admin.list_offsets({TopicPartition(topic, p): spec for p in parts},
                                             request_timeout=TIMEOUT_S)
                marks[name] = {tp.partition: f.result(TIMEOUT_S).offset for tp, f in futures.items()}
            ends = {p: marks["high"][p] for p in parts if marks["high"][p] > marks["low"][p]}
            if not ends:
                return
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            pending = dict(ends)
            while pending:
                for m in reader.consume(num_messages=5000, timeout=0.5):
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            raise KafkaException(m.error())
                        continue
                    yield Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1])
                    if m.partition() in pending and m.offset() + 1 >= pending[m.partition()]:
                        del pending[m.partition()]
        finally:
            reader.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None


class ConfluentGroupConsumer:
    def __init__(self, bus: ConfluentBus, group_id: str, topics: list[str], on_assign: AssignCallback | None,
                 on_revoke: AssignCallback | None) -> None:
        self._c = Consumer({
            **_client_config(bus.cfg),
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 3_000,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 4_194_304,
        })
        self._seeked: dict[TP, int] = {}
        self._admin = AdminClient(_client_config(bus.cfg))

        def assigned(consumer: Any, parts: list[TopicPartition]) -> None:
            if on_assign and parts:
                on_assign([(tp.topic, tp.partition) for tp in parts])

        def revoked(consumer: Any, parts: list[TopicPartition]) -> None:
            for tp in parts:
                self._seeked.pop((tp.topic, tp.partition), None)
            if on_revoke and parts:
                on_revoke([(tp.topic, tp.partition) for tp in parts])

        self._c.subscribe(topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        msgs = self._c.consume(num_messages=max_records, timeout=timeout_ms / 1000)
        out: list[Record] = []
        append = out.append
        for m in msgs:
            if m.error() is not None:
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", m.error())
                continue
            append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1]))
        return out

    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self._c.assignment()}

    def commit(self, offsets: dict[TP, int]) -> None:
        if offsets:
            self._c.commit(offsets=[TopicPartition(t, p, off) for (t, p), off in offsets.items()], asynchronous=False)

    def committed(self, tp: TP) -> int | None:
        off = self._c.committed([TopicPartition(*tp)], timeout=TIMEOUT_S)[0].offset
        return off if off >= 0 else None

    def offsets_for_time(self, tps: Iterable[TP], ts_ms: int) -> dict[TP, int | None]:
        found = self._c.offsets_for_times([TopicPartition(t, p, ts_ms) for t, p in tps], timeout=TIMEOUT_S)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in found}

    def seek(self, tp: TP, offset: int) -> None:
        self._seeked[tp] = offset
        try:
            self._c.seek(TopicPartition(tp[0], tp[1], offset))
        except KafkaException:
            # not fetching yet (just assigned): restate the assignment with the start offsets
            self._c.assign([TopicPartition(t, p, self._seeked.get((t, p), OFFSET_BEGINNING))
                            for t, p in sorted(self.assignment())])

    def position(self, tp: TP) -> int:
        off = self._c.position([TopicPartition(*tp)])[0].offset
        if off >= 0:
            return off
        if tp in self._seeked:  # nothing consumed since the seek
            return self._seeked[tp]
        committed = self.committed(tp)
        if committed is not None:
            return committed
        return self.beginning_offsets([tp])[tp]

    def _list_offsets(self, tps: Iterable[TP], spec: OffsetSpec) -> dict[TP, int]:
        # one batched ListOffsets per leader (the per-partition watermark query costs ~0.5 s each)
        wanted = {TopicPartition(t, p): spec for t, p in tps}
        if not wanted:
            return {}
        futures = self._admin.list_offsets(wanted, isolation_level=IsolationLevel.READ_UNCOMMITTED,
                                           request_timeout=TIMEOUT_S)
        return {(tp.topic, tp.partition): fut.result(TIMEOUT_S).offset for tp, fut in futures.items()}

    def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return self._list_offsets(tps, OffsetSpec.earliest())

    def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return self._list_offsets(tps, OffsetSpec.latest())

    def close(self) -> None:
        try:
            self._c.close()
        except Exception:  # closing a consumer whose broker is gone must not mask the real error
            log.debug("consumer close failed", exc_info=True)
