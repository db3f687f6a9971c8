"""Daily bars: one trading day of one symbol (open/high/low/close, volume, amount, optional shares/NAV).

A bar stands in for a closed day's trades where none were seen: its amount is
the day's turnover, its close the day's last price, its high the day's high.
Where trades exist for a day they win. Money and prices are integer micros,
as everywhere in the engine. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Protocol

BAR_FIELDS = ("open", "high", "low", "close", "volume", "amount", "shares", "nav")


class DayView(Protocol):
    """What the signals read of a day, whether it came from trades or from a bar."""

    # read-only: a traded day holds them as attributes, a bar as fields or properties
    @property
    def open(self) -> int | None: ...
    @property
    def high(self) -> int | None: ...
    @property
    def low(self) -> int | None: ...
    @property
    def last(self) -> int | None: ...
    @property
    def volume(self) -> int: ...
    @property
    def turnover(self) -> int: ...


class DayBar:
    """A daily bar (from a ``bar`` event, or the summary of a traded day kept after its trades are pruned)."""

    __slots__ = BAR_FIELDS

    def __init__(self, open: int, high: int, low: int, close: int, volume: int, amount: int,
                 shares: int | None = None, nav: int | None = None) -> None:
        self.open, self.high, self.low, self.close = open, high, low, close
        self.volume, self.amount = volume, amount
        self.shares, self.nav = shares, nav

    # the names a traded day (consumers.etf.EtfDay) uses, so both read alike
    @property
    def last(self) -> int:
        return self.close

    @property
    def turnover(self) -> int:
        return self.amount

    def key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in BAR_FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DayBar) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __repr__(self) -> str:
        return "DayBar(" + ", ".join(f"{f}={getattr(self, f)}" for f in BAR_FIELDS) + ")"

    def to_state(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in BAR_FIELDS}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> DayBar:
        return cls(*(data.get(f) for f in BAR_FIELDS))  # type: ignore[arg-type]  # written by to_state: all set

    @classmethod
    def of_day(cls, day: DayView) -> DayBar | None:
        """The summary of a traded day (None when the day has no trade)."""
        if day.last is None or day.high is None or day.low is None or day.open is None:
            return None
        return cls(day.open, day.high, day.low, day.last, day.volume, day.turnover)


def has_trades(day: DayView | None) -> bool:
    return day is not None and day.last is not None


def ohlc(day: DayView) -> dict[str, int | None]:
    """The closed-day aggregate persisted in the state topic (micros)."""
    return {"open": day.open, "high": day.high, "low": day.low, "close": day.last,
            "volume": day.volume, "amount": day.turnover}
