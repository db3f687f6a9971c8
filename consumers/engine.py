"""The computation engine: applies validated events to state.

Pure: no Kafka, aiohttp or aiomqtt. One engine serves the embedded bus, Kafka
consumers and ``fundflow replay``; what is exported (metrics, JSON API, replay
report) is read through the typed views of consumers.views.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from consumers import basket as basket_mod
from consumers import retention
from consumers.bars import DayBar, DayView
from consumers.etf import EtfState
from consumers.gaps import FeedGaps
from consumers.orders import DEFAULT_CLASSES, OrderClasses, order_key
from consumers.quota import QuotaBook, QuotaRecord, channel_of
from consumers.southbound import SouthboundDay, SouthboundState
from monitor.calendars import DAY_MS, Calendars, TradingCalendar, iso, local_date
from monitor.events import (
    Bar,
    Event,
    Iopv,
    Rejected,
    SouthboundDaily,
    SouthboundQuota,
    SouthboundTick,
    Trade,
    Units,
    quota_key,
)

if TYPE_CHECKING:  # the query side reads the engine; the engine only holds its cache
    from consumers.views import ClosedHistory as _Closed


DayKey = tuple[str, dt.date]
_UTC8_MS = 8 * 3_600_000  # exchange time offset, as in monitor.calendars.local_date


def _mainland(symbol: str) -> bool:
    return symbol.endswith((".SH", ".SZ"))


class Engine:
    """State of every symbol plus the stream clock and the event counters."""

    def __init__(
        self,
        calendars: Calendars,
        grace_seconds: int = 60,
        live_clock: bool = False,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_late_sessions: int = 1,
        order_classes: OrderClasses = DEFAULT_CLASSES,
    ) -> None:
        self.cal = calendars
        self.grace_ms = grace_seconds * 1000
        self.live_clock = live_clock
        self.wall_ms = wall_ms
        # trades and ticks of a session more than this many sessions before the stream's current one are
        # refused (too_late), so the dedupe keys and curves of older days can go
        self.max_late_sessions = max_late_sessions
        self.order_classes = order_classes  # order-size class bounds (consumers.orders)
        self.as_of_ms: int | None = None  # greatest event time seen
        self.latest_date: dt.date | None = None  # greatest date of date-only events
        self.etf: dict[str, EtfState] = {}
        self.sb: dict[str, SouthboundState] = {}
        self.quota = QuotaBook()  # southbound quota records per channel and day (consumers/quota.py)
        self.applied: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.modified: set[DayKey] = set()  # days changed since their last checkpoint
        self.last_event_ms: int | None = None
        self.bars: dict[str, dict[dt.date, DayBar]] = {}  # bar events per symbol and day
        self.holdings: basket_mod.Holdings = {}  # ETF -> [(constituent, weight)]
        self.sectors: dict[str, str] = {}  # symbol -> sector ([sectors] csv; consumers/sectors.py)
        self._as_of_date: dt.date | None = None
        self.hist_version: Counter[str] = Counter()  # bumped when a symbol's closed history changes
        self.closed_cache: dict[str, tuple[tuple[Any, ...], _Closed]] = {}
        # local day index -> its date: one date object per day instead of one per event (its hash is
        # then computed once too); a few hundred entries a year
        self._dates: dict[int, dt.date] = {}
        # Lateness is judged per input stream (a Kafka partition): during a catch-up one partition may be
        # hours ahead of another, and against the greatest time over all of them nearly everything would
        # look late. stream -> greatest event time seen in it.
        self.stream_clocks: dict[Hashable, int] = {}
        # the streams that carry trades and ticks (the runner's assigned partitions): until each has a
        # clock, no day's dedupe keys may go (an unread partition may still hold any day's events)
        self.expected_streams: set[Hashable] = set()
        self._oldest_accepted: dict[tuple[str, int], dt.date] = {}  # (calendar, clock day index) -> oldest day
        self.gaps = FeedGaps(self.grace_ms, self.now_ms)  # missing seqs per stream-day (consumers/gaps.py)

    # -- applying -----------------------------------------------------------
    def apply(self, ev: Event, count: bool = True, stream: Hashable = None) -> str:
        """Apply one event; returns "applied", "late" (applied, behind the grace) or "duplicate".

        ``count=False`` leaves the event counters alone: the event was counted when this process
        first applied it, and is applied again only to rebuild state after a rebalance. ``stream``
        names the ordered input the event came from (lateness is judged against that stream's own
        clock). Raises :class:`Rejected` ("too_late") for a trade or tick of a session older than
        ``max_late_sessions`` before the stream's current session; nothing of it is applied.
        """
        kind = ev.kind
        if not count:
            self.gaps.replaying = True
            try:
                return self._apply(ev, kind, stream)
            finally:
                self.gaps.replaying = False
        # trades and ticks are nearly every event: dispatched here, without _apply's call
        if type(ev) is Trade:
            status = self._trade(ev, stream)
        elif type(ev) is SouthboundTick:
            status = self._tick(ev, stream)
        else:
            status = self._apply(ev, kind, stream)
        if status == "duplicate":
            self.duplicates[kind] += 1
        else:
            self.applied[kind] += 1
            if status == "late":
                self.late[kind] += 1
        return status

    def _apply(self, ev: Event, kind: str, stream: Hashable) -> str:
        if kind == "trade":
            status = self._trade(ev, stream)  # type: ignore[arg-type]  # narrowed by kind
        elif kind == "southbound":
            status = self._tick(ev, stream)  # type: ignore[arg-type]  # narrowed by kind
        elif kind == "units":
            status = self._units(ev)  # type: ignore[arg-type]  # narrowed by kind
        elif kind == "bar":
            status = self._bar(ev)  # type: ignore[arg-type]  # narrowed by kind
        elif kind == "southbound_quota":
            status = self._quota(ev)  # type: ignore[arg-type]  # narrowed by kind
        elif kind == "iopv":
            status = self._iopv(ev)  # type: ignore[arg-type]  # narrowed by kind
        else:
            status = self._daily(ev)  # type: ignore[arg-type]  # narrowed by kind
        return status

    def _day_of(self, ts: int) -> dt.date:
        day_index = (ts + _UTC8_MS) // DAY_MS
        day_date = self._dates.get(day_index)
        if day_date is None:
            day_date = self._dates[day_index] = local_date(ts)
        return day_date

    def _admit(self, ts: int, day_date: dt.date, stream: Hashable, cal_name: str) -> bool:
        """Refuse a session no longer accepted (raises too_late); True when the event is behind the grace.

        Only reads the clocks: ``_trade``/``_tick`` move them once the event is known not to be a duplicate.
        """
        clock = self.stream_clocks.get(stream)
        if clock is None or ts >= clock:
            return False
        clock_index = (clock + _UTC8_MS) // DAY_MS
        if clock_index != (ts + _UTC8_MS) // DAY_MS:
            key = (cal_name, clock_index)
            oldest = self._oldest_accepted.get(key)
            if oldest is None:
                oldest = self._oldest_accepted[key] = self.oldest_accepted_day(cal_name, self._day_of(clock))
            if day_date < oldest:
                raise Rejected("too_late", f"a {day_date.isoformat()} event after its stream reached {iso(clock)}: "
                                           f"trades and ticks are taken for the last {self.max_late_sessions + 1} "
                                           "sessions (a daily bar corrects an older day)")
        return clock - ts > self.grace_ms

    def oldest_accepted_day(self, cal_name: str, clock_day: dt.date) -> dt.date:
        """The oldest session still taking trades and ticks when a stream's clock is on ``clock_day``."""
        cal = self.cal[cal_name]
        cur = cal.at_or_before(clock_day)
        if cur is None:
            return clock_day
        days = cal.last_n(cur, self.max_late_sessions + 1)
        return days[0] if days else cur

    def _trade(self, t: Trade, stream: Hashable) -> str:
        # the per-event path: fields and attributes are read once into locals; _admit is called only off
        # the usual case (an event at or after its stream's clock); the clocks move inline here and in
        # _tick (the same six lines: a call per event costs more than the rest of the clock handling)
        ts, symbol, tid, amount = t.ts_ms, t.symbol, t.trade_id, t.amount
        local_ms = ts + _UTC8_MS
        day_date = self._dates.get(local_ms // DAY_MS)
        if day_date is None:
            day_date = self._day_of(ts)
        clocks = self.stream_clocks
        clock = clocks.get(stream)
        late = clock is not None and ts < clock and self._admit(ts, day_date, stream, symbol[-2:])
        st = self.etf.get(symbol)
        if st is None:
            st = self._etf_state(symbol)
        day = st.days.get(day_date)
        if day is None:
            day = st.day(day_date)
        trade_ids = day.trade_ids
        if trade_ids is None:  # its keys are gone: a duplicate cannot be told from a new trade
            raise Rejected("too_late", f"{symbol} {day_date.isoformat()}: the day no longer takes trades")
        if not trade_ids.add(tid):
            return "duplicate"
        if t.seq is not None:
            self.gaps.see("trade", (symbol, day_date), t.seq, ts)
        if clock is None or ts > clock:  # the clocks move
            clocks[stream] = ts
        as_of = self.as_of_ms
        if as_of is None or ts > as_of:
            self.as_of_ms = ts
            self._as_of_date = day_date
        reference = None
        if day.tick_last is None:  # first trade of the day: the previous session's last price
            prev = self.cal.for_symbol(symbol).previous(day_date)
            prev_day = self.view(symbol, prev) if prev else None  # a bar stands in for an untraded day
            reference = prev_day.last if prev_day else None
        tick = day.tick_side(t.price, reference)  # advanced for every trade: arrival order
        side = t.side or tick
        if side == "B":
            day.buy += amount
            signed = amount
            aggressor = t.buy_order_id
        elif side == "S":
            day.sell += amount
            signed = -amount
            aggressor = t.sell_order_id
        else:
            signed = 0
        if side is None:
            cls = -1  # no side: no class (it adds nothing to the active net inflow either)
        else:
            classes = self.order_classes
            total = amount
            if aggressor is not None and day.orders is not None:  # (totals go with the dedupe keys)
                total = day.orders.add(order_key(aggressor), amount, classes.b2)
            cls = classes.of(total)
            st.windows.add(ts // 1000, signed, cls)
        day.add_trade(ts, tid, local_ms % DAY_MS // 1000, t.price, t.volume, amount, signed, cls)
        self.modified.add((symbol, day_date))
        as_of_date, latest_date = self._as_of_date, self.latest_date
        if (as_of_date is not None and day_date < as_of_date) or (latest_date is not None and day_date < latest_date):
            self.hist_version[symbol] += 1  # a trade for a day that may already be closed
        return "late" if late else "applied"

    def _tick(self, t: SouthboundTick, stream: Hashable) -> str:
        ts, symbol, channel, seq = t.ts_ms, t.symbol, t.channel, t.seq
        day_date = self._dates.get((ts + _UTC8_MS) // DAY_MS)
        if day_date is None:
            day_date = self._day_of(ts)
        clocks = self.stream_clocks
        clock = clocks.get(stream)
        late = clock is not None and ts < clock and self._admit(ts, day_date, stream, "SB")
        st = self.sb.get(symbol)
        if st is None:
            st = self.sb[symbol] = SouthboundState(symbol)
        day = st.days.get(day_date)
        if day is None:
            day = st.day(day_date)
        seqs = day.seqs
        if seqs is None:  # its keys are gone: a duplicate cannot be told from a new tick
            raise Rejected("too_late", f"{symbol} {day_date.isoformat()}: the day no longer takes ticks")
        if not seqs.add(channel, seq):
            return "duplicate"
        self.gaps.see("southbound", (symbol, channel, day_date), seq, ts)
        if clock is None or ts > clock:  # the clocks move
            clocks[stream] = ts
        as_of = self.as_of_ms
        if as_of is None or ts > as_of:
            self.as_of_ms = ts
            self._as_of_date = day_date
        day.tick_buy += t.buy
        day.tick_sell += t.sell
        day.tick_net_sh += t.buy - t.sell if channel == "SH" else 0
        self.modified.add((symbol, day_date))
        return "late" if late else "applied"

    def _quota(self, q: SouthboundQuota) -> str:
        """Hold the channel's latest quota record of its day (consumers/quota.py); one older than the one
        held for its day changes nothing and counts as a duplicate (as an IOPV does). Days older than
        retention keeps (QUOTA_RETAIN_DAYS southbound sessions) go at the next prune."""
        ts = q.ts_ms
        day_date = self._day_of(ts)
        status = self.quota.offer(q.channel, day_date, QuotaRecord(ts, q.quota, q.balance))
        if status == "duplicate":
            return status
        as_of = self.as_of_ms
        if as_of is None or ts > as_of:
            self.as_of_ms = ts
            self._as_of_date = day_date
        if status == "stale":
            return "duplicate"
        self.modified.add((quota_key(q.channel), day_date))
        return "applied"

    def _iopv(self, ev: Iopv) -> str:
        """The latest IOPV by event time (a later-applied one wins a tie: a correction). One older than the one
        held changes nothing and counts as a duplicate: the engine cannot tell a redelivery from a late
        record, and either way only the latest is shown."""
        ts = ev.ts_ms
        day_date = self._day_of(ts)
        st = self._etf_state(ev.symbol)
        held = st.iopv
        rec = (day_date, ts, ev.iopv)
        if held is not None and (held == rec or (day_date, ts) < held[:2]):
            return "duplicate"  # the same, or older than the one held: nothing changes (a redelivery, usually)
        st.iopv = rec
        self.modified.add((ev.symbol, day_date))
        if self.as_of_ms is None or ts > self.as_of_ms:
            self.as_of_ms = ts
            self._as_of_date = day_date
        return "applied"

    def note_date(self, date: dt.date) -> None:
        """A date-only event (units, bar, daily) for ``date`` is held."""
        if self.latest_date is None or date > self.latest_date:
            self.latest_date = date

    def _etf_state(self, symbol: str) -> EtfState:
        st = self.etf.get(symbol)
        if st is None:
            st = self.etf[symbol] = EtfState(symbol)
            bars = self.bars.get(symbol)
            if bars:
                st.first_day = min(bars)
        return st

    def _units(self, u: Units) -> str:
        st = self._etf_state(u.symbol)
        rec = (u.shares, u.nav)
        if st.units.get(u.date) == rec:
            return "duplicate"
        st.units[u.date] = rec  # a different record for the same date is a correction
        self.note_date(u.date)
        self.modified.add((u.symbol, u.date))
        self.hist_version[u.symbol] += 1
        return "applied"

    def _bar(self, b: Bar) -> str:
        rec = DayBar(b.open, b.high, b.low, b.close, b.volume, b.amount, b.shares, b.nav)
        bars = self.bars.setdefault(b.symbol, {})
        if bars.get(b.date) == rec:
            return "duplicate"
        bars[b.date] = rec  # a different bar for the same date is a correction
        self.note_bar_day(b.symbol, b.date)
        self.note_date(b.date)
        self.modified.add((b.symbol, b.date))
        return "applied"

    def note_bar_day(self, symbol: str, date: dt.date) -> None:
        """A bar for ``date`` is held: it may extend the symbol's history back."""
        st = self.etf.get(symbol)
        if st is None and _mainland(symbol):  # a mainland bar is an ETF's; an HK bar may be a stock's
            st = self._etf_state(symbol)
        if st is not None and (st.first_day is None or date < st.first_day):
            st.first_day = date
        self.hist_version[symbol] += 1

    def _daily(self, d: SouthboundDaily) -> str:
        st = self.sb.get(d.symbol)
        if st is None:
            st = self.sb[d.symbol] = SouthboundState(d.symbol)
        day = st.day(d.date)
        rec = (d.buy, d.sell)
        if day.daily == rec:
            return "duplicate"
        day.daily = rec
        self.note_date(d.date)
        self.modified.add((d.symbol, d.date))
        return "applied"

    # -- clock ----------------------------------------------------------------
    def restore_clock(self, as_of_ms: int) -> None:
        """The stream clock of a loaded checkpoint (it never moves back)."""
        if self.as_of_ms is None or as_of_ms > self.as_of_ms:
            self.as_of_ms = as_of_ms
            self._as_of_date = local_date(as_of_ms)

    def now_ms(self) -> int | None:
        """The stream clock: greatest event time, or max(that, wall clock) when live."""
        if self.live_clock:
            wall = self.wall_ms()
            return wall if self.as_of_ms is None or wall > self.as_of_ms else self.as_of_ms
        return self.as_of_ms

    def current_day(self, cal: TradingCalendar, now: int | None = None) -> dt.date | None:
        """The trading day in progress (or the last one) at the stream clock."""
        now = self.now_ms() if now is None else now
        day = local_date(now) if now is not None else None
        if self.latest_date is not None and (day is None or self.latest_date > day):
            day = self.latest_date
        return cal.at_or_before(day) if day is not None else None

    def is_closed(self, cal: TradingCalendar, day: dt.date, now: int | None) -> bool:
        session = cal.session(day)
        return session is not None and now is not None and now > session.close_ms

    # -- daily history: trades, else a bar standing in --------------------------------------
    def view(self, symbol: str, d: dt.date) -> DayView | None:
        """The day as the signals see it: its trades where any were seen, else its bar."""
        st = self.etf.get(symbol)
        if st is not None:
            day = st.days.get(d)
            if day is not None and day.last is not None:
                return day
            summary = st.summaries.get(d)
            if summary is not None:
                return summary
        bars = self.bars.get(symbol)
        return bars.get(d) if bars else None

    def sb_closed(self, cal: TradingCalendar, day: dt.date, sb_day: SouthboundDay | None, now: int | None) -> bool:
        return (sb_day is not None and sb_day.daily is not None) or self.is_closed(cal, day, now)

    def symbols(self) -> list[str]:
        return sorted(set(self.etf) | set(self.sb) | set(self.bars))

    # -- checkpoints and housekeeping ---------------------------------------------------
    def take_updates(self) -> list[DayKey]:
        """Days changed since the last checkpoint (consumers.codec writes them)."""
        out = sorted(self.modified)
        self.modified = set()
        return out

    def history_changed(self, symbol: str) -> None:
        """The symbol's closed history changed: cached signals are computed again."""
        self.hist_version[symbol] += 1

    def drop_symbols(self, symbols: Iterable[str]) -> None:
        """Forget symbols (their partitions moved to another consumer)."""
        gone = set(symbols)
        for s in gone:
            self.etf.pop(s, None)
            self.sb.pop(s, None)
            self.bars.pop(s, None)
            self.closed_cache.pop(s, None)
            channel = channel_of(s)
            if channel is not None:
                self.quota.drop_channel(channel)
        self.modified = {k for k in self.modified if k[0] not in gone}
        self.gaps.drop_symbols(gone)

    def forget_streams(self, streams: Iterable[Hashable]) -> None:
        """Streams (partitions) this process no longer reads: their clocks stop holding old keys."""
        for s in streams:
            self.stream_clocks.pop(s, None)
            self.expected_streams.discard(s)

    def prune(self) -> int:
        """Bound memory (consumers.retention): run at every housekeeping tick and checkpoint."""
        return retention.prune(self)
