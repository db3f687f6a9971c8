"""The edge: validate an input, then produce it keyed by symbol with event time as its timestamp.

Rejected input is dead-lettered with its reason and counted; it never raises.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from consumers.runner import deadletter_record
from monitor.bus import Bus
from monitor.events import DEADLETTER_TOPIC, TOPICS, Event, Rejected, Validator, encode
from monitor.stats import PipelineStats


class Publisher:
    def __init__(self, bus: Bus, validator: Validator, stats: PipelineStats, source: str) -> None:
        self.bus = bus
        self.validator = validator
        self.stats = stats
        self.source = source

    def event_time_ms(self, ev: Event) -> int:
        """Kafka timestamp: the event time, or the session close for date-only events."""
        ts = getattr(ev, "ts_ms", None)
        if ts is not None:
            return ts
        cal = self.validator.calendars["SB"] if ev.kind == "southbound_daily" else self.validator.calendars.for_symbol(ev.symbol)
        session = cal.session(ev.date)  # type: ignore[union-attr]
        assert session is not None  # validated: a trading day
        return session.close_ms

    def publish_obj(self, obj: Any, raw: bytes | None = None, kind: str | None = None) -> Event | None:
        """Validate a decoded JSON value and produce it; None when it was rejected."""
        try:
            if raw is not None and len(raw) > self.validator.max_payload_bytes:
                raise Rejected("too_large", f"payload of {len(raw)} bytes exceeds {self.validator.max_payload_bytes}")
            ev = self.validator.validate(obj, kind)
        except Rejected as exc:
            self.reject(raw if raw is not None else _dump(obj), exc.reason, exc.detail)
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
        self.bus.produce(TOPICS[ev.kind], ev.symbol.encode(), encode(ev), timestamp_ms=self.event_time_ms(ev))
        stats = self.stats
        stats.ingested[(self.source, ev.kind)] += 1
        stats.last_event_wall_s[self.source] = time.time()

    def reject(self, raw: bytes, reason: str, detail: str) -> None:
        self.stats.rejected[(self.source, reason)] += 1
        self.bus.produce(DEADLETTER_TOPIC, None, deadletter_record(raw, self.source, reason, detail))


def _dump(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:
        return repr(obj).encode(errors="replace")
