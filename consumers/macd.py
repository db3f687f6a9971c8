"""MACD(12, 26, 9) on daily closes, the convention of mainland charting software.

EMA_n(t) = (2 * close_t + (n - 1) * EMA_n(t - 1)) / (n + 1), seeded with the first close;
DIF = EMA12 - EMA26; DEA = EMA9 of DIF, seeded with the first DIF (0); histogram = 2 * (DIF - DEA).
A golden cross on day D: DIF(D-1) <= DEA(D-1) and DIF(D) > DEA(D); a death cross the mirror.
Values are undefined before ``MIN_CLOSES`` closes.

Arithmetic is Decimal with 50 significant digits (prices are decimals); floats
appear only on export. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

FAST, SLOW, SIGNAL = 12, 26, 9
MIN_CLOSES = 35  # SLOW + SIGNAL: the first close at which the convention shows a value
CTX = Context(prec=50, rounding=ROUND_HALF_EVEN)
_TWO = Decimal(2)


@dataclass(frozen=True, slots=True)
class MacdPoint:
    n: int  # closes folded in, this one included
    ema_fast: Decimal
    ema_slow: Decimal
    dif: Decimal
    dea: Decimal

    @property
    def histogram(self) -> Decimal:
        return CTX.multiply(_TWO, CTX.subtract(self.dif, self.dea))

    @property
    def defined(self) -> bool:
        return self.n >= MIN_CLOSES


def _ema(prev: Decimal, value: Decimal, n: int) -> Decimal:
    c = CTX
    return c.divide(c.add(c.multiply(_TWO, value), c.multiply(Decimal(n - 1), prev)), Decimal(n + 1))


def step(prev: MacdPoint | None, close: Decimal) -> MacdPoint:
    """Fold one more close into the state."""
    if prev is None:
        zero = Decimal(0)
        return MacdPoint(1, close, close, zero, zero)
    fast = _ema(prev.ema_fast, close, FAST)
    slow = _ema(prev.ema_slow, close, SLOW)
    dif = CTX.subtract(fast, slow)
    dea = _ema(prev.dea, dif, SIGNAL)
    return MacdPoint(prev.n + 1, fast, slow, dif, dea)


def fold(closes: Iterable[Decimal], start: MacdPoint | None = None) -> MacdPoint | None:
    point = start
    for c in closes:
        point = step(point, c)
    return point


def cross(prev: MacdPoint | None, cur: MacdPoint | None) -> int:
    """+1 golden, -1 death, 0 none (also when there is no previous close)."""
    if prev is None or cur is None:
        return 0
    if prev.dif <= prev.dea and cur.dif > cur.dea:
        return 1
    if prev.dif >= prev.dea and cur.dif < cur.dea:
        return -1
    return 0


def micro_to_decimal(units: int) -> Decimal:
    """Integer micros as the exact Decimal they stand for."""
    return Decimal(units).scaleb(-6)
