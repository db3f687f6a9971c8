"""The computation engine: applies validated events to state and answers queries.

Pure: no Kafka, aiohttp or aiomqtt. One engine serves the embedded bus, Kafka
consumers and ``fundflow replay``; everything exported (metrics, JSON API,
replay report) is read from here.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Any, Callable, Hashable, Iterable

from fractions import Fraction

from consumers import basket as basket_mod
from consumers import highs, macd
from consumers.bars import DayBar, DayView, ohlc
from consumers.etf import INTRADAY_WINDOWS, EtfDay, EtfState, trade_key
from consumers.gaps import FeedGaps
from consumers.southbound import SouthboundDay, SouthboundState, streak
from monitor.calendars import DAY_MS, Calendars, TradingCalendar, iso, local_date, local_seconds_of_day
from monitor.events import Bar, Event, Rejected, SouthboundDaily, SouthboundTick, Trade, Units, from_micro, mul_micro

ETF_RETAIN_DAYS = 30  # trading days of ETF aggregates kept (20d window + volume-ratio look-back)
SB_RETAIN_DAYS = 260  # southbound days are tiny; kept long so long streaks stay visible
HISTORY_RETAIN_DAYS = 1500  # trading days of daily bars / traded-day summaries held ("all" history, MACD)
# (EMA weights of closes older than that are below 1e-45: dropping them does not move a float)
MULTI_DAY = (("1d", 1), ("5d", 5), ("20d", 20))

DayKey = tuple[str, dt.date]
_UTC8_MS = 8 * 3_600_000  # exchange time offset, as in monitor.calendars.local_date


def _money(units: int | None) -> float | None:
    return None if units is None else from_micro(units)


def _fmoney(units: Fraction | None) -> float | None:
    """Exact micros (a Fraction) to a float of the currency unit."""
    return None if units is None else float(units / 1_000_000)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _mainland(symbol: str) -> bool:
    return symbol.endswith((".SH", ".SZ"))


class _Closed:
    """The closed part of a symbol's daily history as of one current day (cached per history version).

    Everything here depends only on the closed days, so a scrape of 2,000 symbols reads it
    instead of walking up to 250 days per symbol; only today's high and last price are live.
    """

    __slots__ = ("series", "first_day", "prev_max_high", "window_highs", "turnover_avg", "macd_last", "macd_today",
                 "aums", "aum_latest", "aum_record")

    def __init__(self) -> None:
        self.series: dict[dt.date, DayView] = {}
        self.first_day: dt.date | None = None
        self.prev_max_high: int | None = None
        self.window_highs: dict[str, int | None] = {}  # per new-high window: the previous days' highest high
        self.turnover_avg: dict[str, Fraction | None] = {}  # 20d and ytd, today excluded
        self.macd_last: macd.MacdPoint | None = None
        self.macd_today: tuple[int, macd.MacdPoint, int] | None = None  # (today's last, point, cross) memo
        self.aums: dict[dt.date, int] = {}
        self.aum_latest: int | None = None
        self.aum_record: int | None = None


class Engine:
    """State of every symbol plus the stream clock and the event counters."""

    def __init__(
        self,
        calendars: Calendars,
        grace_seconds: int = 60,
        live_clock: bool = False,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        max_late_sessions: int = 1,
    ) -> None:
        self.cal = calendars
        self.grace_ms = grace_seconds * 1000
        self.live_clock = live_clock
        self.wall_ms = wall_ms
        # trades and ticks of a session more than this many sessions before the stream's current one are
        # refused (too_late), so the dedupe keys and curves of older days can go
        self.max_late_sessions = max_late_sessions
        self.as_of_ms: int | None = None  # greatest event time seen
        self.latest_date: dt.date | None = None  # greatest date of date-only events
        self.etf: dict[str, EtfState] = {}
        self.sb: dict[str, SouthboundState] = {}
        self.applied: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.modified: set[DayKey] = set()  # days changed since their last checkpoint
        self.last_event_ms: int | None = None
        self.bars: dict[str, dict[dt.date, DayBar]] = {}  # bar events per symbol and day
        self.holdings: basket_mod.Holdings = {}  # ETF -> [(constituent, weight)]
        self._as_of_date: dt.date | None = None
        self._hist_version: Counter[str] = Counter()  # bumped when a symbol's closed history changes
        self._closed_cache: dict[str, tuple[tuple[Any, ...], _Closed]] = {}
        # local day index -> its date: one date object per day instead of one per event (its hash is
        # then computed once too); a few hundred entries a year
        self._dates: dict[int, dt.date] = {}
        # Lateness is judged per input stream (a Kafka partition): during a catch-up one partition may be
        # hours ahead of another, and against the greatest time over all of them nearly everything would
        # look late. stream -> greatest event time seen in it.
        self.stream_clocks: dict[Hashable, int] = {}
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

        Only reads the clocks: :meth:`_advance` moves them once the event is known not to be a duplicate.
        """
        clock = self.stream_clocks.get(stream)
        if clock is None or ts >= clock:
            return False
        clock_index = (clock + _UTC8_MS) // DAY_MS
        if clock_index != (ts + _UTC8_MS) // DAY_MS:
            key = (cal_name, clock_index)
            oldest = self._oldest_accepted.get(key)
            if oldest is None:
                oldest = self._oldest_accepted[key] = self._oldest_day(cal_name, self._day_of(clock))
            if day_date < oldest:
                raise Rejected("too_late", f"a {day_date.isoformat()} event after its stream reached {iso(clock)}: "
                                           f"trades and ticks are taken for the last {self.max_late_sessions + 1} "
                                           "sessions (a daily bar corrects an older day)")
        return clock - ts > self.grace_ms

    def _oldest_day(self, cal_name: str, clock_day: dt.date) -> dt.date:
        """The oldest session still taking trades and ticks when a stream's clock is on ``clock_day``."""
        cal = self.cal[cal_name]
        cur = cal.at_or_before(clock_day)
        if cur is None:
            return clock_day
        days = cal.last_n(cur, self.max_late_sessions + 1)
        return days[0] if days else cur

    def _advance(self, ts: int, day_date: dt.date, stream: Hashable) -> None:
        clocks = self.stream_clocks
        clock = clocks.get(stream)
        if clock is None or ts > clock:
            clocks[stream] = ts
        as_of = self.as_of_ms
        if as_of is None or ts > as_of:
            self.as_of_ms = ts
            self._as_of_date = day_date

    def _trade(self, t: Trade, stream: Hashable) -> str:
        # the per-event path: fields and attributes are read once into locals
        ts, symbol, tid, amount = t.ts_ms, t.symbol, t.trade_id, t.amount
        local_ms = ts + _UTC8_MS
        day_date = self._dates.get(local_ms // DAY_MS)
        if day_date is None:
            day_date = self._day_of(ts)
        late = self._admit(ts, day_date, stream, symbol[-2:])
        st = self.etf.get(symbol)
        if st is None:
            st = self._etf_state(symbol)
        day = st.days.get(day_date)
        if day is None:
            day = st.day(day_date)
        trade_ids = day.trade_ids
        if trade_ids is None or not trade_ids.add(tid):
            return "duplicate"  # (a day without keys is older than every accepted session: not reached)
        if t.seq is not None:
            self.gaps.see("trade", (symbol, day_date), t.seq, ts)
        self._advance(ts, day_date, stream)
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
            st.windows.add(ts // 1000, amount)
        elif side == "S":
            day.sell += amount
            signed = -amount
            st.windows.add(ts // 1000, -amount)
        else:
            signed = 0
        day.add_trade(trade_key(ts, tid), local_ms % DAY_MS // 1000, t.price, t.volume, amount, signed)
        self.modified.add((symbol, day_date))
        as_of_date, latest_date = self._as_of_date, self.latest_date
        if (as_of_date is not None and day_date < as_of_date) or (latest_date is not None and day_date < latest_date):
            self._hist_version[symbol] += 1  # a trade for a day that may already be closed
        return "late" if late else "applied"

    def _tick(self, t: SouthboundTick, stream: Hashable) -> str:
        ts, symbol = t.ts_ms, t.symbol
        day_date = self._dates.get((ts + _UTC8_MS) // DAY_MS)
        if day_date is None:
            day_date = self._day_of(ts)
        late = self._admit(ts, day_date, stream, "SB")
        st = self.sb.get(symbol)
        if st is None:
            st = self.sb[symbol] = SouthboundState(symbol)
        day = st.day(day_date)
        seqs = day.seqs
        if seqs is None or not seqs.add(t.channel, t.seq):
            return "duplicate"
        self.gaps.see("southbound", (symbol, t.channel, day_date), t.seq, ts)
        self._advance(ts, day_date, stream)
        day.tick_buy += t.buy
        day.tick_sell += t.sell
        self.modified.add((symbol, day_date))
        return "late" if late else "applied"

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
        self._hist_version[u.symbol] += 1
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
        self._hist_version[symbol] += 1

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

    # -- queries: ETF -----------------------------------------------------------
    def etf_doc(self, symbol: str) -> dict[str, Any] | None:
        st = self.etf.get(symbol)
        if st is None:
            return None
        cal = self.cal.for_symbol(symbol)
        now = self.now_ms()
        cur = self.current_day(cal, now)
        net: dict[str, float | None] = {}
        if now is not None:
            for (name, _), value in zip(INTRADAY_WINDOWS, st.windows.values(now // 1000)):
                net[name] = from_micro(value)
        else:
            net.update({name: None for name, _ in INTRADAY_WINDOWS})
        doc: dict[str, Any] = {"net_inflow_cny": net}
        if cur is None:
            net.update({name: None for name, _ in MULTI_DAY})
            doc.update(creation_net_inflow_cny={n: None for n, _ in MULTI_DAY}, turnover_cny=None,
                       prev_turnover_cny=None, prev_turnover_same_time_cny=None,
                       turnover_vs_prev_session_ratio={"full_day": None, "same_time": None},
                       volume_ratio=None, last_price_cny=None, price_change_ratio=None, aum_cny=None)
            return doc
        days = st.days
        for name, n in MULTI_DAY:
            net[name] = from_micro(sum(days[d].net for d in cal.last_n(cur, n) if d in days))
        today = self.view(symbol, cur)
        prev = cal.previous(cur)
        known_prev = prev is not None and st.first_day is not None and prev >= st.first_day
        prev_day = self.view(symbol, prev) if known_prev and prev is not None else None
        turnover = today.turnover if today else 0
        prev_turnover = (prev_day.turnover if prev_day else 0) if known_prev else None
        same_day = now is not None and local_date(now) == cur
        if known_prev:
            if prev_day is None:
                prev_same = 0
            elif same_day:
                # a bar has no intraday curve: the previous session up to this time is unknown
                prev_same = (prev_day.turnover_until(local_seconds_of_day(now))  # type: ignore[arg-type]
                             if isinstance(prev_day, EtfDay) else None)
            else:
                prev_same = prev_day.turnover
        else:
            prev_same = None
        doc["creation_net_inflow_cny"] = self._creation(st, cal)
        doc["turnover_cny"] = from_micro(turnover)
        doc["prev_turnover_cny"] = _money(prev_turnover)
        doc["prev_turnover_same_time_cny"] = _money(prev_same)
        doc["turnover_vs_prev_session_ratio"] = {
            "full_day": _ratio(turnover, prev_turnover) if prev_turnover else None,
            "same_time": _ratio(turnover, prev_same) if prev_same else None,
        }
        doc["volume_ratio"] = self._volume_ratio(st, cal, cur, today, now if same_day else None)
        last = today.last if today else None
        prev_last = prev_day.last if prev_day else None
        doc["last_price_cny"] = _money(last)
        doc["price_change_ratio"] = last / prev_last - 1 if last is not None and prev_last else None
        doc["aum_cny"] = _money(self._closed(symbol, cur).aum_latest)
        return doc

    def _volume_ratio(self, st: EtfState, cal: TradingCalendar, cur: dt.date, today: DayView | None, now: int | None) -> float | None:
        session = cal.session(cur)
        if session is None:
            return None
        elapsed = session.elapsed_ms(now) if now is not None else session.trading_ms
        before = cal.before_n(cur, 5)
        if elapsed <= 0 or len(before) < 5 or st.first_day is None or before[0] < st.first_day:
            return None
        vol5 = 0
        for d in before:
            v = self.view(st.symbol, d)
            vol5 += v.volume if v is not None else 0
        ms5 = 0
        for d in before:
            s = cal.session(d)
            ms5 += s.trading_ms if s else 0
        if not vol5 or not ms5:
            return None
        vol = today.volume if today else 0
        return (vol * ms5) / (elapsed * vol5)

    def _creation(self, st: EtfState, cal: TradingCalendar) -> dict[str, float | None]:
        if len(st.units) < 2:
            return {name: None for name, _ in MULTI_DAY}
        latest = max(st.units)
        out: dict[str, float | None] = {}
        for name, n in MULTI_DAY:
            total = 0
            for d in cal.last_n(latest, n):
                inflow = st.creation_inflow(d)
                if inflow is not None:
                    total += inflow
            out[name] = from_micro(total)
        return out

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

    def _history_dates(self, symbol: str) -> set[dt.date]:
        dates: set[dt.date] = set(self.bars.get(symbol, ()))
        st = self.etf.get(symbol)
        if st is not None:
            dates.update(d for d, day in st.days.items() if day.last is not None)
            dates.update(st.summaries)
        return dates

    def _aums(self, symbol: str) -> dict[dt.date, int]:
        """AUM per day (micro-CNY): the units record, else a bar's shares x NAV."""
        out = {d: mul_micro(b.shares, b.nav) for d, b in self.bars.get(symbol, {}).items()
               if b.shares is not None and b.nav is not None}
        st = self.etf.get(symbol)
        if st is not None:
            for d, (shares, nav) in st.units.items():
                out[d] = mul_micro(shares, nav)
        return out

    def _closed(self, symbol: str, cur: dt.date) -> _Closed:
        key = (cur, self._hist_version[symbol])
        hit = self._closed_cache.get(symbol)
        if hit is not None and hit[0] == key:
            return hit[1]
        c = _Closed()
        dates = sorted(self._history_dates(symbol))
        c.first_day = dates[0] if dates else None
        point = None
        for d in dates:
            if d >= cur:
                break
            v = self.view(symbol, d)
            if v is None:
                continue
            c.series[d] = v
            if v.high is not None and (c.prev_max_high is None or v.high > c.prev_max_high):
                c.prev_max_high = v.high
            if v.last is not None:
                point = macd.step(point, macd.micro_to_decimal(v.last))
        c.macd_last = point
        cal = self.cal.for_symbol(symbol)
        prev_days = cal.before_n(cur, max(n for _, n in highs.NEW_HIGH_WINDOWS))
        c.window_highs = {name: highs.window_high(prev_days, n, c.series, c.first_day)
                          for name, n in highs.NEW_HIGH_WINDOWS}
        c.turnover_avg = {"20d": highs.average_turnover(prev_days[-highs.TURNOVER_AVG_WINDOW:], c.series),
                          "ytd": highs.average_turnover(highs.ytd_days(list(c.series), cur), c.series)}
        c.aums = self._aums(symbol)
        c.aum_latest = c.aums[max(c.aums)] if c.aums else None
        st = self.etf.get(symbol)
        folded = st.aum_folded if st is not None else None
        values = list(c.aums.values()) + ([folded] if folded is not None else [])
        c.aum_record = max(values) if values else None
        self._closed_cache[symbol] = (key, c)
        return c

    def signals_doc(self, symbol: str) -> dict[str, Any] | None:
        """Market signals of one symbol: new highs, average turnover, AUM record, MACD (issue 11)."""
        if symbol not in self.etf and symbol not in self.bars:
            return None
        cal = self.cal.for_symbol(symbol)
        cur = self.current_day(cal)
        nulls = {"high_cny": None, "new_high": {n: None for n, _ in highs.NEW_HIGH_WINDOWS} | {"all": None},
                 "turnover_avg_cny": {"20d": None, "ytd": None}, "aum_cny": None, "aum_record_cny": None,
                 "aum_at_record": None, "macd": {"dif": None, "dea": None, "histogram": None, "cross": None,
                                                 "closes": 0}}
        if cur is None:
            return nulls
        c = self._closed(symbol, cur)
        today = self.view(symbol, cur)
        today_high = today.high if today is not None else None
        new_high = {name: highs.is_new_high(today_high, c.window_highs[name]) for name, _ in highs.NEW_HIGH_WINDOWS}
        new_high["all"] = highs.new_high_all(today_high, c.prev_max_high)
        aum = c.aum_latest
        # MACD: closed closes, then today's last price as the provisional close
        point = c.macd_last
        crossed = 0  # no close today yet: nothing crossed today
        if today is not None and today.last is not None:
            memo = c.macd_today
            if memo is None or memo[0] != today.last:
                step = macd.step(point, macd.micro_to_decimal(today.last))
                memo = c.macd_today = (today.last, step, macd.cross(point, step))
            _, point, crossed = memo
        defined = point is not None and point.defined
        return {
            "high_cny": _money(today_high),
            "new_high": new_high,
            "turnover_avg_cny": {k: _fmoney(v) for k, v in c.turnover_avg.items()},
            "aum_cny": _money(aum),
            "aum_record_cny": _money(c.aum_record),
            "aum_at_record": None if aum is None or c.aum_record is None else int(aum >= c.aum_record),
            "macd": {
                "dif": float(point.dif) if defined else None,  # type: ignore[union-attr]
                "dea": float(point.dea) if defined else None,  # type: ignore[union-attr]
                "histogram": float(point.histogram) if defined else None,  # type: ignore[union-attr]
                "cross": crossed if defined else None,
                "closes": point.n if point is not None else 0,
            },
        }

    def basket_doc(self, symbol: str) -> dict[str, Any] | None:
        """Look-through of an ETF's holdings: weighted southbound net buys, top-N weight, per holding."""
        holdings = self.holdings.get(symbol)
        if not holdings:
            return None
        sb_cal = self.cal["SB"]
        cur = self.current_day(sb_cal)
        nets: dict[str, dict[str, int | None]] = {}
        for sym, _ in holdings:
            st = self.sb.get(sym)
            nets[sym] = {name: (self._sb_sum(st, sb_cal, cur, n) if st is not None and cur is not None else None)
                         for name, n in MULTI_DAY}
        weighted = {}
        for name, _ in MULTI_DAY:
            v = basket_mod.weighted_net(holdings, lambda s, name=name: nets[s][name])
            weighted[name] = float(v / 1_000_000) if v is not None else None
        rows = []
        for sym, w in holdings:
            sbd = self.sb_doc(sym) if sym in self.sb else None
            rows.append({"symbol": sym, "weight": float(w),
                         "net_buy_hkd": {k: _money(v) for k, v in nets[sym].items()},
                         "streak_days": sbd["streak_days"] if sbd else None,
                         "streak_net_buy_hkd": sbd["streak_net_buy_hkd"] if sbd else None})
        return {"southbound_net_buy_hkd": weighted,
                "top_weight_ratio": {str(n): float(basket_mod.top_weight_ratio(holdings, n)) for n in basket_mod.TOP_N},
                "holdings": rows}

    # -- queries: southbound -------------------------------------------------------
    def sb_doc(self, symbol: str) -> dict[str, Any] | None:
        st = self.sb.get(symbol)
        if st is None:
            return None
        cal = self.cal["SB"]
        now = self.now_ms()
        cur = self.current_day(cal, now)
        if cur is None:
            return {"net_buy_hkd": {n: None for n, _ in MULTI_DAY}, "streak_days": 0,
                    "streak_net_buy_hkd": 0.0, "provisional_net_buy_hkd": None}
        nets = {name: self._sb_sum(st, cal, cur, n) for name, n in MULTI_DAY}
        cur_day = st.days.get(cur)
        closed = self._sb_closed(cal, cur, cur_day, now)
        latest_closed = cur if closed else cal.previous(cur)
        if latest_closed is None:
            days_back: list[dt.date] = []
        else:
            days_back = cal.back_from(latest_closed)
        n_days, total = streak(days_back, st.net)
        return {
            "net_buy_hkd": {k: from_micro(v) for k, v in nets.items()},
            "streak_days": n_days,
            "streak_net_buy_hkd": from_micro(total),
            "provisional_net_buy_hkd": None if closed else from_micro(cur_day.net if cur_day else 0),
        }

    def _sb_closed(self, cal: TradingCalendar, day: dt.date, sb_day: SouthboundDay | None, now: int | None) -> bool:
        return (sb_day is not None and sb_day.daily is not None) or self.is_closed(cal, day, now)

    @staticmethod
    def _sb_sum(st: SouthboundState, cal: TradingCalendar, cur: dt.date, n: int) -> int:
        days = st.days
        return sum(days[d].net for d in cal.last_n(cur, n) if d in days)

    def top_southbound(self, window: str = "20d", top: int = 10) -> list[tuple[str, float]]:
        n = dict(MULTI_DAY)[window]
        cal = self.cal["SB"]
        cur = self.current_day(cal)
        if cur is None:
            return []
        ranked = sorted(((-self._sb_sum(st, cal, cur, n), sym) for sym, st in self.sb.items()))
        return [(sym, from_micro(-neg)) for neg, sym in ranked[:top]]

    # -- history and intraday curves (the board) -----------------------------------------
    def sb_history(self, symbol: str, days: int = 60) -> list[dict[str, Any]] | None:
        """Daily southbound net buys, oldest first, each marked closed or provisional."""
        st = self.sb.get(symbol)
        if st is None:
            return None
        cal = self.cal["SB"]
        now = self.now_ms()
        cur = self.current_day(cal, now)
        if cur is None:
            return []
        out = []
        for d in cal.last_n(cur, days):
            day = st.days.get(d)
            if day is None:
                continue
            out.append({"date": d.isoformat(), "net_buy_hkd": from_micro(day.net),
                        "source": "daily" if day.daily is not None else "ticks",
                        "closed": self._sb_closed(cal, d, day, now)})
        return out

    def etf_history(self, symbol: str) -> list[dict[str, Any]] | None:
        """Per-day turnover, volume, active net inflow and last price, oldest first."""
        st = self.etf.get(symbol)
        if st is None:
            return None
        return [{"date": d.isoformat(), "turnover_cny": from_micro(day.turnover), "volume": from_micro(day.volume),
                 "net_inflow_cny": from_micro(day.net), "last_price_cny": _money(day.last)}
                for d, day in sorted(st.days.items())]

    def etf_intraday(self, symbol: str, step_s: int = 60) -> dict[str, Any] | None:
        """Cumulative turnover over the day for today and the previous session, per ``step_s``."""
        st = self.etf.get(symbol)
        if st is None:
            return None
        cal = self.cal.for_symbol(symbol)
        cur = self.current_day(cal)
        prev = cal.previous(cur) if cur else None
        out: dict[str, Any] = {"step_seconds": step_s}
        for name, d in (("today", cur), ("previous", prev)):
            day = st.days.get(d) if d else None
            points: list[list[float]] = []
            if day is not None and len(day.secs):
                buckets: dict[int, int] = {}
                for sec, amount in day.curve_items():
                    b = sec - sec % step_s
                    buckets[b] = buckets.get(b, 0) + amount
                total = 0
                for b in sorted(buckets):
                    total += buckets[b]
                    points.append([b + step_s, from_micro(total)])
            out[name] = {"date": d.isoformat() if d else None, "cumulative_turnover_cny": points}
        return out

    # -- documents -------------------------------------------------------------------
    def symbols(self) -> list[str]:
        return sorted(set(self.etf) | set(self.sb) | set(self.bars))

    def symbol_doc(self, symbol: str) -> dict[str, Any] | None:
        doc: dict[str, Any] = {}
        etf = self.etf_doc(symbol)
        if etf is not None:
            doc["etf"] = etf
        sb = self.sb_doc(symbol)
        if sb is not None:
            doc["southbound"] = sb
        signals = self.signals_doc(symbol)
        if signals is not None:
            doc["signals"] = signals
        basket = self.basket_doc(symbol)
        if basket is not None:
            doc["basket"] = basket
        return doc or None

    def report(self, top: int = 10, rejected: dict[str, int] | None = None) -> dict[str, Any]:
        """The replay report: the whole state as one JSON-able document (rejections counted by the caller)."""
        now = self.now_ms()
        return {
            "as_of": iso(now) if now is not None else None,
            "symbols": {s: self.symbol_doc(s) for s in self.symbols()},
            "top_southbound_20d": [[s, v] for s, v in self.top_southbound("20d", top)],
            "rejected": dict(sorted((rejected or {}).items())),
            "duplicates": sum(self.duplicates.values()),
            "late": sum(self.late.values()),
        }

    # -- checkpoints and housekeeping ---------------------------------------------------
    def take_updates(self) -> list[DayKey]:
        """Days changed since the last checkpoint (consumers.codec writes them)."""
        out = sorted(self.modified)
        self.modified = set()
        return out

    def history_changed(self, symbol: str) -> None:
        """The symbol's closed history changed: cached signals are computed again."""
        self._hist_version[symbol] += 1

    def drop_symbols(self, symbols: Iterable[str]) -> None:
        """Forget symbols (their partitions moved to another consumer)."""
        gone = set(symbols)
        for s in gone:
            self.etf.pop(s, None)
            self.sb.pop(s, None)
            self.bars.pop(s, None)
            self._closed_cache.pop(s, None)
        self.modified = {k for k in self.modified if k[0] not in gone}
        self.gaps.drop_symbols(gone)

    def forget_streams(self, streams: Iterable[Hashable]) -> None:
        """Streams (partitions) this process no longer reads: their clocks stop holding old keys."""
        for s in streams:
            self.stream_clocks.pop(s, None)

    def prune(self) -> None:
        """Bound memory: expire window seconds and old days; compact the curves of days before the current
        one; forget the dedupe keys of sessions that no longer take trades or ticks.

        Every day changed here is marked modified, so the next checkpoint writes it as it now is.
        """
        now = self.now_ms()
        if now is None:
            return
        self.gaps.evaluate(now)
        now_sec = now // 1000
        # dedupe keys must outlive the slowest stream's accepted sessions (a lagging partition may still
        # send a duplicate of a day the others have left behind)
        slowest = min(self.stream_clocks.values()) if self.stream_clocks else self.as_of_ms
        modified = self.modified
        for sym, st in self.etf.items():
            st.windows.advance(now_sec)
            cal = self.cal.for_symbol(sym)
            cur = self.current_day(cal, now)
            if cur is None:
                continue
            keep = cal.last_n(cur, ETF_RETAIN_DAYS)
            oldest = keep[0] if keep else cur
            prev = cal.previous(cur)
            hist = cal.last_n(cur, HISTORY_RETAIN_DAYS)
            hist_oldest = hist[0] if hist else cur
            keys_from = self._oldest_day(sym[-2:], self._day_of(slowest)) if slowest is not None else None
            for d in [d for d in st.days if d < oldest]:
                summary = DayBar.of_day(st.days.pop(d))  # the daily bar of a traded day outlives its trades
                modified.add((sym, d))  # its checkpoint records go too
                if summary is not None and d >= hist_oldest:
                    st.summaries[d] = summary
            for d in [d for d in st.summaries if d < hist_oldest]:
                del st.summaries[d]
                modified.add((sym, d))
                self._hist_version[sym] += 1
            for d, day in st.days.items():
                if d >= cur:
                    continue
                if day.nets is not None:
                    day.compact()
                    modified.add((sym, d))
                if prev is not None and d < prev and len(day.secs):
                    day.secs, day.amounts = type(day.secs)(day.secs.typecode), type(day.amounts)(day.amounts.typecode)
                    modified.add((sym, d))
                if day.trade_ids is not None and keys_from is not None and d < keys_from:
                    day.trade_ids = None
                    modified.add((sym, d))
            old_units = sorted(d for d in st.units if d < oldest)
            for d in old_units[:-1]:  # the last one before the window is the baseline of the first inflow
                shares, nav = st.units.pop(d)
                modified.add((sym, d))
                self._hist_version[sym] += 1
                aum = mul_micro(shares, nav)
                if st.aum_folded is None or aum > st.aum_folded:
                    st.aum_folded = aum  # the AUM record survives the pruning of its day
                bar = self.bars.get(sym, {}).get(d)
                if bar is not None and (bar.shares, bar.nav) != (shares, nav):
                    # the units record wins over the bar's shares x NAV, also once the record is gone
                    bar.shares, bar.nav = shares, nav
                    self._hist_version[sym] += 1
        modified = self.modified
        for sym, bars in self.bars.items():
            cal = self.cal.for_symbol(sym)
            cur = self.current_day(cal, now)
            hist = cal.last_n(cur, HISTORY_RETAIN_DAYS) if cur is not None else []
            if not hist:
                continue
            old = [d for d in bars if d < hist[0]]
            for d in old:
                del bars[d]
                modified.add((sym, d))
            if old:
                self._hist_version[sym] += 1
        sb_cal = self.cal["SB"]
        cur = self.current_day(sb_cal, now)
        if cur is None:
            return
        keep = sb_cal.last_n(cur, SB_RETAIN_DAYS)
        oldest = keep[0] if keep else cur
        keys_from = self._oldest_day("SB", self._day_of(slowest)) if slowest is not None else None
        for sym, sb in self.sb.items():
            for d in [d for d in sb.days if d < oldest]:
                del sb.days[d]
                modified.add((sym, d))
            if keys_from is not None:
                for d, sday in sb.days.items():
                    if d < keys_from and sday.seqs is not None:
                        sday.seqs = None
                        modified.add((sym, d))
