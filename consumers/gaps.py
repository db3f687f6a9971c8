"""Feed gaps: sequence numbers that never arrived, per stream and day.

A stream is one feed's numbered events of one day: southbound ticks per (symbol, channel,
day), trades that carry a ``seq`` per (symbol, day). The day is the local (UTC+8) date of
the event time, as everywhere in the engine.

The rule, and why:

* **Gaps are only between seqs seen within the same day.** The first seq of a day is
  whatever the feed sends first: the simulator (like vendors whose counters run per
  session) continues each (stock, channel) counter across days, others restart at 1, so
  neither "starts at 1" nor "follows yesterday's last" is true of every feed. Counting
  below a day's lowest seen seq would report every day of a continuing feed as a gap;
  counting from yesterday's last would do the same for a restarting one. The price: a
  seq missing before the first one seen of a day, or after the last one, is not found.
* A **hole** opens when a seq arrives that leaves missing seqs between it and the seqs
  already seen of its stream (a jump ahead, or a seq below the lowest seen). It opens at
  the stream clock of that arrival: max(engine clock, the event's time).
* A missing seq is a **gap** once the stream clock has passed its hole's opening by more
  than the grace (``now - opened > grace``, as lateness is judged). Holes are decided when
  :meth:`FeedGaps.evaluate` runs (the engine's prune, every checkpoint, and reads of the
  metrics and status); a missing seq that arrives within the grace was never a gap.
* A missing seq that arrives past the grace is a **late fill**: it is also counted as a
  gap if no evaluation ran in between, so with the event clock (``live_clock`` off) both
  counts depend only on the events and their order, not on when evaluations happened.
  The gap counter never goes back.
* A seq seen before (a trade re-sent under a new trade_id) is ignored. Counts are in
  missing seqs, not in holes.

Memory is O(holes), not O(events): a stream holds its lowest and highest seq seen and a
sorted list of missing ranges, so in-order arrival is one comparison and one store. The
``keep_days`` newest days of each kind are held (today and the previous session); when
an older day goes, its undecided holes are decided as gaps, and events for days older
than those held are not tracked.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right, insort
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

KINDS = ("trade", "southbound")
STATE_VERSION = 1

StreamKey = tuple[Any, ...]  # (symbol, day) or (symbol, channel, day): the day (a dt.date) last


class _Stream:
    """One stream-day: the seqs seen are [first, last] minus ``holes``."""

    __slots__ = ("kind", "key", "first", "last", "holes", "undecided")

    def __init__(self, kind: str, key: StreamKey, seq: int) -> None:
        self.kind = kind
        self.key = key
        self.first = seq
        self.last = seq
        # [lo, hi, opened_ms, counted] missing ranges, disjoint, sorted, inside (first, last)
        self.holes: list[list[int]] = []
        self.undecided = 0  # missing seqs in holes not yet counted as gaps


class FeedGaps:
    """Tracks seqs per stream-day and counts the ones that never came (see the module doc)."""

    def __init__(self, grace_ms: int, clock: Callable[[], int | None], keep_days: int = 2) -> None:
        """``clock``: the engine's stream clock (``Engine.now_ms``), read only when a seq is out of order."""
        self.grace_ms = grace_ms
        self.clock = clock
        self.keep_days = keep_days
        self.gaps: Counter[str] = Counter({k: 0 for k in KINDS})
        self.late_fills: Counter[str] = Counter({k: 0 for k in KINDS})
        self._streams: dict[StreamKey, _Stream] = {}
        self._days: dict[str, list[dt.date]] = {k: [] for k in KINDS}  # held days per kind, ascending
        self._undecided: set[_Stream] = set()  # streams with holes not yet counted
        # set while events counted before are applied again (a rebalance's replay): their holes were
        # already judged by this process, so they are held as counted, never counted twice
        self.replaying = False

    # -- per event -----------------------------------------------------------------
    def see(self, kind: str, key: StreamKey, seq: int, ts_ms: int) -> None:
        """One event of stream ``key`` (day last) with sequence number ``seq`` and event time ``ts_ms``."""
        st = self._streams.get(key)
        if st is not None and seq == st.last + 1:  # the usual case: the next one
            st.last = seq
            return
        self._see_slow(kind, key, st, seq, ts_ms)

    def _see_slow(self, kind: str, key: StreamKey, st: _Stream | None, seq: int, ts_ms: int) -> None:
        if st is None:
            if self._hold_day(kind, key[-1]):
                self._streams[key] = _Stream(kind, key, seq)
            return
        clock = self.clock()
        now = ts_ms if clock is None or ts_ms > clock else clock
        if seq > st.last:
            self._open(st, st.last + 1, seq - 1, now, len(st.holes))
            st.last = seq
        elif seq < st.first:
            self._open(st, seq + 1, st.first - 1, now, 0)
            st.first = seq
        else:
            self._fill(st, seq, now)

    def _open(self, st: _Stream, lo: int, hi: int, now: int, at: int) -> None:
        if lo > hi:
            return
        if self.replaying:
            st.holes.insert(at, [lo, hi, now, 1])
            return
        st.holes.insert(at, [lo, hi, now, 0])
        st.undecided += hi - lo + 1
        self._undecided.add(st)

    def _fill(self, st: _Stream, seq: int, now: int) -> None:
        holes = st.holes
        i = bisect_right(holes, seq, key=_lo) - 1
        if i < 0 or holes[i][1] < seq:
            return  # seen before
        hole = holes[i]
        lo, hi, opened, counted = hole
        if counted:
            self.late_fills[st.kind] += 1
        else:
            st.undecided -= 1
            if now - opened > self.grace_ms:  # past the grace and not yet evaluated: a gap, filled late
                self.gaps[st.kind] += 1
                self.late_fills[st.kind] += 1
            if not st.undecided:
                self._undecided.discard(st)
        if lo == hi:
            del holes[i]
        elif seq == lo:
            hole[0] = lo + 1
        elif seq == hi:
            hole[1] = hi - 1
        else:
            hole[1] = seq - 1
            holes.insert(i + 1, [seq + 1, hi, opened, counted])

    def _hold_day(self, kind: str, day: dt.date) -> bool:
        """Make room for a new stream's day; False when the day is older than every day held."""
        days = self._days[kind]
        if day in days:
            return True
        if len(days) >= self.keep_days and day < days[0]:
            return False
        insort(days, day)
        while len(days) > self.keep_days:
            self._drop_day(kind, days.pop(0))
        return True

    def _drop_day(self, kind: str, day: dt.date) -> None:
        for key in [k for k, st in self._streams.items() if st.kind == kind and k[-1] == day]:
            st = self._streams.pop(key)
            if st.undecided:  # nobody will send them now
                self.gaps[kind] += st.undecided
                self._undecided.discard(st)

    # -- periodic ------------------------------------------------------------------
    def evaluate(self, now: int | None) -> int:
        """Count the missing seqs whose grace has passed at stream clock ``now``; returns how many."""
        if now is None or not self._undecided:
            return 0
        grace, found = self.grace_ms, 0
        for st in list(self._undecided):
            for hole in st.holes:
                if not hole[3] and now - hole[2] > grace:
                    hole[3] = 1
                    n = hole[1] - hole[0] + 1
                    st.undecided -= n
                    self.gaps[st.kind] += n
                    found += n
            if not st.undecided:
                self._undecided.discard(st)
        return found

    def drop_symbols(self, symbols: set[str]) -> None:
        """Forget the streams of symbols whose partitions moved to another consumer."""
        for key in [k for k in self._streams if k[0] in symbols]:
            self._undecided.discard(self._streams.pop(key))

    # -- reading -------------------------------------------------------------------
    def pending(self) -> Counter[str]:
        """Missing seqs per kind still within the grace (not gaps yet, maybe never)."""
        out: Counter[str] = Counter({k: 0 for k in KINDS})
        for st in self._undecided:
            out[st.kind] += st.undecided
        return out

    def open_gaps(self, limit: int = 20) -> list[dict[str, Any]]:
        """The most recently opened gaps still missing, newest first (where to look)."""
        rows = []
        for st in self._streams.values():
            for lo, hi, opened, counted in st.holes:
                if counted:
                    rows.append((opened, st, lo, hi))
        rows.sort(key=lambda r: (-r[0], r[1].key[:-1], r[2]))
        out = []
        for opened, st, lo, hi in rows[:limit]:
            row: dict[str, Any] = {"kind": st.kind, "symbol": st.key[0]}
            if st.kind == "southbound":
                row["channel"] = st.key[1]
            row.update(date=st.key[-1].isoformat(), first_missing=lo, last_missing=hi, missing=hi - lo + 1,
                       opened_ms=opened)
            out.append(row)
        return out

    def status(self) -> dict[str, dict[str, int]]:
        """Per kind: gaps, late fills and missing seqs still within the grace."""
        pending = self.pending()
        return {k: {"gaps": self.gaps[k], "late_fills": self.late_fills[k], "pending": pending[k]} for k in KINDS}

    def holes(self, key: StreamKey) -> list[tuple[int, int, bool]]:
        """(lo, hi, counted as gap) of one stream's missing ranges (tests, debugging)."""
        st = self._streams.get(key)
        return [] if st is None else [(h[0], h[1], bool(h[3])) for h in st.holes]

    def __iter__(self) -> Iterator[StreamKey]:
        return iter(self._streams)

    # -- state ---------------------------------------------------------------------
    def streams_state(self, symbols: set[str] | None = None) -> list[list[Any]]:
        """The streams (of these symbols: one partition's), for a checkpoint: counts are not state."""
        return [[st.kind, [*st.key[:-1], st.key[-1].isoformat()], st.first, st.last, [list(h) for h in st.holes]]
                for st in self._streams.values() if symbols is None or st.key[0] in symbols]

    def load_streams(self, rows: list[list[Any]]) -> None:
        """Streams from a checkpoint: a restart goes on judging holes opened before it, counting none twice."""
        for kind, key, first, last, holes in rows:
            skey = (*key[:-1], dt.date.fromisoformat(key[-1]))
            if not self._hold_day(kind, skey[-1]):
                continue
            st = self._streams[skey] = _Stream(kind, skey, first)
            st.last = last
            st.holes = [list(h) for h in holes]
            st.undecided = sum(h[1] - h[0] + 1 for h in st.holes if not h[3])
            if st.undecided:
                self._undecided.add(st)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON-able state (dates as ISO strings), for checkpoints."""
        return {
            "version": STATE_VERSION,
            "gaps": dict(self.gaps),
            "late_fills": dict(self.late_fills),
            "days": {k: [d.isoformat() for d in days] for k, days in self._days.items()},
            "streams": self.streams_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], grace_ms: int, clock: Callable[[], int | None],
                   keep_days: int = 2) -> FeedGaps:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"feed gaps state version {state.get('version')!r}, expected {STATE_VERSION}")
        self = cls(grace_ms, clock, keep_days)
        for k in KINDS:
            self.gaps[k] = state["gaps"].get(k, 0)
            self.late_fills[k] = state["late_fills"].get(k, 0)
        self._days = {k: [dt.date.fromisoformat(d) for d in state["days"].get(k, [])] for k in KINDS}
        self.load_streams(state["streams"])
        return self


def _lo(hole: list[int]) -> int:
    return hole[0]
