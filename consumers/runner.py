"""Feeds the engine from a bus: validate, apply, checkpoint, recover.

Checkpoint (every ``commit_interval_s``): closed-day aggregates that changed
are written to the compacted state topic, with the partition's replay start
and clock in a marker record, flushed, and only then are offsets committed.
So whatever a consumer has committed can be rebuilt: load the aggregates and
the marker, replay from min(marker start, committed offset), and skip events
a loaded aggregate already covers.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable

import orjson

from consumers.engine import Engine
from monitor.bus import EVENT_TOPICS, Bus, Consumer, Record, TopicPartition
from monitor.calendars import local_date, midnight_ms
from monitor.stats import PipelineStats
from monitor.events import DATE_KINDS, DEADLETTER_TOPIC, KIND_OF_TOPIC, STATE_TOPIC, Rejected, Validator

log = logging.getLogger("fundflow.consumer")
MARKER = "__checkpoint__"
WINDOW_MARGIN_MS = 3_600_000  # the widest intraday window


MAX_DEADLETTER_ORIGINAL = 64 * 1024  # bytes of the original kept in a dead letter


def deadletter_record(raw: bytes, source: str, reason: str, detail: str) -> bytes:
    """The dead-letter payload: original bytes (base64), where it came from and why.

    At most the first 64 KiB of the original are kept (``original_bytes`` is its full size), so a
    dead letter always fits in a Kafka record: a 2 MB payload must not turn into a letter the broker
    refuses (the ingest sink would retry it forever; the consumer's produce would raise).
    """
    doc = {"original": base64.b64encode(raw[:MAX_DEADLETTER_ORIGINAL]).decode(), "source": source, "reason": reason,
           "detail": detail, "ts": int(time.time() * 1000), "original_bytes": len(raw)}
    if len(raw) > MAX_DEADLETTER_ORIGINAL:
        doc["truncated"] = True
    return orjson.dumps(doc)


class ConsumerRunner:
    def __init__(
        self,
        bus: Bus,
        engine: Engine,
        validator: Validator,
        group_id: str = "fundflow",
        commit_interval_s: float = 1.0,
        poll_max_records: int = 5000,
        session_margin_ms: int = 3_600_000,
        stats: PipelineStats | None = None,
        observe_lag: bool = True,
    ) -> None:
        self.bus = bus
        self.engine = engine
        self.validator = validator
        self.group_id = group_id
        self.commit_interval_s = commit_interval_s
        self.poll_max_records = poll_max_records
        self.replay_margin_ms = session_margin_ms + WINDOW_MARGIN_MS
        engine.snapshot_hold_ms = self.replay_margin_ms  # events up to close + margin, in windows 1h more
        self.observe_lag = observe_lag
        self.stats = stats if stats is not None else PipelineStats()
        self.ready = False
        self.connected = False
        self._consumer: Consumer | None = None
        self._pending: list[tuple[str, Any]] = []  # from rebalance callbacks (consumer thread)
        self._pending_lock = threading.Lock()
        self._assigned_unrecovered: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}  # next offset to read, per owned partition
        # per partition ever owned: below this offset this process has already counted every record, so
        # a replay after a rebalance rebuilds state without counting (or dead-lettering) anything twice
        self._counted_until: dict[TopicPartition, int] = {}
        self._symbol_partition: dict[str, int] = {}
        self._covered: dict[tuple[str, str], dict[str, int]] = {}  # (symbol, iso date) -> topic -> offset
        self._cover_until: dict[TopicPartition, int] = {}  # below this offset an event may be covered
        self._ready_targets: dict[TopicPartition, int] = {}
        self._assign_started: float | None = None
        self.applied_total = 0

    # -- rebalance: callbacks only note what changed; recovery runs after poll() returns ----
    def _on_assign(self, tps: list[TopicPartition]) -> None:
        # Inside kafka-python's rebalance callback no network calls are safe (they re-enter the
        # coordinator), so the seek to the recovery start happens in _recover, after poll().
        with self._pending_lock:
            self._assigned_unrecovered.update(tps)

    def _recover(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        """Load closed days and seek newly assigned partitions to their replay start (consumer thread)."""
        started = time.monotonic()
        parts = sorted({p for _, p in tps})
        records, markers = [], {}
        for rec in self.bus.read_partitions(STATE_TOPIC, parts):
            if rec.value is None:
                continue
            try:
                data = orjson.loads(rec.value)
            except orjson.JSONDecodeError:
                log.warning("unreadable state record at %s[%d]@%d skipped", STATE_TOPIC, rec.partition, rec.offset)
                continue
            if data.get("symbol") == MARKER:
                markers[rec.partition] = data
            else:
                records.append(data)
        start_ms = {p: markers[p]["replay_from_ms"] for p in markers}
        begin = consumer.beginning_offsets(tps)
        ends = consumer.end_offsets(tps)
        starts: dict[TopicPartition, int] = {}
        for tp in tps:
            committed = consumer.committed(tp)
            start = None
            if tp[1] in start_ms:
                start = consumer.offsets_for_time([tp], start_ms[tp[1]])[tp]
                if start is None:
                    start = ends[tp]
            if start is None:
                start = begin[tp]
            if committed is not None:
                start = min(start, committed)
            consumer.seek(tp, start)
            starts[tp] = start
        with self._pending_lock:
            self._pending.append(("assign", (starts, records, markers, ends, started)))

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
            if what == "revoke":
                lost = {p for _, p in payload}
                for tp in payload:
                    self._positions.pop(tp, None)
                    self._ready_targets.pop(tp, None)
                    self._cover_until.pop(tp, None)
                owned = {p for _, p in self._positions}
                gone = {s for s, p in self._symbol_partition.items() if p in lost and p not in owned}
                self.engine.drop_symbols(gone)
                for s in gone:
                    del self._symbol_partition[s]
                self._covered = {k: v for k, v in self._covered.items() if k[0] not in gone}
                log.info("partitions revoked: %s (%d symbols dropped)", _fmt(payload), len(gone))
            else:
                starts, records, markers, ends, started = payload
                for data in records:
                    self.engine.import_day(data)
                    p = data["partition"]
                    self._symbol_partition[data["symbol"]] = p
                    self._remember_cover(data["symbol"], data["date"], p, data.get("covered", {}))
                for m in markers.values():
                    if m.get("as_of_ms") is not None:
                        self.engine.as_of_ms = max(self.engine.as_of_ms or m["as_of_ms"], m["as_of_ms"])
                for tp, start in starts.items():
                    self._positions[tp] = start
                    self._ready_targets[tp] = ends.get(tp, 0)
                self._assign_started = started
                self.ready = False
                log.info("partitions assigned: %s (%d closed days loaded)", _fmt(starts), len(records))

    def _remember_cover(self, symbol: str, date: str, partition: int, covered: dict[str, int]) -> None:
        self._covered[(symbol, date)] = covered
        for topic, off in covered.items():
            tp = (topic, partition)
            if off > self._cover_until.get(tp, -1):
                self._cover_until[tp] = off

    # -- applying ------------------------------------------------------------------------
    def apply_records(self, records: Iterable[Record]) -> None:
        engine, validator, stats = self.engine, self.validator, self.stats
        positions, symbol_partition, covered = self._positions, self._symbol_partition, self._covered
        cover_until = self._cover_until
        now_s = time.time()
        observe = stats.observe_lag if self.observe_lag else None
        n = 0
        counted_until = self._counted_until
        for rec in records:
            topic = rec.topic
            tp = (topic, rec.partition)
            fresh = rec.offset >= counted_until.get(tp, 0)
            if fresh:
                counted_until[tp] = rec.offset + 1
            try:
                ev = validator.decode(rec.value, KIND_OF_TOPIC.get(topic))
            except Rejected as exc:
                if fresh:
                    self.reject(rec.value, f"consumer:{topic}", exc.reason, exc.detail)
                positions[tp] = rec.offset + 1
                continue
            symbol = ev.symbol
            if cover_until and rec.offset < cover_until.get(tp, -1):
                day = ev.date if ev.kind in DATE_KINDS else local_date(ev.ts_ms)  # type: ignore[union-attr]
                cov = covered.get((symbol, day.isoformat()))
                if cov is not None and rec.offset < cov.get(topic, -1):
                    positions[tp] = rec.offset + 1
                    continue  # already inside a loaded closed-day aggregate
            engine.apply(ev, fresh)
            symbol_partition[symbol] = rec.partition
            positions[tp] = rec.offset + 1
            if not fresh:
                stats.replayed += 1
                continue
            n += 1
            if observe is not None and ev.kind in ("trade", "southbound"):
                observe(max(0.0, now_s - ev.ts_ms / 1000))  # type: ignore[union-attr]
        if n:
            stats.last_event_wall_s["consumer"] = now_s
            self.applied_total += n

    def reject(self, raw: bytes, source: str, reason: str, detail: str) -> None:
        self.stats.rejected[("consumer", reason)] += 1
        self.bus.produce(DEADLETTER_TOPIC, None, deadletter_record(raw or b"", source, reason, detail))

    # -- checkpoint ----------------------------------------------------------------------
    def _snapshot_payloads(self) -> tuple[list[tuple[int, bytes, bytes]], list[Any]]:
        """Closed-day aggregates and per-partition markers to persist (loop thread)."""
        engine = self.engine
        out = []
        keys = engine.take_closed_updates()
        by_partition: dict[int, dict[str, int]] = {}
        for (topic, p), pos in self._positions.items():
            if pos >= 0:
                by_partition.setdefault(p, {})[topic] = pos
        for symbol, day in keys:
            p = self._symbol_partition.get(symbol)
            if p is None:
                continue
            rec = engine.export_day(symbol, day)
            rec["partition"] = p
            rec["covered"] = by_partition.get(p, {})
            out.append((p, f"{symbol}|{rec['date']}".encode(), orjson.dumps(rec)))
        now = engine.now_ms()
        open_dates = {p: [] for p in {p for _, p in self._positions}}  # type: dict[int, list]
        for symbol, day in engine.modified:
            p = self._symbol_partition.get(symbol)
            if p in open_dates:
                open_dates[p].append(day)
        for p, dates in open_dates.items():
            if now is not None:
                dates.append(local_date(now))
            if not dates:
                continue
            start = midnight_ms(min(dates)) - self.replay_margin_ms
            marker = {"symbol": MARKER, "partition": p, "replay_from_ms": start, "as_of_ms": engine.as_of_ms}
            out.append((p, f"{MARKER}|{p}".encode(), orjson.dumps(marker)))
        return out, keys

    def _checkpoint(self, consumer: Consumer, payloads: list[tuple[int, bytes, bytes]],
                    offsets: dict[TopicPartition, int]) -> dict[TopicPartition, tuple[int, int]]:
        """Persist aggregates, flush, then commit; returns (position, end offset) per owned partition."""
        for p, key, value in payloads:
            self.bus.produce(STATE_TOPIC, key, value, partition=p)
        self.bus.flush()
        consumer.commit(offsets)
        owned = list(consumer.assignment())
        ends = consumer.end_offsets(owned) if owned else {}
        return {tp: (consumer.position(tp), ends.get(tp, 0)) for tp in owned}

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
            last_cp = time.monotonic()
            idle_polls = 0
            while not stop.is_set():
                records = await loop.run_in_executor(ex, self._poll, consumer)
                self._handle_pending()
                if records:
                    self.apply_records(records)
                    idle_polls = 0
                else:
                    idle_polls += 1
                if on_batch is not None:
                    on_batch()
                if time.monotonic() - last_cp >= self.commit_interval_s or (until_caught_up and idle_polls):
                    await self._checkpoint_async(loop, ex, consumer)
                    last_cp = time.monotonic()
                    self.engine.prune()
                    if until_caught_up and idle_polls and self.ready:
                        break
            await self._checkpoint_async(loop, ex, consumer)
        finally:
            if self._consumer is not None:
                await loop.run_in_executor(ex, self._consumer.close)
            self.connected = False
            ex.shutdown(wait=False)

    async def _checkpoint_async(self, loop: asyncio.AbstractEventLoop, ex: ThreadPoolExecutor, consumer: Consumer) -> None:
        payloads, keys = self._snapshot_payloads()
        offsets = dict(self._positions)
        try:
            progress = await loop.run_in_executor(ex, self._checkpoint, consumer, payloads, offsets)
        except Exception as exc:  # broker away: keep state, retry at the next checkpoint
            self.engine.modified.update(keys)
            log.warning("checkpoint failed, will retry: %s", exc)
            return
        self.stats.consumer_lag = {tp: max(0, end - pos) for tp, (pos, end) in progress.items()}
        if not self.ready and all(progress[tp][0] >= t for tp, t in self._ready_targets.items() if tp in progress):
            self.ready = True
            if self._assign_started is not None:
                self.stats.recovery_seconds = time.monotonic() - self._assign_started
                log.info("state recovered in %.2fs; consuming live", self.stats.recovery_seconds)


def _fmt(tps: Iterable[TopicPartition]) -> str:
    parts: dict[str, list[int]] = {}
    for t, p in tps:
        parts.setdefault(t, []).append(p)
    return "; ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(parts.items()))
