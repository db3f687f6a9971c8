"""The edge: validate an input, then produce it keyed by symbol with event time as its timestamp.

Rejected input is dead-lettered with its reason and counted; it never raises.

Two ways out:

- the synchronous ``publish_obj`` / ``publish_raw`` produce straight to the bus
  (the embedded memory bus of ``fundflow demo`` and ``fundflow replay``);
- the ``async`` ``apublish_*`` methods, used by the live sources, hand records
  to the :class:`~monitor.ingest.sink.Sink` (bounded buffer, retries,
  back-pressure) when the publisher has one, else produce straight away.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from monitor.bus import Bus
from monitor.deadletter import deadletter_record
from monitor.events import (
    DEADLETTER_TOPIC,
    TOPICS,
    Bar,
    Event,
    Rejected,
    SouthboundDaily,
    Units,
    Validator,
    encode,
)
from monitor.ingest.sink import OutRecord, Sink
from monitor.stats import PipelineStats

MAX_BATCH_BYTES = 8 * 1024 * 1024  # a JSON array payload (MQTT, WebSocket, push) may be this large
MAX_REPORTED_ERRORS = 100


@dataclass
class BatchResult:
    """What became of the values of one payload or body."""

    accepted: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)  # {"index", "reason", "detail"}, capped

    def add_error(self, index: int, reason: str, detail: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"index": index, "reason": reason, "detail": detail})

    def reason_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.errors:
            out[e["reason"]] = out.get(e["reason"], 0) + 1
        return out


def event_key(ev: Event) -> bytes:
    """The record key (and so the partition): the symbol; a quota record's is its channel's stream key."""
    return ev.symbol.encode()


class _Countdown:
    """Calls ``done`` once, after ``n`` calls (one per record of a payload)."""

    __slots__ = ("n", "done")

    def __init__(self, n: int, done: Callable[[], None]) -> None:
        self.n = n
        self.done = done

    def __call__(self) -> None:
        self.n -= 1
        if self.n == 0:
            self.done()


class Publisher:
    def __init__(self, bus: Bus, validator: Validator, stats: PipelineStats, source: str,
                 sink: Sink | None = None) -> None:
        self.bus = bus
        self.validator = validator
        self.stats = stats
        self.source = source
        self.sink = sink

    def event_time_ms(self, ev: Event) -> int:
        """Kafka timestamp: the event time, or the session close for date-only events."""
        ts = getattr(ev, "ts_ms", None)
        if ts is not None:
            return ts
        assert isinstance(ev, (Units, SouthboundDaily, Bar))  # no ts_ms: a dated kind
        cals = self.validator.calendars
        cal = cals["SB"] if ev.kind == "southbound_daily" else cals.for_symbol(ev.symbol)
        session = cal.session(ev.date)
        assert session is not None  # validated: a trading day
        return session.close_ms

    # -- checking and records ----------------------------------------------------------
    def check_obj(self, obj: Any, raw: bytes | None = None, kind: str | None = None) -> Event:
        """Validate a decoded JSON value; raises Rejected."""
        if raw is not None and len(raw) > self.validator.max_payload_bytes:
            raise Rejected("too_large", f"payload of {len(raw)} bytes exceeds {self.validator.max_payload_bytes}")
        return self.validator.validate(obj, kind)

    def event_record(self, ev: Event, on_done: Callable[[], None] | None = None) -> OutRecord:
        return OutRecord(TOPICS[ev.kind], event_key(ev), encode(ev), self.event_time_ms(ev), on_done)

    def deadletter_record(self, raw: bytes, reason: str, detail: str,
                          on_done: Callable[[], None] | None = None) -> OutRecord:
        return OutRecord(DEADLETTER_TOPIC, None, deadletter_record(raw, self.source, reason, detail), None, on_done)

    def _count_ingested(self, ev: Event) -> None:
        stats = self.stats
        stats.ingested[(self.source, ev.kind)] += 1
        stats.last_event_wall_s[self.source] = time.time()

    # -- synchronous: straight to the bus -----------------------------------------------
    def publish_obj(self, obj: Any, raw: bytes | None = None, kind: str | None = None) -> Event | None:
        """Validate a decoded JSON value and produce it; None when it was rejected."""
        try:
            ev = self.check_obj(obj, raw, kind)
        except Rejected as exc:
            self.reject(raw if raw is not None else dump(obj), exc.reason, exc.detail)
            return None
        self.produce(ev)
        return ev

    def publish_raw(self, raw: bytes, kind: str | None = None) -> Event | None:
        try:
            ev = self.validator.decode(raw, kind)
        except Rejected as exc:
            self.reject(raw, exc.reason, exc.detail)
            return None
        self.produce(ev)
        return ev

    def produce(self, ev: Event) -> None:
        self._send_now(self.event_record(ev))
        self._count_ingested(ev)

    def reject(self, raw: bytes, reason: str, detail: str) -> None:
        self.stats.rejected[(self.source, reason)] += 1
        self._send_now(self.deadletter_record(raw, reason, detail))

    def _send_now(self, rec: OutRecord) -> None:
        self.bus.produce(rec.topic, rec.key, rec.value, timestamp_ms=rec.timestamp_ms)
        if rec.on_done is not None:
            rec.on_done()

    # -- asynchronous: through the sink -------------------------------------------------
    async def _put(self, rec: OutRecord) -> None:
        if self.sink is None:
            self._send_now(rec)
        else:
            await self.sink.put(rec)

    async def emit(self, ev: Event, on_done: Callable[[], None] | None = None) -> None:
        """Hand a validated event on (waits while the sink is full)."""
        await self._put(self.event_record(ev, on_done))
        self._count_ingested(ev)

    async def areject(self, raw: bytes, reason: str, detail: str, on_done: Callable[[], None] | None = None) -> None:
        self.stats.rejected[(self.source, reason)] += 1
        await self._put(self.deadletter_record(raw, reason, detail, on_done))

    async def apublish_obj(self, obj: Any, raw: bytes | None = None, kind: str | None = None,
                           on_done: Callable[[], None] | None = None) -> Event | None:
        try:
            ev = self.check_obj(obj, raw, kind)
        except Rejected as exc:
            await self.areject(raw if raw is not None else dump(obj), exc.reason, exc.detail, on_done)
            return None
        await self.emit(ev, on_done)
        return ev

    async def apublish_raw(self, raw: bytes, kind: str | None = None,
                           on_done: Callable[[], None] | None = None) -> Event | None:
        try:
            ev = self.validator.decode(raw, kind)
        except Rejected as exc:
            await self.areject(raw, exc.reason, exc.detail, on_done)
            return None
        await self.emit(ev, on_done)
        return ev

    async def apublish_values(self, values: list[Any], kind: str | None = None,
                              on_done: Callable[[], None] | None = None,
                              keep: Callable[[Event], bool] | None = None) -> BatchResult:
        """Validate decoded values, then hand on every event and dead letter.

        ``on_done`` runs once, when the bus has acknowledged every record of the
        batch (an MQTT source acknowledges its message then). ``keep`` may drop
        an event that is a known duplicate (counted neither way).
        """
        result = BatchResult()
        out: list[tuple[OutRecord, Event | None]] = []
        for i, value in enumerate(values):
            raw = dump(value)
            try:
                ev = self.check_obj(value, raw, kind)
            except Rejected as exc:
                result.add_error(i, exc.reason, exc.detail)
                self.stats.rejected[(self.source, exc.reason)] += 1
                out.append((self.deadletter_record(raw, exc.reason, exc.detail), None))
                continue
            if keep is not None and not keep(ev):
                continue
            result.accepted += 1
            out.append((self.event_record(ev), ev))
        if on_done is not None:
            if not out:
                on_done()
            else:
                countdown = _Countdown(len(out), on_done)
                for rec, _ in out:
                    rec.on_done = countdown
        for rec, accepted in out:
            await self._put(rec)
            if accepted is not None:
                self._count_ingested(accepted)
        return result

    async def apublish_payload(self, raw: bytes, kind: str | None = None,
                               on_done: Callable[[], None] | None = None) -> BatchResult:
        """A message payload: one JSON event or a JSON array of events."""
        if len(raw) > MAX_BATCH_BYTES:
            result = BatchResult()
            result.add_error(0, "too_large", f"payload of {len(raw)} bytes exceeds {MAX_BATCH_BYTES}")
            detail = result.errors[0]["detail"]
            await self.areject(raw[: self.validator.max_payload_bytes], "too_large", detail, on_done)
            return result
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            result = BatchResult()
            result.add_error(0, "bad_json", str(exc)[:120])
            await self.areject(raw[: self.validator.max_payload_bytes], "bad_json", str(exc)[:120], on_done)
            return result
        if isinstance(value, list):
            return await self.apublish_values(value, kind, on_done)
        result = BatchResult()
        ev = await self.apublish_obj(value, raw, kind, on_done)
        if ev is None:
            result.rejected = 1
        else:
            result.accepted = 1
        return result


def dump(obj: Any) -> bytes:
    """The bytes of a decoded value, for size checks and dead letters (never raises)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return repr(obj).encode(errors="replace")
