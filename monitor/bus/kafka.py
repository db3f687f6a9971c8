"""Kafka bus on kafka-python: acks=all idempotent producer, group consumer, manual commits.

Records carry event time as their Kafka timestamp, so ``offsets_for_times``
finds the start of a trading session for recovery.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from kafka.partitioner.default import murmur2
from kafka.structs import OffsetAndMetadata, TopicPartition

from monitor.bus import ALL_TOPICS, COMPACTED_TOPICS, EVENT_TOPICS, AccessDenied, AssignCallback, Record
from monitor.bus import TopicPartition as TP
from monitor.config import KafkaConfig

log = logging.getLogger("fundflow.kafka")


class _AuthWatch(logging.Filter):
    """Remembers how kafka-python's connections to the brokers were refused; kafka-python only logs it.

    A wrong SCRAM password surfaces from kafka-python as "Unable to bootstrap"
    after its timeout (the broker closes the connection after the final SASL
    message); with this the bus can say the credentials were refused. The
    record is passed on only when the ``kafka`` logger would show it.
    """

    failure: tuple[float, str] | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        exc = next((a for a in args if isinstance(a, BaseException)), None)
        if isinstance(exc, SaslAuthenticationFailedError):
            _AuthWatch.failure = (time.monotonic(), str(exc)[:300])
        elif exc is not None and "Bootstrap connection" in str(record.msg) and "disconnected" in str(exc):
            _AuthWatch.failure = (time.monotonic(), "the broker closed the connection during authentication")
        return logging.getLogger("kafka").isEnabledFor(record.levelno)


def _watch_auth_failures() -> None:
    conn_log = logging.getLogger("kafka.net.manager")
    if not any(isinstance(f, _AuthWatch) for f in conn_log.filters):
        conn_log.addFilter(_AuthWatch())
    if conn_log.level == logging.NOTSET or conn_log.level > logging.WARNING:
        conn_log.setLevel(logging.WARNING)


class KafkaBus:
    def __init__(self, cfg: KafkaConfig) -> None:
        self.cfg = cfg
        self.partitions = cfg.partitions
        self._producer: KafkaProducer | None = None
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        _watch_auth_failures()

    def _refused(self, exc: KafkaTimeoutError) -> AccessDenied | None:
        """The broker refused our credentials in the last minute: the reason behind a bootstrap time-out."""
        seen = _AuthWatch.failure
        if self.cfg.sasl_mechanism and seen is not None and time.monotonic() - seen[0] < 60:
            return AccessDenied(self._denied(f"authentication failed ({seen[1]}; wrong password?)"))
        return None

    # -- admin -------------------------------------------------------------
    def client_options(self) -> dict[str, Any]:
        # kafka-python's default grows the reconnect delay to 30 s: after a broker restart the consumer
        # group and the ingest buffer would wait that long after the broker is back
        return {"bootstrap_servers": self.cfg.bootstrap_servers.split(","), "client_id": self.cfg.client_id,
                "reconnect_backoff_max_ms": 1_000, **self.cfg.client_security()}

    def ensure_topics(self, topics: Iterable[str] = ALL_TOPICS) -> None:
        """Create the missing ``topics`` with the configured replication; warn about weaker existing ones.

        Raises :class:`AccessDenied` when the broker refuses the credentials or
        an ACL hides or protects one of the topics: retrying does not help.
        """
        cfg = self.cfg
        if cfg.min_insync_replicas > cfg.replication_factor:
            raise ValueError(f"[kafka] min_insync_replicas ({cfg.min_insync_replicas}) exceeds replication_factor "
                             f"({cfg.replication_factor}): no acks=all write could ever succeed")
        topics = list(topics)
        try:
            admin = KafkaAdminClient(**self.client_options())
        except SaslAuthenticationFailedError as exc:
            raise AccessDenied(self._denied("authentication failed", exc)) from None
        except KafkaTimeoutError as exc:
            raise (self._refused(exc) or exc) from None
        try:
            found = {t["name"]: t for t in admin.describe_topics(topics)}
            denied = [n for n in topics if found.get(n, {}).get("error_code") == TopicAuthorizationFailedError.errno]
            if denied:
                raise AccessDenied(self._denied(f"not authorized for topic(s) {', '.join(denied)}"))
            existing = [n for n in topics if found.get(n, {}).get("error_code") == 0]
            self._check_existing(admin, [found[n] for n in existing])
            wanted = [NewTopic(n, self.partitions, cfg.replication_factor, topic_configs=self.topic_configs(n))
                      for n in topics if n not in existing]
            if wanted:
                try:
                    admin.create_topics(wanted)
                except TopicAlreadyExistsError:
                    pass
                except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
                    raise AccessDenied(self._denied("not authorized to create topics "
                                                    + ", ".join(t.name for t in wanted), exc)) from None
                log.info("created topics %s (replication factor %d, min.insync.replicas %d)",
                         ", ".join(t.name for t in wanted), cfg.replication_factor, cfg.min_insync_replicas,
                         extra={"topics": [t.name for t in wanted]})
        finally:
            admin.close()

    def topic_configs(self, name: str) -> dict[str, str]:
        """The configs a topic is created with: ``[kafka] topic_configs`` under fundflow's own."""
        configs = dict(self.cfg.topic_configs)
        configs["min.insync.replicas"] = str(self.cfg.min_insync_replicas)
        if name in COMPACTED_TOPICS:
            configs["cleanup.policy"] = "compact"
        elif name in EVENT_TOPICS:
            configs.setdefault("retention.ms", str(self.cfg.retention_ms))
        return configs

    def _check_existing(self, admin: KafkaAdminClient, topics: list[dict[str, Any]]) -> None:
        """Warn when a topic found is replicated less (or with a lower min ISR) than configured."""
        want_rf, want_isr = self.cfg.replication_factor, self.cfg.min_insync_replicas
        for t in topics:
            rf = min((len(p["replica_nodes"]) for p in t["partitions"]), default=0)
            if rf < want_rf:
                log.warning("topic %s has replication factor %d, lower than the configured %d: a broker loss can "
                            "lose or block its data (reassign its partitions to raise it)", t["name"], rf, want_rf,
                            extra={"topic": t["name"], "replication_factor": rf, "configured": want_rf})
        if not topics or want_isr <= 1:
            return
        try:
            resources = [ConfigResource(ConfigResourceType.TOPIC, t["name"], {"min.insync.replicas": None})
                         for t in topics]
            for by_name in admin.describe_configs(resources, config_filter="all").values():
                for name, entries in by_name.items():
                    entry = entries.get("min.insync.replicas")
                    value = int(entry["value"] if isinstance(entry, dict) else entry)
                    if value < want_isr:
                        log.warning("topic %s has min.insync.replicas %d, lower than the configured %d",
                                    name, value, want_isr,
                                    extra={"topic": name, "min_insync_replicas": value, "configured": want_isr})
        except Exception as exc:  # noqa: BLE001 - a check only (DESCRIBE_CONFIGS may not be granted)
            log.debug("min.insync.replicas of existing topics not checked: %r", exc)

    def _denied(self, what: str, exc: BaseException | None = None) -> str:
        """A message naming the user and mechanism, never the password."""
        cfg = self.cfg
        who = f"user {cfg.sasl_username!r} ({cfg.security_protocol} {cfg.sasl_mechanism})" if cfg.sasl_username \
            else f"this client ({cfg.security_protocol})"
        reason = f": {type(exc).__name__}" if exc is not None else ""
        return f"Kafka at {cfg.bootstrap_servers} refused {who}: {what}{reason}; check the credentials and ACLs"

    def partition_for(self, key: bytes) -> int:
        # the same murmur2 choice as kafka-python's DefaultPartitioner
        return (murmur2(key) & 0x7FFFFFFF) % self.partitions

    # -- producing ---------------------------------------------------------
    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            try:
                self._producer = self._new_producer()
            except KafkaTimeoutError as exc:
                raise (self._refused(exc) or exc) from None
        return self._producer

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            acks="all",
            retries=2**31 - 1,
            enable_idempotence=True,
            linger_ms=self.cfg.linger_ms,
            batch_size=self.cfg.batch_size,
            max_block_ms=10_000,
            delivery_timeout_ms=120_000,
            **self.client_options(),
        )

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def produce(self, topic: str, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None,
                partition: int | None = None) -> None:
        if partition is None and key is not None:
            partition = self.partition_for(key)
        try:
            fut = self.producer.send(topic, value=value, key=key, timestamp_ms=timestamp_ms, partition=partition)
        except KafkaTimeoutError:
            raise  # metadata not available within max_block_ms: the caller retries
        except KafkaError as exc:  # refused before sending (e.g. record too large): reported by the next flush
            self._failed(exc)
            return
        fut.add_errback(self._failed)

    def flush(self, timeout_s: float | None = None) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=timeout_s)
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise KafkaError(f"{len(errors)} record(s) not delivered: {errors[0]!r}")

    # -- consuming ---------------------------------------------------------
    def consumer(self, group_id: str, topics: Iterable[str], on_assign: AssignCallback | None = None,
                 on_revoke: AssignCallback | None = None) -> KafkaGroupConsumer:
        return KafkaGroupConsumer(self, group_id, list(topics), on_assign, on_revoke)

    def read_partitions(self, topic: str, partitions: Iterable[int]) -> Iterator[Record]:
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return
        reader = KafkaConsumer(group_id=None, enable_auto_commit=False, **self.client_options())
        try:
            reader.assign(tps)
            reader.seek_to_beginning(*tps)
            ends = list_offsets(reader, "end_offsets", tps)
            pending = {tp for tp in tps if ends[tp] > reader.position(tp)}
            while pending:
                for recs in reader.poll(timeout_ms=500, max_records=5000).values():
                    yield from recs
                for tp in list(pending):
                    if reader.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            reader.close()

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
            self._producer = None


