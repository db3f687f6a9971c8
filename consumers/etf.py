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
from itertools import chain
from typing import Any

from consumers.bars import DayBar
from consumers.dedupe import TradeIds
from consumers.orders import CLASSES, OrderTotals
from consumers.windows import SlidingSums

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

    The intraday curve is parallel arrays of rows, ascending by second of the day: the second, the
    order-size class of its trades, their turnover and their active net amount (21 bytes a row; a
    row per second and class that had a trade, about 7 bytes a trade on a heavy day). Once the day
    is older than the current one it is compacted: the class and net columns (only needed to
    rebuild the intraday windows after a restart) go, rows merge into one per second, and the
    turnover column becomes cumulative, which is what the previous session's same-time turnover
    reads. The per-order totals that class the trades stay as long as the day takes trades (its
    dedupe keys), so a late trade is classed by the same rule.
    """

    __slots__ = ("turnover", "volume", "buy", "sell", "first_key", "open", "last_key", "last",
                 "high", "low", "secs", "classes", "amounts", "nets", "cumulative", "tick_last", "tick_prev",
                 "trade_ids", "orders", "flows", "dirty")

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
        self.classes: array | None = array("b")  # order-size class of the row (None once compacted)
        self.amounts = array("q")  # turnover in that row (cumulative per second once compacted)
        self.nets: array | None = array("q")  # active net amount in that row (None once compacted)
        self.cumulative = False
        self.tick_last: int | None = None  # tick rule, arrival order: last price seen
        self.tick_prev: int | None = None  # ... and the last price different from it
        self.trade_ids: TradeIds | None = TradeIds()  # None once the day no longer accepts trades
        self.orders: OrderTotals | None = OrderTotals()  # aggressor totals; None with the dedupe keys
        self.flows = array("q", bytes(64))  # per class: buyer-initiated, seller-initiated amount
        self.dirty: set[int] = set()  # curve chunks changed since the last checkpoint

    @property
    def net(self) -> int:
        return self.buy - self.sell

    def class_net(self, cls: int) -> int:
        return self.flows[2 * cls] - self.flows[2 * cls + 1]

    def add_trade(self, ts_ms: int, trade_id: str, sec_of_day: int, price: int, volume: int, amount: int,
                  signed: int, cls: int) -> None:
        """One trade (``signed``: its active net amount, ``cls``: its class, -1 without a side). Its
        :func:`trade_key` is built only when the trade may become the day's first or last (its time is
        not strictly inside theirs)."""
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
        if cls >= 0:
            self.flows[2 * cls + (signed < 0)] += amount
        secs = self.secs
        if secs and not self.cumulative:
            classes = self.classes
            if sec_of_day == secs[-1] and (cls < 0 or cls == classes[-1]):  # type: ignore[index]  # not compacted
                self.amounts[-1] += amount
                self.nets[-1] += signed  # type: ignore[index]  # nets exist while not compacted
            elif sec_of_day > secs[-1]:
                secs.append(sec_of_day)
                classes.append(max(cls, 0))  # type: ignore[union-attr]  # classes exist while not compacted
                self.amounts.append(amount)
                self.nets.append(signed)  # type: ignore[union-attr]  # nets exist while not compacted
            else:
                self._insert(sec_of_day, amount, signed, cls)
        else:
            self._insert(sec_of_day, amount, signed, cls)
        self.dirty.add(sec_of_day // CHUNK_SECONDS)

    def _insert(self, sec: int, amount: int, signed: int, cls: int) -> None:
        """The general case: a second out of order, or a compacted (cumulative) day."""
        secs, amounts = self.secs, self.amounts
        if not self.cumulative:
            classes, nets = self.classes, self.nets
            assert classes is not None and nets is not None  # they exist while not compacted
            i = bisect.bisect_left(secs, sec)
            j = i
            while j < len(secs) and secs[j] == sec:
                if cls < 0 or classes[j] == cls:
                    amounts[j] += amount
                    nets[j] += signed
                    return
                j += 1
            secs.insert(j, sec)
            classes.insert(j, max(cls, 0))
            amounts.insert(j, amount)
            nets.insert(j, signed)
            return
        i = bisect.bisect_left(secs, sec)
        if not (i < len(secs) and secs[i] == sec):  # a late trade of a compacted day: rare, so linear is fine
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
        """The day is no longer the current one: drop the class and net columns, merge the rows into one
        per second, make turnover cumulative."""
        if not self.cumulative:
            secs, amounts = array("i"), array("q")
            total = 0
            for sec, amount in zip(self.secs, self.amounts, strict=True):
                total += amount
                if secs and secs[-1] == sec:
                    amounts[-1] = total
                else:
                    secs.append(sec)
                    amounts.append(total)
            self.secs, self.amounts = secs, amounts
            self.cumulative = True
        self.classes = None
        self.nets = None
        if self.orders is not None:
            self.orders.freeze()  # kept (compressed) while the day takes late trades

    def curve_items(self) -> Iterator[tuple[int, int]]:
        """(second of day, turnover in that row), ascending (a second may repeat before compaction)."""
        if not self.cumulative:
            return zip(self.secs, self.amounts, strict=True)
        amounts = self.amounts
        return zip(self.secs, (a - (amounts[i - 1] if i else 0) for i, a in enumerate(amounts)), strict=True)

    def class_net_items(self) -> Iterator[tuple[int, int, int]]:
        """(second of day, class, active net amount) per row, ascending; empty once compacted."""
        if self.nets is None or self.classes is None:
            return iter(())
        return zip(self.secs, self.classes, self.nets, strict=True)

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
            "orders": self.orders.to_state() if self.orders is not None else None, "flows": self.flows.tolist(),
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
        """The curve's rows in one chunk: second, turnover, class and net (class and net None once compacted)."""
        lo = bisect.bisect_left(self.secs, chunk * CHUNK_SECONDS)
        hi = bisect.bisect_left(self.secs, (chunk + 1) * CHUNK_SECONDS)
        amounts = self.amounts[lo:hi]
        if self.cumulative and len(amounts):
            base = self.amounts[lo - 1] if lo else 0
            amounts = array("q", (a - b for a, b in zip(amounts, chain((base,), amounts), strict=False)))
        return {"secs": _b64(self.secs[lo:hi]), "amounts": _b64(amounts),
                "classes": _b64(self.classes[lo:hi]) if self.classes is not None else None,
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
        orders = head.get("orders")
        day.orders = OrderTotals.from_state(orders) if orders is not None else None
        day.flows = array("q", head.get("flows") or bytes(64))
        parts = sorted(((_unb64("i", c["secs"]), c) for c in chunks), key=lambda p: p[0][0] if len(p[0]) else -1)
        for secs, c in parts:
            day.secs.extend(secs)
            day.amounts.extend(_unb64("q", c["amounts"]))
            if day.nets is not None and day.classes is not None:
                if c["nets"] is None:
                    day.nets = day.classes = None
                else:
                    day.nets.extend(_unb64("q", c["nets"]))
                    classes = c.get("classes")
                    day.classes.extend(_unb64("b", classes) if classes is not None else bytes(len(secs)))
        if head["compacted"]:
            day.compact()
        return day


def _key(raw: list[Any] | None) -> tuple[int, int, str] | None:
    return (int(raw[0]), int(raw[1]), str(raw[2])) if raw else None


class EtfState:
    """Everything held for one ETF symbol."""

    __slots__ = ("symbol", "days", "windows", "units", "first_day", "summaries", "aum_folded", "iopv")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.days: dict[dt.date, EtfDay] = {}
        self.windows = SlidingSums(INTRADAY_WIDTHS, len(CLASSES))  # active net per order-size class
        self.units: dict[dt.date, tuple[int, int]] = {}  # date -> (shares micro, nav micro)
        self.first_day: dt.date | None = None  # first day held: trades, or a bar standing in
        self.summaries: dict[dt.date, DayBar] = {}  # traded days whose trades were pruned: their daily bar
        self.aum_folded: int | None = None  # highest AUM of units records pruned away (the record survives)
        self.iopv: tuple[dt.date, int, int] | None = None  # the latest IOPV by event time: (day, ts ms, micro-CNY)

    def day(self, date: dt.date) -> EtfDay:
        d = self.days.get(date)
        if d is None:
            d = self.days[date] = EtfDay()
            if self.first_day is None or date < self.first_day:
                self.first_day = date
        return d
