"""Southbound quota: per Stock Connect channel and trading day, the latest record by event time.

The exchanges publish each southbound channel's daily quota and the balance left several times a
day. Records may reach the consumer out of order (two ingestors, a replay, a late partition), so
what a day shows must not depend on arrival order:

* the record held for a channel and day is the one with the greatest event time; a record with the
  same event time but other numbers replaces it (a correction: the later applied wins); an older one
  changes nothing;
* a record identical to the one held is a duplicate;
* a record is held for its own day only: one of an earlier day arriving late never stands for
  today (the engine refuses it once its day is older than retention keeps).

Pure: no I/O. The engine holds one :class:`QuotaBook`; consumers.codec persists each channel-day
as one record (:meth:`QuotaRecord.to_state`), consumers.retention drops old days.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, NamedTuple

from monitor.events import QUOTA_KEY_PREFIX

CHANNELS = ("SH", "SZ")  # Shanghai-Hong Kong and Shenzhen-Hong Kong Stock Connect, southbound

Offered = Literal["applied", "stale", "duplicate"]


class QuotaRecord(NamedTuple):
    """One published quota record (micro-CNY)."""

    ts_ms: int
    quota: int
    balance: int

    @property
    def used_ratio(self) -> float:
        """1 - balance / quota, as (quota - balance) / quota: one correctly rounded division."""
        return (self.quota - self.balance) / self.quota

    def to_state(self) -> list[int]:
        return [self.ts_ms, self.quota, self.balance]

    @classmethod
    def from_state(cls, data: list[Any]) -> QuotaRecord:
        ts_ms, quota, balance = data
        return cls(int(ts_ms), int(quota), int(balance))


def channel_of(key: str) -> str | None:
    """The channel whose stream key (monitor.events.quota_key) this is; None for a symbol."""
    if key.startswith(QUOTA_KEY_PREFIX):
        channel = key[len(QUOTA_KEY_PREFIX):]
        return channel if channel in CHANNELS else None
    return None


class QuotaBook:
    """The held record per channel and day."""

    __slots__ = ("days",)

    def __init__(self) -> None:
        self.days: dict[str, dict[dt.date, QuotaRecord]] = {}

    def offer(self, channel: str, day: dt.date, rec: QuotaRecord) -> Offered:
        """Hold ``rec`` for ``day`` unless an event-time-later record is held: "applied" when it is now
        held, "stale" when an event-time-later one stays, "duplicate" when the held one is identical."""
        by_day = self.days.setdefault(channel, {})
        held = by_day.get(day)
        if held is not None:
            if held == rec:
                return "duplicate"
            if rec.ts_ms < held.ts_ms:
                return "stale"
        by_day[day] = rec
        return "applied"

    def latest(self, channel: str, day: dt.date | None) -> QuotaRecord | None:
        """The record held for ``channel`` on ``day`` (None: none that day)."""
        if day is None:
            return None
        by_day = self.days.get(channel)
        return by_day.get(day) if by_day else None

    def put(self, channel: str, day: dt.date, rec: QuotaRecord) -> None:
        """Hold ``rec`` as it was checkpointed."""
        self.days.setdefault(channel, {})[day] = rec

    def drop_before(self, oldest: dt.date) -> list[tuple[str, dt.date]]:
        """Forget the days before ``oldest``; returns the (channel, day) pairs dropped."""
        gone = []
        for channel, by_day in self.days.items():
            for d in [d for d in by_day if d < oldest]:
                del by_day[d]
                gone.append((channel, d))
        return gone

    def drop_channel(self, channel: str) -> None:
        """Forget a channel (its partition moved to another consumer)."""
        self.days.pop(channel, None)