OFFSETS_ATTEMPT_MS = 2_000  # one ListOffsets attempt; normally answered in milliseconds
OFFSETS_DEADLINE_S = 30.0  # all attempts: kafka-python's own default for one call


def list_offsets(consumer: KafkaConsumer, which: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """``consumer.beginning_offsets`` / ``end_offsets`` that survive a leader moving to another live broker.

    kafka-python sends ListOffsets to the leader it has cached; when that broker is alive but no longer
    the leader it answers NOT_LEADER_OR_FOLLOWER, and kafka-python re-sends to the same broker in a
    tight loop without refreshing its metadata until the whole timeout (30 s) is spent. That happens
    whenever leadership moves between running brokers: a preferred-leader election after a broker
    comes back, a controlled shutdown. Short attempts with a metadata refresh between them bound the
    stall to about one attempt; the total wait stays ``OFFSETS_DEADLINE_S``.
    """
    call = getattr(consumer, which)
    deadline = time.monotonic() + OFFSETS_DEADLINE_S
    while True:
        left_ms = int((deadline - time.monotonic()) * 1000)
        try:
            return call(tps, timeout_ms=max(1, min(OFFSETS_ATTEMPT_MS, left_ms)))
        except KafkaTimeoutError:
            if left_ms <= OFFSETS_ATTEMPT_MS:
                raise
            log.debug("%s of %d partition(s) timed out; refreshing metadata and retrying", which, len(tps))
            _refresh_metadata(consumer, OFFSETS_ATTEMPT_MS)


def _refresh_metadata(consumer: KafkaConsumer, timeout_ms: int) -> None:
    """Fetch fresh cluster metadata (leaders) and wait for it, at most ``timeout_ms``.

    kafka-python has no public call for this with a bound (``topics()`` waits without one), so this
    uses its cluster and network objects when they are there (kafka-python 3) and does nothing otherwise.
    """
    cluster, net, manager = (getattr(consumer, a, None) for a in ("_cluster", "_net", "_manager"))
    if cluster is None or net is None or manager is None:
        return
    try:
        net.run(manager.wait_for, cluster.request_update(), timeout_ms)
    except Exception as exc:  # noqa: BLE001 - the next attempt reports what matters
        log.debug("metadata refresh failed: %r", exc)


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_assign: AssignCallback | None, on_revoke: AssignCallback | None) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def on_partitions_revoked(self, revoked: Any) -> None:
        if self.on_revoke and revoked:
            self.on_revoke([(tp.topic, tp.partition) for tp in revoked])

    def on_partitions_assigned(self, assigned: Any) -> None:
        if self.on_assign and assigned:
            self.on_assign([(tp.topic, tp.partition) for tp in assigned])


