"""Per-ETF state: day aggregates, active net inflow windows, creation/redemption.

All money is integer micro-CNY. Day aggregates are functions of the set of
trades (last price is the trade with the greatest (ts, trade_id)); only the
tick rule depends on arrival order, as the specification allows.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
from array import array
from collections.abc import Iterable, Iterator
from itertools import accumulate, chain
from typing import Any

from consumers.bars import DayBar
from consumers.dedupe import TradeIds
from consumers.windows import SlidingSums
from monitor.events import mul_micro

INTRADAY_WINDOWS = (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600))
INTRADAY_WIDTHS = tuple(w for _, w in INTRADAY_WINDOWS)


def trade_key(ts_ms: int, trade_id: str) -> tuple[int, int, str]:
    """Total order of trades, independent of arrival: time, then trade id (numeric ids sort numerically)."""
    return (ts_ms, len(trade_id), trade_id)


CHUNK_SECONDS = 600  # the intraday curve is checkpointed in blocks of this many seconds of the day


def _b64(a: array) -> str:
    return base64.b64encode(a.tobytes()).decode()


def _unb64(code: str, data: str) -> array:
    a = array(code)
    a.frombytes(base64.b64decode(data))
    return a


class EtfDay:
    """One trading day of one ETF.

    The intraday curve is three parallel arrays over the distinct seconds of the day that had a
    trade: the second, the turnover in it and the active net amount in it (20 bytes a second, about
    7 a trade on a heavy day). Once the day is older than the current one it is compacted: the net
    column (only needed to rebuild the intraday windows after a restart) goes, and the turnover
    column becomes cumulative, which is what the previous session's same-time turnover reads.
    """

    __slots__ = ("turnover", "volume", "buy", "sell", "first_key", "open", "last_key", "last",
                 "high", "low", "secs", "amounts", "nets", "cumulative", "tick_last", "tick_prev", "trade_ids",
                 "dirty")

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
        self.secs = array("i")  # seconds of the (exchange-local) day with a trade, ascending
        self.amounts = array("q")  # turnover in that second (cumulative once compacted)
        self.nets: array | None = array("q")  # active net amount in that second (None once compacted)
        self.cumulative = False
        self.tick_last: int | None = None  # tick rule, arrival order: last price seen
        self.tick_prev: int | None = None  # ... and the last price different from it
        self.trade_ids: TradeIds | None = TradeIds()  # None once the day no longer accepts trades
        self.dirty: set[int] = set()  # curve chunks changed since the last checkpoint

    @property
    def net(self) -> int:
        return self.buy - self.sell

    def add_trade(self, ts_ms: int, trade_id: str, sec_of_day: int, price: int, volume: int, amount: int,
                  signed: int) -> None:
        """One trade (``signed``: its active net amount). Its :func:`trade_key` is built only when the
        trade may become the day's first or last (its time is not strictly inside theirs)."""
        self.turnover += amount
        self.volume += volume
        last_key = self.last_key  # attributes read once: this runs for every trade
        first_key = self.first_key
        if last_key is None or ts_ms >= last_key[0]:
            key = (ts_ms, len(trade_id), trade_id)  # trade_key, inline
            if last_key is None or key > last_key:
                self.last_key, self.last = key, price
            if first_key is None or (ts_ms <= first_key[0] and key < first_key):
                self.first_key, self.open = key, price
        elif first_key is None or ts_ms <= first_key[0]:  # (else: strictly inside the day's trades)
            key = (ts_ms, len(trade_id), trade_id)
            if first_key is None or key < first_key:
                self.first_key, self.open = key, price
        high = self.high
        if high is None or price > high:
            self.high = price
        low = self.low
        if low is None or price < low:
            self.low = price
        secs = self.secs
        if secs and not self.cumulative:
            last_sec = secs[-1]
            if sec_of_day == last_sec:
                self.amounts[-1] += amount
                self.nets[-1] += signed  # type: ignore[index]  # nets exist while not compacted
            elif sec_of_day > last_sec:
                secs.append(sec_of_day)
                self.amounts.append(amount)
                self.nets.append(signed)  # type: ignore[union-attr]  # nets exist while not compacted
            else:
                self._insert(sec_of_day, amount, signed)
        else:
            self._insert(sec_of_day, amount, signed)
        self.dirty.add(sec_of_day // CHUNK_SECONDS)

    def _insert(self, sec: int, amount: int, signed: int) -> None:
        """The general case: a second out of order, or a compacted (cumulative) day."""
        secs, amounts, nets = self.secs, self.amounts, self.nets
        i = bisect.bisect_left(secs, sec)
        present = i < len(secs) and secs[i] == sec
        if not self.cumulative:
            if present:
                amounts[i] += amount
                nets[i] += signed  # type: ignore[index]  # nets exist while not compacted
            else:
                secs.insert(i, sec)
                amounts.insert(i, amount)
                nets.insert(i, signed)  # type: ignore[union-attr]  # nets exist while not compacted
            return
        if not present:  # a late trade of a compacted day: rare, so a linear update is fine
            secs.insert(i, sec)
            amounts.insert(i, amounts[i - 1] if i else 0)
        for j in range(i, len(amounts)):
            amounts[j] += amount

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

    def compact(self) -> None:
        """The day is no longer the current one: drop the net column, make turnover cumulative."""
        if not self.cumulative:
            self.amounts = array("q", accumulate(self.amounts))
            self.cumulative = True
        self.nets = None

    def curve_items(self) -> Iterator[tuple[int, int]]:
        """(second of day, turnover in that second), ascending."""
        if not self.cumulative:
            return zip(self.secs, self.amounts, strict=True)
        amounts = self.amounts
        return zip(self.secs, (a - (amounts[i - 1] if i else 0) for i, a in enumerate(amounts)), strict=True)

    def net_items(self) -> Iterator[tuple[int, int]]:
        """(second of day, active net amount in it), ascending; empty once compacted."""
        return zip(self.secs, self.nets, strict=True) if self.nets is not None else iter(())

    def turnover_until(self, sec_of_day: int) -> int:
        """Turnover of trades at or before ``sec_of_day`` (whole seconds)."""
        i = bisect.bisect_right(self.secs, sec_of_day)
        if self.cumulative:
            return self.amounts[i - 1] if i else 0
        return sum(self.amounts[:i])

    # -- checkpoint state: scalars (with the dedupe keys) and the curve in chunks --------------
    def head_state(self) -> dict[str, Any]:
        return {
            "turnover": self.turnover, "volume": self.volume, "buy": self.buy, "sell": self.sell,
            "first_key": self.first_key, "open": self.open, "last_key": self.last_key, "last": self.last,
            "high": self.high, "low": self.low, "tick_last": self.tick_last, "tick_prev": self.tick_prev,
            "trade_ids": self.trade_ids.to_state() if self.trade_ids is not None else None,
            "compacted": self.cumulative, "chunks": self.chunks(),
        }

    def chunks(self) -> list[int]:
        """The curve chunks that hold at least one second."""
        secs, out, i = self.secs, [], 0
        while i < len(secs):
            c = secs[i] // CHUNK_SECONDS
            out.append(c)
            i = bisect.bisect_left(secs, (c + 1) * CHUNK_SECONDS, i)
        return out

    def chunk_state(self, chunk: int) -> dict[str, Any]:
        """The curve's seconds in one chunk, per-second turnover and net (net empty once compacted)."""
        lo = bisect.bisect_left(self.secs, chunk * CHUNK_SECONDS)
        hi = bisect.bisect_left(self.secs, (chunk + 1) * CHUNK_SECONDS)
        amounts = self.amounts[lo:hi]
        if self.cumulative and len(amounts):
            base = self.amounts[lo - 1] if lo else 0
            amounts = array("q", (a - b for a, b in zip(amounts, chain((base,), amounts), strict=False)))
        return {"secs": _b64(self.secs[lo:hi]), "amounts": _b64(amounts),
                "nets": _b64(self.nets[lo:hi]) if self.nets is not None else None}

    @classmethod
    def from_state(cls, head: dict[str, Any], chunks: Iterable[dict[str, Any]]) -> EtfDay:
        day = cls()
        for name in ("turnover", "volume", "buy", "sell", "open", "last", "high", "low", "tick_last", "tick_prev"):
            setattr(day, name, head[name])
        day.first_key = _key(head["first_key"])
        day.last_key = _key(head["last_key"])
        ids = head["trade_ids"]
        day.trade_ids = TradeIds.from_state(ids) if ids is not None else None
        parts = sorted(((_unb64("i", c["secs"]), _unb64("q", c["amounts"]), c["nets"]) for c in chunks),
                       key=lambda p: p[0][0] if len(p[0]) else -1)
        for secs, amounts, nets in parts:
            day.secs.extend(secs)
            day.amounts.extend(amounts)
            if day.nets is not None:
                if nets is None:
                    day.nets = None
                else:
                    day.nets.extend(_unb64("q", nets))
        if head["compacted"]:
            day.compact()
        return day


def _key(raw: list[Any] | None) -> tuple[int, int, str] | None:
    return (int(raw[0]), int(raw[1]), str(raw[2])) if raw else None


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
