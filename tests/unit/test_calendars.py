"""Trading days from exchange-calendars, southbound intersection and configured closures."""

from __future__ import annotations

import datetime as dt

from monitor.calendars import Calendars, default_calendars, iso, parse_closures
from monitor.config import Closure

D = dt.date


def test_national_day_holiday_is_not_a_trading_day() -> None:
    cal = default_calendars()
    assert D(2025, 10, 1) not in cal["SH"]
    assert cal["SH"].previous(D(2025, 10, 9)) == D(2025, 9, 30)


def test_sz_uses_the_shanghai_calendar() -> None:
    cal = default_calendars()
    assert cal["SZ"].dates == cal["SH"].dates


def test_southbound_days_need_both_markets_open() -> None:
    cal = default_calendars()
    # 2025-12-25/26: HKEX closed, Shanghai open -> no southbound
    assert D(2025, 12, 25) in cal["SH"] and D(2025, 12, 25) not in cal["SB"]
    # 2025-10-02: HKEX open, mainland on the National Day holiday -> no southbound
    assert D(2025, 10, 2) in cal["HK"] and D(2025, 10, 2) not in cal["SB"]
    assert len(cal["SB"].last_n(D(2025, 9, 12), 20)) == 20


def test_hk_half_day_session_and_southbound_keeps_hkex_hours() -> None:
    cal = default_calendars()
    half = cal["HK"].session(D(2025, 12, 24))
    assert half is not None and iso(half.close_ms).endswith("T12:00:00.000+08:00")
    sb = cal["SB"].session(D(2025, 9, 12))
    assert sb is not None and iso(sb.close_ms) == "2025-09-12T16:00:00.000+08:00"


def test_trading_minutes_exclude_the_lunch_break() -> None:
    s = default_calendars()["SH"].session(D(2025, 9, 12))
    assert s is not None
    assert s.trading_ms == 240 * 60_000
    assert s.elapsed_ms(s.break_start_ms + 45 * 60_000) == 120 * 60_000  # 12:15 is 120 minutes in
    assert s.elapsed_ms(s.break_end_ms + 10 * 60_000) == 130 * 60_000


def test_typhoon_whole_day_closure_removes_the_day() -> None:
    cal = Calendars(parse_closures([Closure(market="HK", date="2025-09-24")]))
    assert D(2025, 9, 24) not in cal["HK"]
    assert D(2025, 9, 24) not in cal["SB"]
    assert D(2025, 9, 24) in cal["SH"]


def test_black_rainstorm_from_a_time_of_day_truncates_the_session() -> None:
    cal = Calendars(parse_closures([Closure(market="HK", date="2025-09-24", from_time="11:00")]))
    s = cal["HK"].session(D(2025, 9, 24))
    assert s is not None and iso(s.close_ms) == "2025-09-24T11:00:00.000+08:00"
    assert s.break_start_ms is None and s.trading_ms == 90 * 60_000


def test_back_from_walks_trading_days_newest_first() -> None:
    sh = default_calendars()["SH"]
    walk = sh.back_from(dt.date(2025, 10, 9))  # the first trading day after the National Day holiday
    assert [next(walk) for _ in range(3)] == [dt.date(2025, 10, 9), dt.date(2025, 9, 30), dt.date(2025, 9, 29)]
    assert list(sh.back_from(dt.date(2025, 10, 5)))[:1] == [dt.date(2025, 9, 30)]  # from a holiday
    assert list(sh.back_from(sh.first)) == [sh.first]
