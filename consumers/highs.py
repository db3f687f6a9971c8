"""Daily-history signals: new highs over N previous trading days, average daily turnover.

``prev_days`` are the calendar's trading days before today (today excluded),
``series`` maps a date to that day's view (trades, or a bar standing in).
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from fractions import Fraction

from consumers.bars import DayView

NEW_HIGH_WINDOWS = (("20d", 20), ("60d", 60), ("250d", 250))
TURNOVER_AVG_WINDOW = 20


def window_high(prev_days: Sequence[dt.date], n: int, series: Mapping[dt.date, DayView],
                first_day: dt.date | None) -> int | None:
    """The highest daily high of the ``n`` previous trading days (today excluded).

    None (no new-high signal) when fewer than ``n`` previous trading days are held (the
    history starts after the first of them) or none of them has a high.
    """
    if len(prev_days) < n or first_day is None or prev_days[-n] < first_day:
        return None
    return max((v.high for d in prev_days[-n:] if (v := series.get(d)) is not None and v.high is not None),
               default=None)


def is_new_high(today_high: int | None, window_max: int | None) -> int | None:
    """1 when today's high >= the window's highest high, else 0; None without either."""
    if today_high is None or window_max is None:
        return None
    return 1 if today_high >= window_max else 0


def new_high_all(today_high: int | None, prev_max: int | None) -> int | None:
    """All history held: 1 when today's high >= every earlier daily high (vacuously, with none)."""
    if today_high is None:
        return None
    return 1 if prev_max is None or today_high >= prev_max else 0


def average_turnover(days: Sequence[dt.date], series: Mapping[dt.date, DayView]) -> Fraction | None:
    """Mean turnover (micros, exact) over the given closed days that have data; None without any."""
    vals = [v.turnover for d in days if (v := series.get(d)) is not None]
    if not vals:
        return None
    return Fraction(sum(vals), len(vals))


def ytd_days(prev_days: Sequence[dt.date], today: dt.date) -> list[dt.date]:
    """The trading days of today's calendar year before today."""
    start = dt.date(today.year, 1, 1)
    return [d for d in prev_days if d >= start]
