"""Per-ETF state: day aggregates, active net inflow windows, creation/redemption.

All money is integer micro-CNY. Day aggregates are functions of the set of
trades (last price is the trade with the greatest (ts, trade_id)); only the
tick rule depends on arrival order, as the specification allows.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any, Iterator

from consumers.bars import DayBar
from consumers.dedupe import SealedKeys
from consumers.windows import SlidingSums
from monitor.events import mul_micro

INTRADAY_WINDOWS = (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600))
INTRADAY_WIDTHS = tuple(w for _, w in INTRADAY_WINDOWS)


def trade_key(ts_ms: int, trade_id: str) -> tuple[int, int, str]:
    """Total order of trades, independent of arrival: time, then trade id (numeric ids sort numerically)."""
    return (ts_ms, len(trade_id), trade_id)


class EtfDay:
    """One trading day of one ETF."""

    __slots__ = ("turnover", "volume", "buy", "sell", "first_key", "open", "last_key", "last",
                 "high", "low", "curve", "_cum", "tick_last", "tick_prev", "trade_ids")

    def __init__(self) -> None:
        self.turnover = 0
        self.volume = 0
        self.buy = 0
        self.sell = 0
        self.first_key: tuple[int, int, str] | None = None
        self.open: int | None = None
        self.last_key: tuple[int, int, str] | None = None
        self.last: int | None = None
        self.high: int | None = None
        self.low: int | None = None
        self.curve: dict[int, int] = {}  # second of day -> turnover in that second
        self._cum: tuple[list[int], list[int]] | None = None
        self.tick_last: int | None = None  # tick rule, arrival order: last price seen
        self.tick_prev: int | None = None  # ... and the last price different from it
        self.trade_ids: set[str] | SealedKeys = set()  # sealed once the day is older than the previous one

    @property
    def net(self) -> int:
        return self.buy - self.sell

    def add_trade(self, key: tuple[int, int, str], sec_of_day: int, price: int, volume: int, amount: int) -> None:
        self.turnover += amount
        self.volume += volume
        last_key = self.last_key  # attributes read once: this runs for every trade
        if last_key is None or key > last_key:
            self.last_key, self.last = key, price
        first_key = self.first_key
        if first_key is None or key < first_key:
            self.first_key, self.open = key, price
        high = self.high
        if high is None or price > high:
            self.high = price
        low = self.low
        if low is None or price < low:
            self.low = price
        curve = self.curve
        curve[sec_of_day] = curve.get(sec_of_day, 0) + amount
        self._cum = None

    def tick_side(self, price: int, reference: int | None) -> str | None:
        """Classify by the tick rule and advance its state; ``reference`` seeds the day."""
        last = self.tick_last
        if last is None:
            last = reference
        if last is None:
            self.tick_last = price
            return None
        if price != last:
            self.tick_prev, self.tick_last = last, price
            return "B" if price > last else "S"
        self.tick_last = price
        prev = self.tick_prev
        if prev is None:
            return None
        return "B" if price > prev else "S"

    def curve_items(self) -> Iterator[tuple[int, int]]:
        """(second of day, turnover in that second), ascending: the intraday curve, whatever holds it."""
        return iter(sorted(self.curve.items()))

    def turnover_until(self, sec_of_day: int) -> int:
        """Turnover of trades at or before ``sec_of_day`` (whole seconds)."""
        if self._cum is None:
            secs = sorted(self.curve)
            cum, total = [], 0
            for s in secs:
                total += self.curve[s]
                cum.append(total)
            self._cum = (secs, cum)
        secs, cum = self._cum
        i = bisect.bisect_right(secs, sec_of_day)
        return cum[i - 1] if i else 0

    def to_state(self) -> dict[str, Any]:
        return {
            "turnover": self.turnover, "volume": self.volume, "buy": self.buy, "sell": self.sell,
            "first_key": self.first_key, "open": self.open, "last_key": self.last_key, "last": self.last,
            "high": self.high, "low": self.low, "curve": sorted(self.curve.items()),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> "EtfDay":
        day = cls()
        for name in ("turnover", "volume", "buy", "sell", "open", "last", "high", "low"):
            setattr(day, name, data[name])
        day.first_key = tuple(data["first_key"]) if data["first_key"] else None  # type: ignore[assignment]
        day.last_key = tuple(data["last_key"]) if data["last_key"] else None  # type: ignore[assignment]
        day.curve = {int(s): int(v) for s, v in data["curve"]}
        day.tick_last = day.last
        return day


class EtfState:
    """Everything held for one ETF symbol."""

    __slots__ = ("symbol", "days", "windows", "units", "first_day", "summaries", "aum_folded")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.days: dict[dt.date, EtfDay] = {}
        self.windows = SlidingSums(INTRADAY_WIDTHS)
        self.units: dict[dt.date, tuple[int, int]] = {}  # date -> (shares micro, nav micro)
        self.first_day: dt.date | None = None  # first day held: trades, or a bar standing in
        self.summaries: dict[dt.date, DayBar] = {}  # traded days whose trades were pruned: their daily bar
        self.aum_folded: int | None = None  # highest AUM of units records pruned away (the record survives)

    def day(self, date: dt.date) -> EtfDay:
        d = self.days.get(date)
        if d is None:
            d = self.days[date] = EtfDay()
            if self.first_day is None or date < self.first_day:
                self.first_day = date
        return d

    def creation_inflow(self, date: dt.date) -> int | None:
        """(shares_D - shares_prev) x nav_D, prev = the previous units record; None for the first."""
        rec = self.units.get(date)
        if rec is None:
            return None
        earlier = [d for d in self.units if d < date]
        if not earlier:
            return None
        prev_shares = self.units[max(earlier)][0]
        shares, nav = rec
        return mul_micro(shares - prev_shares, nav)
