"""Feeds the engine from a bus: validate, apply, checkpoint, recover.

Checkpoint (every ``checkpoint_interval_s``, default 30 s): every symbol-day changed since the last
one, open days included, is written to the compacted state topic (consumers.codec: only the changed
parts), flushed, then each owned partition's marker with its replay positions and clocks, flushed,
then offsets are committed. Recovery loads the newest complete checkpoint and replays only the events
after its positions: seconds of a heavy day, not the day since midnight.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from consumers.codec import Marker, PartitionState, Produced, StateWriter, marker_key, read_state
from consumers.engine import Engine
from monitor import heap
from monitor.bus import EVENT_TOPICS, Bus, Consumer, Record, TopicPartition
from monitor.deadletter import deadletter_record
from monitor.events import (
    DEADLETTER_TOPIC,
    KIND_OF_TOPIC,
    STATE_TOPIC,
    TOPICS,
    Rejected,
    SouthboundTick,
    Trade,
    Validator,
)
from monitor.stats import PipelineStats

log = logging.getLogger("fundflow.consumer")
TIMED_TOPICS = (TOPICS["trade"], TOPICS["southbound"])  # the streams whose clocks judge lateness


class ConsumerRunner:
    """One consumer group member: recovers the partitions it is given, applies, checkpoints.

    Guarantees: after a crash at any moment, the state rebuilt from the state topic plus the events
    replayed from the last complete checkpoint's positions equals the state of an uninterrupted run
    (every event applied exactly once); ``ready`` is True only once the member has had its first
    assignment and every assigned partition is recovered and caught up to where it ended at the
    assignment.
    """

    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        validator: Validator,
        group_id: str = "fundflow",
        checkpoint_interval_s: float = 30.0,
        poll_max_records: int = 5000,
        stats: PipelineStats | None = None,
        observe_lag: bool = True,
        housekeeping_interval_s: float = 1.0,
    ) -> None:
        self.bus = bus
        self.engine = engine
        self.validator = validator
        self.group_id = group_id
        self.checkpoint_interval_s = checkpoint_interval_s
        self.housekeeping_interval_s = housekeeping_interval_s
        self.poll_max_records = poll_max_records
        self.observe_lag = observe_lag
        self.stats = stats if stats is not None else PipelineStats()
        self.writer = StateWriter(engine, group_id)
        self.ready = False
        self.connected = False
        self._consumer: Consumer | None = None
        self._pending: list[tuple[str, Any]] = []  # from rebalance callbacks (consumer thread)
        self._pending_lock = threading.Lock()
        self._assigned_unrecovered: set[TopicPartition] = set()
        self._assigned_once = False
        self._positions: dict[TopicPartition, int] = {}  # next offset to read, per owned partition
        # per partition ever owned: below this offset this process has already counted every record, so
        # a replay after a rebalance rebuilds state without counting (or dead-lettering) anything twice
        self._counted_until: dict[TopicPartition, int] = {}
        self._symbol_partition: dict[str, int] = {}
        self._ready_targets: dict[TopicPartition, int] = {}
        self._assign_started: float | None = None
        self.applied_total = 0

    @property
    def positions(self) -> dict[TopicPartition, int]:
        """Next offset to read, per owned partition (what the next checkpoint's markers will say)."""
        return dict(self._positions)

    # -- rebalance: callbacks only note what changed; recovery runs after poll() returns ----
    def _on_assign(self, tps: list[TopicPartition]) -> None:
        # Inside kafka-python's rebalance callback no network calls are safe (they re-enter the
        # coordinator), so the seek to the recovery start happens in _recover, after poll().
        with self._pending_lock:
            self._assigned_unrecovered.update(tps)
            self._pending.append(("joined", None))

    def _recover(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        """Read the state of newly assigned partitions and seek them to their replay start (consumer thread)."""
        started = time.monotonic()
        parts = sorted({p for _, p in tps})
        raw: dict[int, list[tuple[bytes | None, bytes | None]]] = {p: [] for p in parts}
        for rec in self.bus.read_partitions(STATE_TOPIC, parts):
            raw[rec.partition].append((rec.key, rec.value))
        states: dict[int, PartitionState] = {}
        for p in parts:
            try:
                states[p] = read_state(self.group_id, raw[p])
            except (ValueError, KeyError, TypeError) as exc:  # a record this version cannot read: start over
                log.error("state partition %s[%d] unreadable (%s): rebuilding it from the event topics",
                          STATE_TOPIC, p, exc)
                states[p] = PartitionState()
        begin = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        for tp in tps:
            marker = states[tp[1]].marker
            start = marker.positions.get(tp[0]) if marker is not None else None
            if start is None or start < begin[tp]:
                start = begin[tp]  # no checkpoint of it (or its events were deleted): from the beginning
            consumer.seek(tp, start)
            starts[tp] = start
        with self._pending_lock:
            self._pending.append(("assign", (starts, states, ends, started)))

    def _poll(self, consumer: Consumer) -> list[Record]:
        """One poll on the consumer thread; partitions assigned during it are recovered first."""
        records = consumer.poll(100, self.poll_max_records)
        with self._pending_lock:
            fresh, self._assigned_unrecovered = self._assigned_unrecovered, set()
        if fresh:
            owned = consumer.assignment()
            fresh = {tp for tp in fresh if tp in owned}
            if fresh:
                self._recover(consumer, sorted(fresh))
                # records fetched from the committed offset before the seek are read again from the start
                records = [r for r in records if (r.topic, r.partition) not in fresh]
        return records

    def _on_revoke(self, tps: list[TopicPartition]) -> None:
        with self._pending_lock:
            self._assigned_unrecovered.difference_update(tps)
            self._pending.append(("revoke", tps))

    def _handle_pending(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for what, payload in pending:
            if what == "joined":
                self._assigned_once = True
            elif what == "revoke":
                lost = {p for _, p in payload}
                for tp in payload:
                    self._positions.pop(tp, None)
                    self._ready_targets.pop(tp, None)
                owned = {p for _, p in self._positions}
                gone = {s for s, p in self._symbol_partition.items() if p in lost and p not in owned}
                self.engine.drop_symbols(gone)
                self.engine.forget_streams(payload)
                self.writer.forget(gone)
                for s in gone:
                    del self._symbol_partition[s]
                log.info("partitions revoked: %s (%d symbols dropped)", _fmt(payload), len(gone))
            else:
                self._assigned(*payload)

    def _assigned(self, starts: dict[TopicPartition, int], states: dict[int, PartitionState],
                  ends: dict[TopicPartition, int], started: float) -> None:
        loaded = 0
        for p, state in states.items():
            for symbol in self.writer.load(p, state):
                self._symbol_partition[symbol] = p
            loaded += len(state.records)
            if state.marker is not None:
                streams = {topic: (topic, p) for topic in state.marker.stream_clocks}
                self.writer.apply_marker(state.marker, streams)
            if state.orphans:
                log.warning("state partition %s[%d]: %d records of an unfinished checkpoint ignored (rewritten "
                            "at the next one)", STATE_TOPIC, p, sum(len(v) for v in state.orphans.values()))
        for tp, start in starts.items():
            self._positions[tp] = start
            self._ready_targets[tp] = ends.get(tp, 0)
            if tp[0] in TIMED_TOPICS:
                self.engine.expected_streams.add(tp)
        self._assign_started = started
        self.ready = False
        log.info("partitions assigned: %s (%d state records loaded)", _fmt(starts), loaded)

    # -- applying ------------------------------------------------------------------------
    def apply_records(self, records: Iterable[Record]) -> None:
        """Decode, validate and apply a poll's records, with the partition bookkeeping (the per-event path)."""
        engine, validator, stats = self.engine, self.validator, self.stats
        decode, apply, kind_of_topic = validator.decode, engine.apply, KIND_OF_TOPIC
        positions, symbol_partition = self._positions, self._symbol_partition
        now_s = time.time()
        observe = stats.observe_lag if self.observe_lag else None
        n = 0
        counted_until = self._counted_until
        for rec in records:
            topic, partition, offset = rec.topic, rec.partition, rec.offset
            tp = (topic, partition)
            fresh = offset >= counted_until.get(tp, 0)
            if fresh:
                counted_until[tp] = offset + 1
            positions[tp] = offset + 1
            try:
                ev = decode(rec.value or b"", kind_of_topic.get(topic))  # (a null value: bad_json)
                apply(ev, fresh, tp)
            except Rejected as exc:
                if fresh:
                    self.reject(rec.value or b"", f"consumer:{topic}", exc.reason, exc.detail)
                continue
            symbol_partition[ev.symbol] = partition
            if not fresh:
                stats.replayed += 1
                continue
            n += 1
            if observe is not None and (type(ev) is Trade or type(ev) is SouthboundTick):
                lag = now_s - ev.ts_ms / 1000
                observe(lag if lag > 0.0 else 0.0)  # max(0.0, lag) without the call
        if n:
            stats.last_event_wall_s["consumer"] = now_s
            self.applied_total += n

    def reject(self, raw: bytes, source: str, reason: str, detail: str) -> None:
        self.stats.rejected[("consumer", reason)] += 1
        self.bus.produce(DEADLETTER_TOPIC, None, deadletter_record(raw or b"", source, reason, detail))

    # -- checkpoint ----------------------------------------------------------------------
    def checkpoint_records(self) -> tuple[list[Produced], list[Produced], Callable[[bool], None]]:
        """State records and markers for everything changed since the last checkpoint (loop thread).

        Returns (records, markers, done): produce the records, flush, produce the markers, flush, then
        call ``done(True)``; on any failure call ``done(False)`` (the next checkpoint writes the same keys).
        """
        engine = self.engine
        keys = engine.take_updates()
        owned = sorted({p for _, p in self._positions})
        gens = {p: self.writer.next_gen(p) for p in owned}
        records, bumps = self.writer.encode(keys, self._symbol_partition, gens)
        markers: list[Produced] = []
        for p in owned:
            positions = {t: pos for (t, q), pos in self._positions.items() if q == p}
            clocks = {t: c for (t, q), c in ((s, c) for s, c in engine.stream_clocks.items() if isinstance(s, tuple))
                      if q == p}
            symbols = {s for s, q in self._symbol_partition.items() if q == p}
            marker = Marker(gens[p], positions, engine.as_of_ms, clocks, engine.gaps.streams_state(symbols))
            markers.append((p, marker_key(self.group_id, p), marker.to_json()))

        def done(ok: bool) -> None:
            if ok:
                self.writer.commit(bumps, keys, gens)
            else:
                self.writer.failed(keys)

        return records, markers, done

    def _checkpoint(self, consumer: Consumer, records: list[Produced], markers: list[Produced],
                    offsets: dict[TopicPartition, int]) -> None:
        """Persist state, flush, then the markers, flush, then commit (consumer thread)."""
        produce = self.bus.produce
        for p, key, value in records:
            produce(STATE_TOPIC, key, value, partition=p)
        self.bus.flush()
        for p, key, value in markers:
            produce(STATE_TOPIC, key, value, partition=p)
        self.bus.flush()
        consumer.commit(offsets)  # for lag tools; recovery resumes from the markers

    def _progress(self, consumer: Consumer) -> dict[TopicPartition, tuple[int, int]]:
        """(position, end offset) per owned partition (consumer thread)."""
        owned = list(consumer.assignment())
        ends = consumer.end_offsets(owned) if owned else {}
        return {tp: (consumer.position(tp), ends.get(tp, 0)) for tp in owned}

    def prune(self) -> None:
        """The engine's retention; when it let go of whole day curves, the freed heap goes back too."""
        if self.engine.prune():
            heap.release()

    def _check_ready(self) -> None:
        if self.ready or not self._assigned_once:
            return
        with self._pending_lock:
            if self._assigned_unrecovered:
                return
        positions = self._positions
        if all(positions.get(tp, 0) >= target for tp, target in self._ready_targets.items()):
            self.ready = True
            if self._assign_started is not None:
                self.stats.recovery_seconds = time.monotonic() - self._assign_started
                log.info("state recovered in %.2fs; consuming live", self.stats.recovery_seconds)

    # -- the loop ------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event, until_caught_up: bool = False,
                  on_batch: Callable[[], None] | None = None) -> None:
        """Consume until ``stop`` is set (or, with until_caught_up, until nothing is left)."""
        loop = asyncio.get_running_loop()
        ex = ThreadPoolExecutor(1, thread_name_prefix="fundflow-consumer")
        try:
            self._consumer = consumer = await loop.run_in_executor(
                ex, lambda: self.bus.consumer(self.group_id, EVENT_TOPICS, self._on_assign, self._on_revoke))
            self.connected = True
            last_cp = last_hk = time.monotonic()
            idle_polls = 0
            while not stop.is_set():
                records = await loop.run_in_executor(ex, self._poll, consumer)
                self._handle_pending()
                if records:
                    self.apply_records(records)
                    idle_polls = 0
                else:
                    idle_polls += 1
                self._check_ready()
                if on_batch is not None:
                    on_batch()
                now = time.monotonic()
                if now - last_hk >= self.housekeeping_interval_s:
                    self.prune()
                    await self._update_lag(loop, ex, consumer)
                    last_hk = now
                if now - last_cp >= self.checkpoint_interval_s or (until_caught_up and idle_polls):
                    self.prune()
                    await self._checkpoint_async(loop, ex, consumer)
                    last_cp = time.monotonic()
                    if until_caught_up and idle_polls and self.ready:
                        break
            await self._checkpoint_async(loop, ex, consumer)
        finally:
            if self._consumer is not None:
                await loop.run_in_executor(ex, self._consumer.close)
            self.connected = False
            ex.shutdown(wait=False)

    async def _update_lag(self, loop: asyncio.AbstractEventLoop, ex: ThreadPoolExecutor, consumer: Consumer) -> None:
        try:
            progress = await loop.run_in_executor(ex, self._progress, consumer)
        except Exception as exc:  # noqa: BLE001  # whatever the client raises (broker away): lag stays as last seen
            log.debug("lag not updated: %s", exc)
            return
        self.stats.consumer_lag = {tp: max(0, end - pos) for tp, (pos, end) in progress.items()}

    async def _checkpoint_async(self, loop: asyncio.AbstractEventLoop, ex: ThreadPoolExecutor,
                                consumer: Consumer) -> None:
        records, markers, done = self.checkpoint_records()
        offsets = dict(self._positions)
        try:
            await loop.run_in_executor(ex, self._checkpoint, consumer, records, markers, offsets)
        except Exception as exc:  # noqa: BLE001  # whatever the client raises: keep state, retry at the next one
            done(False)
            log.warning("checkpoint failed, will retry: %s", exc)
            return
        done(True)


def _fmt(tps: Iterable[TopicPartition]) -> str:
    parts: dict[str, list[int]] = {}
    for t, p in tps:
        parts.setdefault(t, []).append(p)
    return "; ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(parts.items()))
