"""Per-stock southbound state and the consecutive net-buy-day streak.

A day's net buy is the authoritative daily record (buy - sell) when one
arrived, else the sum of the intraday ticks of both channels. The ticks' net is
also kept per channel (the daily record does not split by channel): the SH
channel's is held, the SZ channel's is the rest (a tick's channel is SH or SZ).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from consumers.dedupe import SeqSets


class SouthboundDay:
    __slots__ = ("tick_buy", "tick_sell", "tick_net_sh", "daily", "seqs")

    def __init__(self) -> None:
        self.tick_buy = 0
        self.tick_sell = 0
        self.tick_net_sh = 0  # buy - sell of the SH channel's ticks, micro-HKD (one field: kept on the hot path)
        self.daily: tuple[int, int] | None = None  # (buy, sell) micro-HKD
        self.seqs: SeqSets | None = SeqSets()  # None once the day no longer accepts ticks

    @property
    def net(self) -> int:
        if self.daily is not None:
            return self.daily[0] - self.daily[1]
        return self.tick_buy - self.tick_sell

    def channel_net(self, channel: str) -> int:
        """The ticks' net buy (buy - sell) of one channel, micro-HKD."""
        sh = self.tick_net_sh
        return sh if channel == "SH" else self.tick_buy - self.tick_sell - sh

    def to_state(self) -> dict[str, Any]:
        return {"tick_buy": self.tick_buy, "tick_sell": self.tick_sell,
                "channel_net": {"SH": self.tick_net_sh, "SZ": self.channel_net("SZ")}, "daily": self.daily,
                "seqs": self.seqs.to_state() if self.seqs is not None else None}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> SouthboundDay:
        day = cls()
        day.tick_buy, day.tick_sell = data["tick_buy"], data["tick_sell"]
        # a record written before the per-channel split has none: its ticks then count under SZ
        day.tick_net_sh = int(data.get("channel_net", {}).get("SH", 0))
        daily = data["daily"]
        day.daily = (int(daily[0]), int(daily[1])) if daily is not None else None
        seqs = data.get("seqs")
        day.seqs = SeqSets.from_state(seqs) if seqs is not None else None
        return day


class SouthboundState:
    __slots__ = ("symbol", "days")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.days: dict[dt.date, SouthboundDay] = {}

    def day(self, date: dt.date) -> SouthboundDay:
        d = self.days.get(date)
        if d is None:
            d = self.days[date] = SouthboundDay()
        return d

    def net(self, date: dt.date) -> int | None:
        d = self.days.get(date)
        return None if d is None else d.net


def streak(days_back: Iterable[dt.date], net_of: Callable[[dt.date], int | None]) -> tuple[int, int]:
    """Signed length and summed net of the run of same-signed days, newest first.

    ``days_back`` walks trading days backwards from the latest closed day; a
    missing (None) or zero day ends the run.
    """
    count, total, sign = 0, 0, 0
    for day in days_back:
        net = net_of(day)
        if not net:
            break
        s = 1 if net > 0 else -1
        if sign and s != sign:
            break
        sign = s
        count += 1
        total += net
    return sign * count, total
