"""The computation engine: applies validated events to state.

Pure: no Kafka, aiohttp or aiomqtt. One engine serves the embedded bus, Kafka
consumers and ``fundflow replay``; what is exported (metrics, JSON API, replay
report) is read through the typed views of consumers.views.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable, Iterable

from consumers import basket as basket_mod
from consumers.bars import DayBar, DayView, ohlc
from consumers.dedupe import seal
from consumers.etf import EtfDay, EtfState, trade_key
from consumers.southbound import SouthboundDay, SouthboundState
from monitor.calendars import DAY_MS, Calendars, TradingCalendar, local_date
from monitor.events import Bar, Event, SouthboundDaily, SouthboundTick, Trade, Units, mul_micro

if TYPE_CHECKING:  # the query side reads the engine; the engine only holds its cache
    from consumers.views import ClosedHistory as _Closed

ETF_RETAIN_DAYS = 30  # trading days of ETF aggregates kept (20d window + volume-ratio look-back)
SB_RETAIN_DAYS = 260  # southbound days are tiny; kept long so long streaks stay visible
HISTORY_RETAIN_DAYS = 1500  # trading days of daily bars / traded-day summaries held ("all" history, MACD)
# (EMA weights of closes older than that are below 1e-45: dropping them does not move a float)

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
    ) -> None:
        self.cal = calendars
        self.grace_ms = grace_seconds * 1000
        self.live_clock = live_clock
        self.wall_ms = wall_ms
        self.as_of_ms: int | None = None  # greatest event time seen
        self.latest_date: dt.date | None = None  # greatest date of date-only events
        self.etf: dict[str, EtfState] = {}
        self.sb: dict[str, SouthboundState] = {}
        self.applied: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.modified: set[DayKey] = set()  # days changed since their last snapshot
        self.last_event_ms: int | None = None
        self.bars: dict[str, dict[dt.date, DayBar]] = {}  # bar events per symbol and day
        self.holdings: basket_mod.Holdings = {}  # ETF -> [(constituent, weight)]
        self._as_of_date: dt.date | None = None
        self._hist_version: Counter[str] = Counter()  # bumped when a symbol's closed history changes
        self._closed_cache: dict[str, tuple[tuple[Any, ...], _Closed]] = {}
        # local day index -> its date: one date object per day instead of one per event (its hash is
        # then computed once too); a few hundred entries a year
        self._dates: dict[int, dt.date] = {}
        # A day is snapshotted (and its events skipped on recovery) only this long after its close:
        # until then its late events and its seconds in the intraday windows must be replayed.
        self.snapshot_hold_ms = 2 * 3_600_000

    # -- applying -----------------------------------------------------------
    def apply(self, ev: Event, count: bool = True) -> str:
        """Apply one event; returns "applied", "late" (applied, behind the grace) or "duplicate".

        ``count=False`` leaves the event counters alone: the event was counted when this process
        first applied it, and is applied again only to rebuild state after a rebalance.
        """
        kind = ev.kind
        if kind == "trade":
            status = self._trade(ev)  # type: ignore[arg-type]
        elif kind == "southbound":
            status = self._tick(ev)  # type: ignore[arg-type]
        elif kind == "units":
            status = self._units(ev)  # type: ignore[arg-type]
        elif kind == "bar":
            status = self._bar(ev)  # type: ignore[arg-type]
        else:
            status = self._daily(ev)  # type: ignore[arg-type]
        if not count:
            return status
        if status == "duplicate":
            self.duplicates[kind] += 1
        else:
            self.applied[kind] += 1
            if status == "late":
                self.late[kind] += 1
        return status

    def _clock(self, ts: int, ts_date: dt.date) -> bool:
        """Advance the clock to ``ts`` (whose local date the caller already has); True when the
        event is later than the grace."""
        as_of = self.as_of_ms
        if as_of is None or ts > as_of:
            self.as_of_ms = ts
            self._as_of_date = ts_date
            return False
        return as_of - ts > self.grace_ms

    def _trade(self, t: Trade) -> str:
        # the per-event path: fields and attributes are read once into locals
        ts, symbol, tid, amount = t.ts_ms, t.symbol, t.trade_id, t.amount
        local_ms = ts + _UTC8_MS
        day_index = local_ms // DAY_MS
        day_date = self._dates.get(day_index)
        if day_date is None:
            day_date = self._dates[day_index] = local_date(ts)
        st = self.etf.get(symbol)
        if st is None:
            st = self._etf_state(symbol)
        day = st.days.get(day_date)
        if day is None:
            day = st.day(day_date)
        trade_ids = day.trade_ids
        if tid in trade_ids:
            return "duplicate"
        trade_ids.add(tid)
        late = self._clock(ts, day_date)
        reference = None
        if day.tick_last is None:  # first trade of the day: the previous session's last price
            prev = self.cal.for_symbol(symbol).previous(day_date)
            prev_day = self.view(symbol, prev) if prev else None  # a bar stands in for an untraded day
            reference = prev_day.last if prev_day else None
        tick = day.tick_side(t.price, reference)  # advanced for every trade: arrival order
        side = t.side or tick
        if side == "B":
            day.buy += amount
            st.windows.add(ts // 1000, amount)
        elif side == "S":
            day.sell += amount
            st.windows.add(ts // 1000, -amount)
        day.add_trade(trade_key(ts, tid), local_ms % DAY_MS // 1000, t.price, t.volume, amount)  # local_seconds_of_day
        self.modified.add((symbol, day_date))
        as_of_date, latest_date = self._as_of_date, self.latest_date
        if (as_of_date is not None and day_date < as_of_date) or (latest_date is not None and day_date < latest_date):
            self._hist_version[symbol] += 1  # a trade for a day that may already be closed
        return "late" if late else "applied"

    def _tick(self, t: SouthboundTick) -> str:
        ts, symbol = t.ts_ms, t.symbol
        day_index = (ts + _UTC8_MS) // DAY_MS
        day_date = self._dates.get(day_index)
        if day_date is None:
            day_date = self._dates[day_index] = local_date(ts)
        st = self.sb.get(symbol)
        if st is None:
            st = self.sb[symbol] = SouthboundState(symbol)
        day = st.day(day_date)
        key = (t.channel, t.seq)
        seqs = day.seqs
        if key in seqs:
            return "duplicate"
        seqs.add(key)
        late = self._clock(ts, day_date)
        day.tick_buy += t.buy
        day.tick_sell += t.sell
        self.modified.add((symbol, day_date))
        return "late" if late else "applied"

    def _date_seen(self, date: dt.date) -> None:
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
        self._date_seen(u.date)
        self.modified.add((u.symbol, u.date))
        self._hist_version[u.symbol] += 1
        return "applied"

    def _bar(self, b: Bar) -> str:
        rec = DayBar(b.open, b.high, b.low, b.close, b.volume, b.amount, b.shares, b.nav)
        bars = self.bars.setdefault(b.symbol, {})
        if bars.get(b.date) == rec:
            return "duplicate"
        bars[b.date] = rec  # a different bar for the same date is a correction
        self._add_bar_day(b.symbol, b.date)
        self._date_seen(b.date)
        self.modified.add((b.symbol, b.date))
        return "applied"

    def _add_bar_day(self, symbol: str, date: dt.date) -> None:
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
        self._date_seen(d.date)
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

    def _sb_closed(self, cal: TradingCalendar, day: dt.date, sb_day: SouthboundDay | None, now: int | None) -> bool:
        return (sb_day is not None and sb_day.daily is not None) or self.is_closed(cal, day, now)

    def symbols(self) -> list[str]:
        return sorted(set(self.etf) | set(self.sb) | set(self.bars))

    # -- state snapshots and housekeeping ------------------------------------------------
    def take_closed_updates(self) -> list[DayKey]:
        """Days changed since their last snapshot, closed for longer than the snapshot hold."""
        now = self.now_ms()
        if now is not None:
            now -= self.snapshot_hold_ms
        out = []
        for key in list(self.modified):
            if self._day_closed(*key, now):
                out.append(key)
                self.modified.discard(key)
        return sorted(out)

    def _day_closed(self, symbol: str, day: dt.date, now: int | None) -> bool:
        """Closed for every part the symbol has (ETF by its exchange, southbound by its rule)."""
        if symbol in self.etf and not self.is_closed(self.cal.for_symbol(symbol), day, now):
            return False
        sb = self.sb.get(symbol)
        return sb is None or self._sb_closed(self.cal["SB"], day, sb.days.get(day), now)

    def export_day(self, symbol: str, day: dt.date) -> dict[str, Any]:
        """The closed-day aggregate of one symbol (everything needed to rebuild it)."""
        rec: dict[str, Any] = {"symbol": symbol, "date": day.isoformat()}
        st = self.etf.get(symbol)
        if st is not None:
            if day in st.days:
                rec["etf"] = st.days[day].to_state()
            if day in st.units:
                rec["units"] = list(st.units[day])
        sb = self.sb.get(symbol)
        if sb is not None and day in sb.days:
            rec["southbound"] = sb.days[day].to_state()
        bar = self.bars.get(symbol, {}).get(day)
        if bar is not None:
            rec["bar"] = bar.to_state()
        v = self.view(symbol, day)
        if v is not None:
            rec["ohlc"] = ohlc(v)  # the day as the signals see it (trades, else the bar), micros
        return rec

    def import_day(self, rec: dict[str, Any]) -> None:
        symbol = rec["symbol"]
        day = dt.date.fromisoformat(rec["date"])
        if "etf" in rec or "units" in rec:
            st = self.etf.get(symbol)
            if st is None:
                st = self.etf[symbol] = EtfState(symbol)
            if "etf" in rec:
                st.days[day] = EtfDay.from_state(rec["etf"])
                if st.first_day is None or day < st.first_day:
                    st.first_day = day
            if "units" in rec:
                st.units[day] = tuple(rec["units"])  # type: ignore[assignment]
                self._date_seen(day)
        if "bar" in rec:
            self.bars.setdefault(symbol, {})[day] = DayBar.from_state(rec["bar"])
            self._add_bar_day(symbol, day)
            self._date_seen(day)
        self._hist_version[symbol] += 1
        if "southbound" in rec:
            sb = self.sb.get(symbol)
            if sb is None:
                sb = self.sb[symbol] = SouthboundState(symbol)
            sb.days[day] = SouthboundDay.from_state(rec["southbound"])
            if sb.days[day].daily is not None:
                self._date_seen(day)

    def drop_symbols(self, symbols: Iterable[str]) -> None:
        """Forget symbols (their partitions moved to another consumer)."""
        gone = set(symbols)
        for s in gone:
            self.etf.pop(s, None)
            self.sb.pop(s, None)
            self.bars.pop(s, None)
            self._closed_cache.pop(s, None)
        self.modified = {k for k in self.modified if k[0] not in gone}

    def prune(self) -> None:
        """Bound memory: expire window seconds, old days, intraday curves of closed days."""
        now = self.now_ms()
        if now is None:
            return
        now_sec = now // 1000
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
            for d in [d for d in st.days if d < oldest]:
                summary = DayBar.of_day(st.days.pop(d))  # the daily bar of a traded day outlives its trades
                if summary is not None and d >= hist_oldest:
                    st.summaries[d] = summary
            for d in [d for d in st.summaries if d < hist_oldest]:
                del st.summaries[d]
                self._hist_version[sym] += 1
            for d, day in st.days.items():
                if prev is not None and d < prev:
                    day.curve = {}
                    day._cum = None
                    # trade ids stay while the day is kept (a re-sent old trade is still a duplicate, so the
                    # final state does not depend on when a checkpoint happened to prune), sealed to 8 bytes each
                    day.trade_ids = seal(day.trade_ids)
            old_units = sorted(d for d in st.units if d < oldest)
            for d in old_units[:-1]:  # the last one before the window is the baseline of the first inflow
                aum = mul_micro(*st.units.pop(d))
                if st.aum_folded is None or aum > st.aum_folded:
                    st.aum_folded = aum  # the AUM record survives the pruning of its day
        for sym, bars in self.bars.items():
            cal = self.cal.for_symbol(sym)
            cur = self.current_day(cal, now)
            hist = cal.last_n(cur, HISTORY_RETAIN_DAYS) if cur is not None else []
            if not hist:
                continue
            old = [d for d in bars if d < hist[0]]
            for d in old:
                del bars[d]
            if old:
                self._hist_version[sym] += 1
        sb_cal = self.cal["SB"]
        cur = self.current_day(sb_cal, now)
        if cur is None:
            return
        keep = sb_cal.last_n(cur, SB_RETAIN_DAYS)
        oldest = keep[0] if keep else cur
        sb_prev = sb_cal.previous(cur)
        for st in self.sb.values():
            for d in [d for d in st.days if d < oldest]:
                del st.days[d]  # its seqs go with it; until then a re-sent tick is still a duplicate
            if sb_prev is not None:
                for d, day in st.days.items():
                    if d < sb_prev and type(day.seqs) is set:
                        day.seqs = seal(day.seqs)
