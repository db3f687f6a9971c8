"""Trading sessions per market from exchange-calendars, plus configured extra closures.

Markets are ``SH``, ``SZ`` (same holidays as Shanghai: exchange-calendars has no
XSHE) and ``HK``; ``SB`` is the southbound calendar: days on which HKEX and the
mainland exchange are both open, with HKEX session times.
Times are epoch milliseconds; dates are exchange dates (UTC+8).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

EXCHANGE_TZ = dt.timezone(dt.timedelta(hours=8))
DAY_MS = 86_400_000
_CAL_START = "2015-01-05"
MARKET_CALENDAR = {"SH": "XSHG", "SZ": "XSHG", "HK": "XHKG"}
MARKETS = ("SH", "SZ", "HK")


@dataclass(frozen=True, slots=True)
class Session:
    """One trading day: open/close with an optional lunch break, all epoch ms."""

    date: dt.date
    open_ms: int
    close_ms: int
    break_start_ms: int | None = None
    break_end_ms: int | None = None

    @property
    def trading_ms(self) -> int:
        """Length of the session without the lunch break."""
        return self.elapsed_ms(self.close_ms)

    def elapsed_ms(self, t_ms: int) -> int:
        """Trading time elapsed at ``t_ms``, excluding the lunch break."""
        t = min(max(t_ms, self.open_ms), self.close_ms)
        elapsed = t - self.open_ms
        if self.break_start_ms is not None and self.break_end_ms is not None and t > self.break_start_ms:
            elapsed -= min(t, self.break_end_ms) - self.break_start_ms
        return elapsed

    def truncated(self, close_ms: int) -> Session:
        """The session cut short at ``close_ms`` (a closure from a time of day)."""
        close_ms = max(self.open_ms, min(close_ms, self.close_ms))
        bs, be = self.break_start_ms, self.break_end_ms
        if bs is not None and close_ms <= bs:
            bs = be = None
        elif be is not None and close_ms < be:
            close_ms = bs if bs is not None else close_ms
            bs = be = None
        return Session(self.date, self.open_ms, close_ms, bs, be)


def to_ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def local_date(t_ms: int) -> dt.date:
    """The exchange (UTC+8) calendar date of an epoch-ms instant."""
    return dt.date.fromordinal(719163 + (t_ms + 8 * 3_600_000) // DAY_MS)


def local_seconds_of_day(t_ms: int) -> int:
    """Whole seconds since exchange midnight."""
    return ((t_ms + 8 * 3_600_000) % DAY_MS) // 1000


def midnight_ms(day: dt.date) -> int:
    return (day.toordinal() - 719163) * DAY_MS - 8 * 3_600_000


def iso(t_ms: int) -> str:
    """ISO-8601 in exchange time with offset, millisecond precision."""
    return dt.datetime.fromtimestamp(t_ms / 1000, EXCHANGE_TZ).isoformat(timespec="milliseconds")


class TradingCalendar:
    """Sorted sessions with the look-ups the computations need (all O(log n))."""

    def __init__(self, name: str, sessions: Iterable[Session]) -> None:
        self.name = name
        self._sessions = {s.date: s for s in sessions}
        self.dates: list[dt.date] = sorted(self._sessions)

    def __contains__(self, day: dt.date) -> bool:
        return day in self._sessions

    def session(self, day: dt.date) -> Session | None:
        return self._sessions.get(day)

    @property
    def first(self) -> dt.date:
        return self.dates[0]

    @property
    def last(self) -> dt.date:
        return self.dates[-1]

    def covers(self, day: dt.date) -> bool:
        return self.dates[0] <= day <= self.dates[-1]

    def at_or_before(self, day: dt.date) -> dt.date | None:
        """The latest trading day on or before ``day``."""
        i = bisect.bisect_right(self.dates, day)
        return self.dates[i - 1] if i else None

    def previous(self, day: dt.date) -> dt.date | None:
        """The trading day before ``day`` (``day`` need not be a trading day)."""
        i = bisect.bisect_left(self.dates, day)
        return self.dates[i - 1] if i else None

    def last_n(self, day: dt.date, n: int) -> Sequence[dt.date]:
        """The ``n`` trading days ending at ``day`` (included if it trades)."""
        i = bisect.bisect_right(self.dates, day)
        return self.dates[max(0, i - n):i]

    def before_n(self, day: dt.date, n: int) -> Sequence[dt.date]:
        """The ``n`` trading days strictly before ``day``."""
        i = bisect.bisect_left(self.dates, day)
        return self.dates[max(0, i - n):i]

    def back_from(self, day: dt.date) -> Iterator[dt.date]:
        """Trading days on or before ``day``, newest first, lazily (a streak stops early)."""
        dates = self.dates
        return (dates[i] for i in range(bisect.bisect_right(dates, day) - 1, -1, -1))

    def session_at(self, t_ms: int) -> Session | None:
        """The session of the trading day whose date contains ``t_ms``."""
        return self._sessions.get(local_date(t_ms))

    def is_open(self, t_ms: int) -> bool:
        s = self.session_at(t_ms)
        if s is None or not (s.open_ms <= t_ms < s.close_ms):
            return False
        return not (s.break_start_ms is not None and s.break_start_ms <= t_ms < (s.break_end_ms or 0))


@lru_cache(maxsize=8)
def _exchange_sessions(code: str) -> tuple[Session, ...]:
    import exchange_calendars as xcals  # imported lazily: building a calendar takes ~1 s

    cal = xcals.get_calendar(code, start=_CAL_START)  # default end: a year ahead or the recorded bound
    sched = cal.schedule
    opens = sched["open"].astype("int64") // 1_000_000
    closes = sched["close"].astype("int64") // 1_000_000
    bstarts = sched["break_start"]
    bends = sched["break_end"]
    out = []
    for day, o, c, bs, be in zip(sched.index, opens, closes, bstarts, bends, strict=True):
        has_break = bs == bs and be == be and bs is not None  # NaT != NaT
        out.append(
            Session(
                day.date(),
                int(o),
                int(c),
                int(bs.value // 1_000_000) if has_break else None,
                int(be.value // 1_000_000) if has_break else None,
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class ClosureRule:
    market: str
    date: dt.date
    from_seconds: int | None  # seconds after exchange midnight; None = whole day


class ClosureSpec(Protocol):
    """A configured closure (``monitor.config.Closure``), without importing the config here."""

    market: str
    date: str
    from_time: str


def parse_closures(raw: Iterable[ClosureSpec]) -> list[ClosureRule]:
    """Config closures into rules."""
    rules = []
    for c in raw:
        market = str(c.market).upper()
        if market not in MARKETS:
            raise ValueError(f"closure market must be one of {MARKETS}, got {market!r}")
        day = dt.date.fromisoformat(str(c.date))
        from_time = str(c.from_time or "")
        secs = None
        if from_time:
            hh, mm = from_time.split(":")[:2]
            secs = int(hh) * 3600 + int(mm) * 60
        rules.append(ClosureRule(market, day, secs))
    return rules


def _apply_closures(sessions: Iterable[Session], rules: Sequence[ClosureRule]) -> list[Session]:
    by_day = {r.date: r for r in rules}
    out = []
    for s in sessions:
        rule = by_day.get(s.date)
        if rule is None:
            out.append(s)
        elif rule.from_seconds is not None:
            cut = s.truncated(midnight_ms(s.date) + rule.from_seconds * 1000)
            if cut.trading_ms > 0:
                out.append(cut)
    return out


class Calendars:
    """Calendars of SH, SZ, HK and the southbound (SB) days, with closures applied."""

    def __init__(self, closures: Sequence[ClosureRule] = ()) -> None:
        self.by_market: dict[str, TradingCalendar] = {}
        for market, code in MARKET_CALENDAR.items():
            rules = [r for r in closures if r.market == market]
            self.by_market[market] = TradingCalendar(market, _apply_closures(_exchange_sessions(code), rules))
        hk = self.by_market["HK"]
        mainland = [self.by_market["SH"], self.by_market["SZ"]]
        cuts = {(r.market, r.date): r.from_seconds for r in closures if r.from_seconds is not None}
        sb = []
        for day in hk.dates:
            open_markets = [m.name for m in mainland if day in m]
            if not open_markets:
                continue
            hs = hk.session(day)
            assert hs is not None
            # southbound stops when every open mainland exchange has closed early that day
            mainland_cuts = [c for m in open_markets if (c := cuts.get((m, day))) is not None]
            if len(mainland_cuts) == len(open_markets):
                hs = hs.truncated(midnight_ms(day) + max(mainland_cuts) * 1000)
            sb.append(hs)
        self.by_market["SB"] = TradingCalendar("SB", sb)

    def __getitem__(self, market: str) -> TradingCalendar:
        return self.by_market[market]

    def for_symbol(self, symbol: str) -> TradingCalendar:
        """The calendar of a symbol's exchange, from its suffix (``.SH``/``.SZ``/``.HK``)."""
        return self.by_market[symbol[-2:]]


@lru_cache(maxsize=4)
def default_calendars() -> Calendars:
    """Calendars without extra closures; cached because building them takes a second."""
    return Calendars()