class KafkaGroupConsumer:
    def __init__(self, bus: KafkaBus, group_id: str, topics: list[str], on_assign: AssignCallback | None,
                 on_revoke: AssignCallback | None) -> None:
        self._c = KafkaConsumer(
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5000,
            fetch_max_bytes=52_428_800,
            max_partition_fetch_bytes=4_194_304,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            **bus.client_options(),
        )
        self._c.subscribe(topics, listener=_Listener(on_assign, on_revoke))

    def poll(self, timeout_ms: int, max_records: int) -> list[Record]:
        batches = self._c.poll(timeout_ms=timeout_ms, max_records=max_records)
        if not batches:
            return []
        if len(batches) == 1:
            return next(iter(batches.values()))  # kafka-python's ConsumerRecord has Record's fields
        return [r for recs in batches.values() for r in recs]

    def assignment(self) -> set[TP]:
        return {(tp.topic, tp.partition) for tp in self._c.assignment()}

    def commit(self, offsets: dict[TP, int]) -> None:
        if offsets:
            self._c.commit({TopicPartition(*tp): OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})

    def committed(self, tp: TP) -> int | None:
        return self._c.committed(TopicPartition(*tp))

    def offsets_for_time(self, tps: Iterable[TP], ts_ms: int) -> dict[TP, int | None]:
        found = self._c.offsets_for_times({TopicPartition(*tp): ts_ms for tp in tps})
        return {(tp.topic, tp.partition): (o.offset if o is not None else None) for tp, o in found.items()}

    def seek(self, tp: TP, offset: int) -> None:
        self._c.seek(TopicPartition(*tp), offset)

    def position(self, tp: TP) -> int:
        return self._c.position(TopicPartition(*tp))

    def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        found = list_offsets(self._c, "beginning_offsets", [TopicPartition(*t) for t in tps])
        return {(tp.topic, tp.partition): o for tp, o in found.items()}

    def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        found = list_offsets(self._c, "end_offsets", [TopicPartition(*t) for t in tps])
        return {(tp.topic, tp.partition): o for tp, o in found.items()}

    def close(self) -> None:
        try:
            self._c.close(autocommit=False)
        except Exception:  # closing a consumer whose broker is gone must not mask the real error
            log.debug("consumer close failed", exc_info=True)
