"""One named scenario per rule of issue 4, each with its input and the numbers written out.

Events go through the Validator and the Engine (what the consumer runner does);
the expected numbers are worked out by hand in the comments. At the end,
hypothesis properties for the intraday windows and the streak at engine level.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import views
from consumers.engine import Engine
from consumers.southbound import streak
from harness.docs import etf_doc, sb_doc
from monitor import documents
from monitor.calendars import Calendars, default_calendars, parse_closures
from monitor.config import Closure
from monitor.events import Rejected, Validator

UTC8 = dt.timezone(dt.timedelta(hours=8))
ETF = "513770.SH"
STOCK = "09988.HK"


def at(day: str, hms: str, ms: int = 0) -> int:
    """Epoch ms of an exchange (UTC+8) time."""
    h, m, s = (int(x) for x in hms.split(":"))
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, h, m, s, tzinfo=UTC8).timestamp() * 1000) + ms


_ids = iter(range(1, 1 << 30))


def trade(ts: int, price: float, volume: int, side: str | None = None, *, symbol: str = ETF,
          amount: float | None = None, tid: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {"kind": "trade", "symbol": symbol, "ts": ts, "price": price, "volume": volume,
                          "trade_id": tid or f"t{next(_ids)}"}
    if side:
        ev["side"] = side
    if amount is not None:
        ev["amount"] = amount
    return ev


def tick(ts: int, buy: float, sell: float, seq: int, channel: str = "SH", symbol: str = STOCK) -> dict[str, Any]:
    return {"kind": "southbound", "symbol": symbol, "ts": ts, "channel": channel, "buy_hkd": buy,
            "sell_hkd": sell, "seq": seq}


def daily(day: str, buy: float, sell: float, symbol: str = STOCK) -> dict[str, Any]:
    return {"kind": "southbound_daily", "symbol": symbol, "date": day, "buy_hkd": buy, "sell_hkd": sell}


def units(day: str, shares: int, nav: float, symbol: str = ETF) -> dict[str, Any]:
    return {"kind": "units", "symbol": symbol, "date": day, "shares_outstanding": shares, "nav": nav}


class Run:
    """Events through the Validator and the Engine; rejections counted by reason."""

    def __init__(self, events: Iterable[dict[str, Any]], closures: Iterable[dict[str, str]] = (), grace: int = 60) -> None:
        closures = list(closures)
        cals = Calendars(parse_closures([Closure(**c) for c in closures])) if closures else default_calendars()
        self.validator = Validator(cals)
        self.engine = Engine(cals, grace_seconds=grace)
        self.rejected: Counter[str] = Counter()
        self.statuses: list[str] = []
        for obj in events:
            self.add(obj)

    def add(self, obj: dict[str, Any]) -> str:
        try:
            ev = self.validator.validate(obj)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            self.statuses.append("rejected")
            return "rejected"
        status = self.engine.apply(ev)
        self.statuses.append(status)
        return status

    @property
    def report(self) -> dict[str, Any]:
        return documents.report(self.engine, 10, dict(self.rejected))

    def etf(self, symbol: str = ETF) -> dict[str, Any]:
        doc = etf_doc(self.engine, symbol)
        assert doc is not None
        return doc

    def sb(self, symbol: str = STOCK) -> dict[str, Any]:
        doc = sb_doc(self.engine, symbol)
        assert doc is not None
        return doc


# --------------------------------------------------------------------------- calendars and closures
def test_sh_trades_on_xshg_days_and_hk_on_xhkg_days() -> None:
    """Good Friday 2025-04-18: HKEX shut, Shanghai open; 2025-10-02: Shanghai shut, HKEX open."""
    r = Run([trade(at("2025-04-18", "10:00:00"), 1.0, 100),
             trade(at("2025-04-18", "10:00:00"), 20.0, 100, symbol="02800.HK"),
             trade(at("2025-10-02", "10:00:00"), 1.0, 100),
             trade(at("2025-10-02", "10:00:00"), 20.0, 100, symbol="02800.HK")])
    assert r.statuses == ["applied", "rejected", "rejected", "applied"]
    assert r.rejected == {"outside_session": 2}


def test_sz_uses_the_shanghai_trading_days() -> None:
    r = Run([trade(at("2025-10-08", "10:00:00"), 1.0, 100, symbol="159920.SZ"),  # National Day holiday
             trade(at("2025-10-09", "10:00:00"), 1.0, 100, symbol="159920.SZ")])
    assert r.statuses == ["rejected", "applied"]


def test_southbound_day_needs_hkex_and_the_mainland_open() -> None:
    """25 Dec: HKEX shut (Shanghai open); 2 Oct: Shanghai shut (HKEX open): no southbound either day."""
    r = Run([daily("2025-12-25", 10.0, 0.0), tick(at("2025-10-02", "10:00:00"), 10.0, 0.0, 1),
             daily("2025-12-24", 10.0, 0.0)])
    assert r.statuses == ["rejected", "rejected", "applied"]


def test_southbound_tick_needs_the_mainland_exchange_of_its_channel() -> None:
    """Shenzhen shut all of 2025-09-12 (Shanghai open): SZ-channel ticks that day are outside a session,
    SH-channel ticks are not; the stock's day is still a southbound day (via Shanghai)."""
    r = Run([tick(at("2025-09-12", "10:00:00"), 10.0, 0.0, 1, "SH"), tick(at("2025-09-12", "10:00:01"), 99.0, 0.0, 1, "SZ")],
            [{"market": "SZ", "date": "2025-09-12"}])
    assert r.statuses == ["applied", "rejected"]
    assert r.sb()["net_buy_hkd"]["1d"] == 10.0


def test_typhoon_whole_day_closure_is_not_a_trading_day() -> None:
    """HK closed all of 2025-09-24: a daily record for it is rejected, and the 5d window skips the day."""
    closure = [{"market": "HK", "date": "2025-09-24"}]
    evs = [daily(d, 100.0, 0.0) for d in ("2025-09-19", "2025-09-22", "2025-09-23", "2025-09-24", "2025-09-25",
                                          "2025-09-26")]
    r = Run(evs, closure)
    assert r.statuses.count("rejected") == 1
    # 5 southbound days ending 26 Sep without the 24th: 19, 22, 23, 25, 26 -> 500
    assert r.sb()["net_buy_hkd"]["5d"] == 500.0
    assert r.sb()["streak_days"] == 5
    plain = Run(evs)  # without the closure the 24th trades and the 19th falls out of the 5 days
    assert plain.sb()["net_buy_hkd"]["5d"] == 500.0 and plain.sb()["streak_days"] == 6


def test_black_rainstorm_from_a_time_of_day() -> None:
    """Shanghai stops at 10:30 on 2025-09-12: a trade at 13:30 (over the 60 min margin after 10:30) is
    rejected, 11:00 is kept; the volume ratio counts 60 minutes of trading for that day."""
    closure = [{"market": "SH", "date": "2025-09-12", "from_time": "10:30"}]
    prev = ["2025-09-05", "2025-09-08", "2025-09-09", "2025-09-10", "2025-09-11"]
    evs = [trade(at(d, "10:00:00"), 1.0, 2400, "B") for d in prev]  # 12000 shares over 5 x 240 min = 10/min
    evs += [trade(at("2025-09-12", "10:00:00"), 1.0, 600, "B"), trade(at("2025-09-12", "11:00:00"), 1.0, 600, "B"),
            trade(at("2025-09-12", "13:30:00"), 1.0, 600, "B")]
    r = Run(evs, closure)
    assert r.statuses[-3:] == ["applied", "applied", "rejected"]
    # as_of 11:00 is past the 10:30 close: elapsed = 60 min; 1200 / 60 = 20/min vs 10/min -> 2.0
    assert r.etf()["volume_ratio"] == pytest.approx(2.0, rel=1e-12)


def test_mainland_closure_from_a_time_ends_the_southbound_day_early() -> None:
    """Both mainland markets stop at 11:00 on 2025-09-12: the southbound day is closed at 11:00:01."""
    closures = [{"market": "SH", "date": "2025-09-12", "from_time": "11:00"},
                {"market": "SZ", "date": "2025-09-12", "from_time": "11:00"}]
    evs = [daily("2025-09-11", 50.0, 0.0), tick(at("2025-09-12", "10:00:00"), 30.0, 0.0, 1),
           tick(at("2025-09-12", "11:00:01"), 0.0, 0.0, 2)]
    r = Run(evs, closures)
    assert r.sb()["provisional_net_buy_hkd"] is None and r.sb()["streak_days"] == 2
    assert r.sb()["streak_net_buy_hkd"] == 80.0
    open_day = Run(evs)  # no closure: HKEX hours, still open at 11:00:01
    assert open_day.sb()["provisional_net_buy_hkd"] == 30.0 and open_day.sb()["streak_days"] == 1


# --------------------------------------------------------------------------- money, duplicates, order, clock
def test_money_is_exact_no_float_drift() -> None:
    """Ten buys of 0.1 CNY: a float sum gives 0.9999999999999999, the rule wants 1.0 exactly."""
    evs = [trade(at("2025-09-12", "10:00:00", i), 0.001, 100, "B", amount=0.1) for i in range(10)]
    r = Run(evs)
    assert sum([0.1] * 10) != 1.0
    assert r.etf()["net_inflow_cny"]["1d"] == 1.0 and r.etf()["turnover_cny"] == 1.0


def test_amount_defaults_to_price_times_volume() -> None:
    """No amount: 1.001 x 333 = 333.333 CNY; given amount 333.30 wins over price x volume."""
    r = Run([trade(at("2025-09-12", "10:00:00"), 1.001, 333, "B"),
             trade(at("2025-09-12", "10:00:01"), 1.001, 333, "S", amount=333.3)])
    assert r.etf()["turnover_cny"] == 666.633
    assert r.etf()["net_inflow_cny"]["1d"] == pytest.approx(0.033, abs=1e-9)


def test_duplicate_trade_id_is_applied_once_and_counted() -> None:
    t = trade(at("2025-09-12", "10:00:00"), 1.0, 1000, "B", tid="X1")
    r = Run([t, dict(t), trade(at("2025-09-12", "10:00:05"), 1.0, 500, "S"), dict(t)])
    assert r.statuses == ["applied", "duplicate", "applied", "duplicate"]
    assert r.etf()["net_inflow_cny"]["1d"] == 500.0 and r.etf()["turnover_cny"] == 1500.0
    assert r.report["duplicates"] == 2


def test_duplicate_channel_and_seq_is_applied_once_but_the_other_channel_is_not_a_duplicate() -> None:
    a = tick(at("2025-09-12", "10:00:00"), 100.0, 40.0, 7, "SH")
    r = Run([a, dict(a), tick(at("2025-09-12", "10:00:00"), 10.0, 0.0, 7, "SZ")])
    assert r.statuses == ["applied", "duplicate", "applied"]
    assert r.sb()["net_buy_hkd"]["1d"] == 70.0


def test_final_state_is_a_function_of_the_set_of_events() -> None:
    """Sides given: any arrival order gives the same report (late counts aside)."""
    evs = [trade(at("2025-09-11", "14:00:00"), 1.0, 100, "S")]
    evs += [trade(at("2025-09-12", "10:00:00", 137 * i), 1.0 + (i % 4) / 1000, 100 * (i + 1), "BS"[i % 2])
            for i in range(30)]
    evs += [tick(at("2025-09-12", "10:00:00", 999 * i), i, 2 * (i % 3), i) for i in range(20)]
    evs += [units("2025-09-11", 1000, 1.5), units("2025-09-12", 1200, 1.25), daily("2025-09-11", 5.0, 9.0)]
    base = Run(evs).report
    base.pop("late")
    for seed in range(5):
        shuffled = evs[:]
        random.Random(seed).shuffle(shuffled)
        other = Run(shuffled).report
        other.pop("late")
        assert other == base


def test_tick_rule_depends_on_arrival_order() -> None:
    """The one exception: 1.000 then 1.001 is an up-tick (buy); 1.001 then 1.000 a down-tick (sell)."""
    a = trade(at("2025-09-12", "10:00:00"), 1.000, 100, tid="a")
    b = trade(at("2025-09-12", "10:00:01"), 1.001, 100, tid="b")
    assert Run([a, b]).etf()["net_inflow_cny"]["1d"] == pytest.approx(100.1)  # a neutral, b buy
    assert Run([b, a]).etf()["net_inflow_cny"]["1d"] == pytest.approx(-100.0)  # b neutral, a sell


def test_as_of_is_the_greatest_event_time_and_a_late_event_does_not_move_it_back() -> None:
    r = Run([trade(at("2025-09-12", "10:00:00", 250), 1.0, 100, "B"), trade(at("2025-09-12", "09:40:00"), 1.0, 100, "B")])
    assert r.report["as_of"] == "2025-09-12T10:00:00.250+08:00"


def test_live_clock_is_max_of_events_and_wall_clock() -> None:
    cals = default_calendars()
    wall = [at("2025-09-12", "10:10:00")]
    eng = Engine(cals, live_clock=True, wall_ms=lambda: wall[0])
    eng.apply(Validator(cals).validate(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B")))
    assert eng.now_ms() == wall[0]
    assert etf_doc(eng, ETF)["net_inflow_cny"]["5m"] == 0.0  # the quiet window decayed with the wall clock
    assert etf_doc(eng, ETF)["net_inflow_cny"]["15m"] == 100.0
    wall[0] = at("2025-09-12", "09:00:00")  # a wall clock behind the stream does not pull it back
    assert eng.now_ms() == at("2025-09-12", "10:00:00")


# --------------------------------------------------------------------------- intraday windows and lateness
def test_window_boundary_event_at_floor_as_of_minus_60s_is_out_of_1m() -> None:
    """as_of 10:01:00.999 -> floor 10:01:00; 10:00:00.999 (floor 10:00:00) is out, 10:00:01.000 is in."""
    r = Run([trade(at("2025-09-12", "10:00:00", 999), 1.0, 100, "B"),
             trade(at("2025-09-12", "10:00:01", 0), 1.0, 200, "B"),
             trade(at("2025-09-12", "10:01:00", 999), 1.0, 400, "B")])
    net = r.etf()["net_inflow_cny"]
    assert net["1m"] == 600.0 and net["5m"] == 700.0


@pytest.mark.parametrize("window,width", [("5m", 300), ("15m", 900), ("1h", 3600)])
def test_each_window_edge(window: str, width: int) -> None:
    now = at("2025-09-12", "14:30:00")
    r = Run([trade(now - width * 1000, 1.0, 100, "B"), trade(now - width * 1000 + 1000, 1.0, 200, "B"),
             trade(now, 1.0, 400, "S")])
    assert r.etf()["net_inflow_cny"][window] == -200.0  # the event exactly W old is out, W-1 s old is in


def test_late_beyond_grace_counts_in_its_window_and_is_counted_late() -> None:
    """Clock 10:10:00; a trade of 10:08:30 arrives 90 s behind (grace 60 s): late, still in 5m and 1d."""
    r = Run([trade(at("2025-09-12", "10:10:00"), 1.0, 100, "B"), trade(at("2025-09-12", "10:08:30"), 1.0, 300, "B"),
             trade(at("2025-09-12", "10:09:00"), 1.0, 500, "B")])  # exactly 60 s behind: within the grace
    assert r.statuses == ["applied", "late", "applied"]
    net = r.etf()["net_inflow_cny"]
    assert net["1m"] == 100.0  # 10:09:00 is exactly 60 s old: not late, but out of 1m
    assert net["5m"] == 900.0 and net["1d"] == 900.0
    assert r.report["late"] == 1


def test_grace_is_configurable() -> None:
    evs = [trade(at("2025-09-12", "10:10:00"), 1.0, 100, "B"), trade(at("2025-09-12", "10:08:30"), 1.0, 300, "B")]
    assert Run(evs, grace=120).report["late"] == 0
    assert Run(evs, grace=60).report["late"] == 1


# --------------------------------------------------------------------------- active net inflow and the tick rule
def test_active_net_inflow_is_buys_minus_sells() -> None:
    r = Run([trade(at("2025-09-12", "10:00:00"), 1.0, 1000, "B"), trade(at("2025-09-12", "10:00:01"), 1.0, 300, "S"),
             trade(at("2025-09-12", "10:00:02"), 1.0, 200, "b")])
    assert r.etf()["net_inflow_cny"]["1d"] == 900.0


def test_tick_rule_uptick_buy_downtick_sell_zero_tick_uses_last_different_price() -> None:
    """Prices 1.000 (no reference: neutral), 1.002 (up: buy 1002), 1.002 (zero tick after an up: buy 1002),
    1.001 (down: sell 1001), 1.001 (zero after a down: sell 1001) -> net 1002 + 1002 - 1001 - 1001 = 2."""
    prices = (1.000, 1.002, 1.002, 1.001, 1.001)
    r = Run([trade(at("2025-09-12", "10:00:00", i), p, 1000) for i, p in enumerate(prices)])
    assert r.etf()["net_inflow_cny"]["1d"] == pytest.approx(2.0, abs=1e-9)
    assert r.etf()["turnover_cny"] == pytest.approx(5006.0)


def test_first_trade_of_day_uses_previous_session_last_price() -> None:
    """11 Sep closes at 1.060 (the 14:59 trade, though it arrives first); 12 Sep opens at 1.065 -> buy."""
    evs = [trade(at("2025-09-11", "14:59:00"), 1.060, 100, "S"), trade(at("2025-09-11", "10:00:00"), 1.070, 100, "B"),
           trade(at("2025-09-12", "09:30:00"), 1.065, 1000)]
    assert Run(evs).etf()["net_inflow_cny"]["1d"] == pytest.approx(1065.0)
    down = evs[:2] + [trade(at("2025-09-12", "09:30:00"), 1.055, 1000)]
    assert Run(down).etf()["net_inflow_cny"]["1d"] == pytest.approx(-1055.0)


def test_first_trade_across_a_holiday_compares_with_the_last_session_before_it() -> None:
    """30 Sep is the session before 9 Oct (National Day): its last price 1.000 is the reference."""
    evs = [trade(at("2025-09-30", "14:00:00"), 1.000, 100, "B"), trade(at("2025-10-09", "09:30:00"), 0.990, 1000)]
    assert Run(evs).etf()["net_inflow_cny"]["1d"] == pytest.approx(-990.0)


def test_no_reference_is_neutral() -> None:
    """First trade with no previous session (and a first trade equal to it) counts in neither side."""
    assert Run([trade(at("2025-09-12", "09:30:00"), 1.0, 1000)]).etf()["net_inflow_cny"]["1d"] == 0.0
    same = [trade(at("2025-09-11", "14:00:00"), 1.0, 100, "B"), trade(at("2025-09-12", "09:30:00"), 1.0, 1000)]
    assert Run(same).etf()["net_inflow_cny"]["1d"] == 0.0
    # the previous session (11 Sep) had no trades: no reference, even though 10 Sep has a price
    gap = [trade(at("2025-09-10", "14:00:00"), 0.9, 100, "B"), trade(at("2025-09-12", "09:30:00"), 1.0, 1000)]
    assert Run(gap).etf()["net_inflow_cny"]["1d"] == 0.0


def test_trades_with_a_side_still_move_the_tick_reference() -> None:
    """1.000 (side B), 1.001 (side S given), then 1.002 without side: up vs 1.001 -> buy."""
    r = Run([trade(at("2025-09-12", "10:00:00"), 1.000, 100, "B"), trade(at("2025-09-12", "10:00:01"), 1.001, 100, "S"),
             trade(at("2025-09-12", "10:00:02"), 1.002, 100)])
    assert r.etf()["net_inflow_cny"]["1d"] == pytest.approx(100.0 - 100.1 + 100.2)


# --------------------------------------------------------------------------- multi-day ETF windows
def test_etf_day_windows_count_trading_days_across_a_holiday() -> None:
    """XSHG days up to 10 Oct: ..., 25, 26, 29, 30 Sep, 9, 10 Oct. 5d = 26 Sep .. 10 Oct; 25 Sep only in 20d."""
    days = {"2025-09-25": 1, "2025-09-26": 10, "2025-09-29": 100, "2025-09-30": 1000, "2025-10-09": 10000,
            "2025-10-10": 100000}
    r = Run([trade(at(d, "10:00:00"), 1.0, v, "B") for d, v in days.items()])
    net = r.etf()["net_inflow_cny"]
    assert (net["1d"], net["5d"], net["20d"]) == (100000.0, 111110.0, 111111.0)


def test_current_day_follows_the_latest_units_date() -> None:
    """A units record dated Friday 12 Sep after trades of Thursday: 1d is Friday's (0), Thursday is prev."""
    r = Run([trade(at("2025-09-11", "10:00:00"), 1.0, 700, "B"), units("2025-09-12", 100, 1.0)])
    doc = r.etf()
    assert doc["net_inflow_cny"]["1d"] == 0.0 and doc["net_inflow_cny"]["5d"] == 700.0
    assert doc["turnover_cny"] == 0.0 and doc["prev_turnover_cny"] == 700.0


# --------------------------------------------------------------------------- creation / redemption
def test_creation_inflow_is_share_change_times_nav_of_the_day() -> None:
    """Units: 29 Sep 1000 @1.50 (first: no inflow), 30 Sep 1200 @1.25 (+250), 9 Oct 1100 @1.40 (-140),
    10 Oct 1100 @1.41 (0). 1d = 0, 5d = 250 - 140 = 110 (29 Sep has none), 20d = 110."""
    r = Run([units("2025-09-29", 1000, 1.5), units("2025-09-30", 1200, 1.25), units("2025-10-09", 1100, 1.4),
             units("2025-10-10", 1100, 1.41)])
    c = r.etf()["creation_net_inflow_cny"]
    assert (c["1d"], c["5d"], c["20d"]) == (0.0, 110.0, 110.0)
    assert r.etf()["aum_cny"] == pytest.approx(1551.0)


def test_creation_windows_end_at_the_latest_units_date_and_prev_is_the_previous_record() -> None:
    """Records 1 Sep (10000) and 12 Sep (10500 @2.0): the gap's change lands on 12 Sep: +1000. 5d from
    12 Sep holds it; a single record has nothing defined."""
    r = Run([units("2025-09-01", 10000, 1.9), units("2025-09-12", 10500, 2.0)])
    assert r.etf()["creation_net_inflow_cny"] == {"1d": 1000.0, "5d": 1000.0, "20d": 1000.0}
    assert Run([units("2025-09-12", 10500, 2.0)]).etf()["creation_net_inflow_cny"] == {"1d": None, "5d": None, "20d": None}


def test_creation_outside_the_window_is_left_out() -> None:
    """Inflow on 1 Sep (+100 @1) then nothing until 12 Sep (no change): 5d at 12 Sep is 0, 20d is 100."""
    r = Run([units("2025-08-29", 1000, 1.0), units("2025-09-01", 1100, 1.0), units("2025-09-12", 1100, 1.0)])
    c = r.etf()["creation_net_inflow_cny"]
    assert (c["1d"], c["5d"], c["20d"]) == (0.0, 0.0, 100.0)


# --------------------------------------------------------------------------- turnover, volume ratio, price change
def test_turnover_full_day_and_same_time_ratio() -> None:
    """Prev day: 100 at 10:00, 300 at 14:00 (400). Today by 10:30: 150. full_day = 150/400 = 0.375,
    same_time = 150 / 100 = 1.5 (the previous day up to 10:30)."""
    r = Run([trade(at("2025-09-11", "10:00:00"), 1.0, 100, "B"), trade(at("2025-09-11", "14:00:00"), 1.0, 300, "B"),
             trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"), trade(at("2025-09-12", "10:30:00"), 1.0, 50, "B")])
    doc = r.etf()
    assert doc["turnover_cny"] == 150.0 and doc["prev_turnover_cny"] == 400.0
    assert doc["turnover_vs_prev_session_ratio"] == {"full_day": 0.375, "same_time": 1.5}


def test_same_time_includes_the_previous_days_trade_in_the_same_second() -> None:
    """as_of 10:30:00.500; yesterday's trade at 10:30:00.900 is in the same second, 10:30:01 is not."""
    r = Run([trade(at("2025-09-11", "10:30:00", 900), 1.0, 200, "B"), trade(at("2025-09-11", "10:30:01"), 1.0, 800, "B"),
             trade(at("2025-09-12", "10:30:00", 500), 1.0, 300, "B")])
    assert r.etf()["turnover_vs_prev_session_ratio"]["same_time"] == 1.5


def test_ratios_are_null_without_a_previous_day() -> None:
    doc = Run([trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B")]).etf()
    assert doc["prev_turnover_cny"] is None
    assert doc["turnover_vs_prev_session_ratio"] == {"full_day": None, "same_time": None}
    assert doc["volume_ratio"] is None and doc["price_change_ratio"] is None and doc["aum_cny"] is None


def test_volume_ratio_excludes_lunch_break() -> None:
    """5 previous days x 2400 shares over 240 minutes = 10/min. Today 1800 shares by 13:30: the elapsed
    trading time is 120 + 30 = 150 minutes (not 240), so 12/min -> 1.2."""
    prev = ["2025-09-05", "2025-09-08", "2025-09-09", "2025-09-10", "2025-09-11"]
    evs = [trade(at(d, "10:00:00"), 1.0, 2400, "B") for d in prev]
    evs.append(trade(at("2025-09-12", "13:30:00"), 1.0, 1800, "B"))
    doc = Run(evs).etf()
    assert doc["volume_ratio"] == pytest.approx(1.2, rel=1e-12)  # a clock-time reading would give 0.75


def test_volume_ratio_needs_five_previous_days_of_history() -> None:
    prev = ["2025-09-08", "2025-09-09", "2025-09-10", "2025-09-11"]
    evs = [trade(at(d, "10:00:00"), 1.0, 2400, "B") for d in prev] + [trade(at("2025-09-12", "11:00:00"), 1.0, 900, "B")]
    assert Run(evs).etf()["volume_ratio"] is None


def test_volume_ratio_with_a_half_day_in_the_previous_five() -> None:
    """HK ETF 02800.HK on 31 Dec 2025 (half day: 09:30-12:00, 150 min). Days before 2 Jan 2026: 23, 24 (half),
    29, 30, 31 (half) Dec: 330 + 150 + 330 + 330 + 150 = 1290 min, 1290 shares -> 1/min. 2 Jan by 10:00
    (30 min) 60 shares -> 2/min -> ratio 2.0."""
    sym = "02800.HK"
    prev = ["2025-12-23", "2025-12-24", "2025-12-29", "2025-12-30", "2025-12-31"]
    vols = [330, 150, 330, 330, 150]
    evs = [trade(at(d, "10:00:00"), 20.0, v, "B", symbol=sym) for d, v in zip(prev, vols, strict=True)]
    evs.append(trade(at("2026-01-02", "10:00:00"), 20.0, 60, "B", symbol=sym))
    assert Run(evs).etf(sym)["volume_ratio"] == pytest.approx(2.0, rel=1e-12)


def test_price_change_ratio_and_aum() -> None:
    """Last 1.072 vs previous day's last 1.060 -> +1.1320754716981%; aum = 8.6e9 shares x 1.0733 NAV."""
    r = Run([trade(at("2025-09-11", "14:59:00"), 1.060, 100, "B"), trade(at("2025-09-11", "14:00:00"), 1.09, 100, "B"),
             trade(at("2025-09-12", "14:59:59"), 1.072, 100, "B"), trade(at("2025-09-12", "10:00:00"), 1.05, 100, "S"),
             units("2025-09-11", 8_500_000_000, 1.0601), units("2025-09-12", 8_600_000_000, 1.0733)])
    doc = r.etf()
    assert doc["price_change_ratio"] == pytest.approx(1.072 / 1.060 - 1, rel=1e-12)
    assert doc["aum_cny"] == pytest.approx(9_230_380_000.0, abs=0.01)


# --------------------------------------------------------------------------- southbound
def test_southbound_daily_overrides_ticks_else_ticks_of_both_channels() -> None:
    """11 Sep: ticks say +90 but the daily record says 100 - 40 = +60. 12 Sep: ticks only, SH +30, SZ -5."""
    r = Run([tick(at("2025-09-11", "10:00:00"), 90.0, 0.0, 1), daily("2025-09-11", 100.0, 40.0),
             tick(at("2025-09-12", "10:00:00"), 30.0, 0.0, 2, "SH"), tick(at("2025-09-12", "10:00:01"), 0.0, 5.0, 1, "SZ")])
    net = r.sb()["net_buy_hkd"]
    assert (net["1d"], net["5d"], net["20d"]) == (25.0, 85.0, 85.0)


def test_southbound_windows_count_southbound_days() -> None:
    """Southbound days to 10 Oct: 26, 29, 30 Sep, 9, 10 Oct (HKEX's 2/3/6/8 Oct are not: mainland shut)."""
    evs = [daily(d, v, 0.0) for d, v in (("2025-09-25", 1.0), ("2025-09-26", 10.0), ("2025-09-29", 100.0),
                                          ("2025-09-30", 1000.0), ("2025-10-09", 10000.0), ("2025-10-10", 100000.0))]
    net = Run(evs).sb()["net_buy_hkd"]
    assert (net["1d"], net["5d"], net["20d"]) == (100000.0, 111110.0, 111111.0)


def test_streak_broken_by_zero_day_but_not_by_a_holiday() -> None:
    """Dailies: 25 Sep 0 (zero), 26 Sep +1, 29 Sep +2, 30 Sep +3, [National Day], 9 Oct +4, 10 Oct +5.
    Streak 5 days, 15 HKD: the holiday does not break it, the zero day does."""
    evs = [daily("2025-09-24", 7.0, 0.0), daily("2025-09-25", 5.0, 5.0)]
    evs += [daily(d, float(i + 1), 0.0) for i, d in enumerate(("2025-09-26", "2025-09-29", "2025-09-30", "2025-10-09",
                                                               "2025-10-10"))]
    doc = Run(evs).sb()
    assert (doc["streak_days"], doc["streak_net_buy_hkd"]) == (5, 15.0)
    assert doc["provisional_net_buy_hkd"] is None  # the last day has its daily record: closed


def test_streak_broken_by_a_missing_day() -> None:
    evs = [daily("2025-09-08", 5.0, 0.0), daily("2025-09-10", 6.0, 0.0), daily("2025-09-11", 7.0, 0.0)]
    assert Run(evs).sb()["streak_days"] == 2  # 9 Sep has no data


def test_negative_streak_is_a_negative_count() -> None:
    evs = [daily("2025-09-09", 9.0, 0.0), daily("2025-09-10", 0.0, 6.0), daily("2025-09-11", 1.0, 8.0)]
    doc = Run(evs).sb()
    assert (doc["streak_days"], doc["streak_net_buy_hkd"]) == (-2, -13.0)


def test_unclosed_day_is_provisional_and_not_in_the_streak() -> None:
    """11 Sep +7 (daily); 12 Sep ticks -3 at 15:59:59: open (HKEX closes 16:00) -> provisional -3, streak +1.
    A tick stamped 16:00:00.001 closes the day (clock past the close): streak -1 from the 12th's ticks."""
    evs = [daily("2025-09-10", 2.0, 0.0), daily("2025-09-11", 7.0, 0.0), tick(at("2025-09-12", "15:59:59"), 0.0, 3.0, 1)]
    r = Run(evs)
    assert (r.sb()["streak_days"], r.sb()["streak_net_buy_hkd"], r.sb()["provisional_net_buy_hkd"]) == (2, 9.0, -3.0)
    r.add(tick(at("2025-09-12", "16:00:00", 1), 0.0, 0.0, 2))
    assert (r.sb()["streak_days"], r.sb()["streak_net_buy_hkd"], r.sb()["provisional_net_buy_hkd"]) == (-1, -3.0, None)


def test_daily_record_closes_the_day_before_the_session_ends() -> None:
    r = Run([daily("2025-09-11", 7.0, 0.0), tick(at("2025-09-12", "10:00:00"), 3.0, 0.0, 1), daily("2025-09-12", 4.0, 0.0)])
    doc = r.sb()
    assert (doc["streak_days"], doc["streak_net_buy_hkd"], doc["provisional_net_buy_hkd"]) == (2, 11.0, None)


def test_half_day_closes_at_noon() -> None:
    """24 Dec 2025 is an HKEX half day (closes 12:00): a tick at 12:00:01 means the day is closed."""
    r = Run([daily("2025-12-23", 1.0, 0.0), tick(at("2025-12-24", "11:00:00"), 2.0, 0.0, 1),
             tick(at("2025-12-24", "12:00:01"), 0.0, 0.0, 2)])
    assert (r.sb()["streak_days"], r.sb()["provisional_net_buy_hkd"]) == (2, None)


def test_top_n_ranked_by_20d_net_buy() -> None:
    evs = [daily("2025-09-11", 500.0, 0.0, "00700.HK"), daily("2025-09-11", 900.0, 0.0, "09988.HK"),
           daily("2025-08-01", 10_000.0, 0.0, "01810.HK"),  # outside the 20 southbound days to 11 Sep
           daily("2025-09-10", 0.0, 50.0, "03690.HK"), daily("2025-09-11", 100.0, 0.0, "03690.HK")]
    r = Run(evs)
    assert views.top_southbound(r.engine, "20d", 3) == [("09988.HK", 900_000_000), ("00700.HK", 500_000_000),
                                                       ("03690.HK", 50_000_000)]  # micro-HKD
    assert r.report["top_southbound_20d"][-1] == ["01810.HK", 0.0]


def test_report_shape_and_nulls() -> None:
    r = Run([trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"), tick(at("2025-09-12", "10:00:00"), 1.0, 0.0, 1),
             {"kind": "trade", "symbol": ETF, "ts": at("2025-09-13", "10:00:00"), "price": 1.0, "volume": 1,
              "trade_id": "weekend"}])
    rep = r.report
    assert set(rep) == {"as_of", "symbols", "top_southbound_20d", "sectors", "southbound_quota", "rejected",
                        "duplicates", "late"}
    assert [q["channel"] for q in rep["southbound_quota"]] == ["SH", "SZ"]
    assert rep["southbound_quota"][0]["quota_cny"] is None  # no quota record: nulls
    assert rep["sectors"] == {"1d": [], "5d": [], "20d": []}  # no [sectors] csv
    etf = rep["symbols"][ETF]["etf"]
    assert set(etf["net_inflow_cny"]) == {"1m", "5m", "15m", "1h", "1d", "5d", "20d"}
    assert set(etf["creation_net_inflow_cny"]) == {"1d", "5d", "20d"}
    assert {"turnover_cny", "prev_turnover_cny", "turnover_vs_prev_session_ratio", "volume_ratio",
            "price_change_ratio", "aum_cny"} <= set(etf)
    assert set(rep["symbols"][STOCK]["southbound"]) == {"net_buy_hkd", "streak_days", "streak_net_buy_hkd",
                                                         "provisional_net_buy_hkd"}
    assert rep["rejected"] == {"outside_session": 1}
    assert etf["creation_net_inflow_cny"] == {"1d": None, "5d": None, "20d": None}


# --------------------------------------------------------------------------- properties
SESSION_SECONDS = [s for s in range(9 * 3600 + 1800, 15 * 3600) if not 11 * 3600 + 1800 <= s < 13 * 3600]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(SESSION_SECONDS[-5000:]), st.integers(0, 999), st.integers(1, 10**6),
                          st.sampled_from("BS")), min_size=1, max_size=40),
       st.sampled_from((0, 60, 300)))
def test_engine_windows_match_the_rule_for_any_arrival_order(rows: list[tuple[int, int, int, str]], grace: int) -> None:
    """t in W iff floor(t) > floor(as_of) - W, whatever the arrival order and lateness."""
    base = at("2025-09-12", "00:00:00")
    evs = [trade(base + s * 1000 + ms, 1.0, v, side) for s, ms, v, side in rows]
    r = Run(evs, grace=grace)
    as_of_s = max(e["ts"] for e in evs) // 1000
    for name, width in (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600)):
        want = sum((e["volume"] if e["side"] == "B" else -e["volume"]) for e in evs if e["ts"] // 1000 > as_of_s - width)
        assert r.etf()["net_inflow_cny"][name] == pytest.approx(float(want), abs=1e-6)
    clock, late = None, 0
    for e in evs:
        late += clock is not None and clock - e["ts"] > grace * 1000
        clock = e["ts"] if clock is None else max(clock, e["ts"])
    assert r.report["late"] == late


def _walk(nets: list[int | None]) -> tuple[int, int]:
    """Reference streak over nets newest first: same-signed run, stopped by zero/missing."""
    if not nets or not nets[0]:
        return 0, 0
    sign = 1 if nets[0] > 0 else -1
    n = 0
    while n < len(nets) and nets[n] and (nets[n] > 0) == (sign > 0):
        n += 1
    return sign * n, sum(nets[:n])  # type: ignore[arg-type]  # nets[:n] holds no None: the loop stopped before one


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=30))
def test_streak_function_property(nets: list[int | None]) -> None:
    days = list(range(len(nets)))
    assert streak(days, lambda d: nets[d]) == _walk(nets)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-2, 2)), min_size=1, max_size=25), st.booleans())
def test_engine_streak_over_southbound_days_property(nets: list[int | None], closed: bool) -> None:
    """Dailies over the last southbound days to 10 Oct 2025 (National Day inside): the engine's streak is the
    same-signed run back from the latest closed day; holidays are skipped, zero or missing days stop it."""
    sb = default_calendars()["SB"]
    days = list(sb.last_n(dt.date(2025, 10, 10), len(nets)))
    evs = [daily(d.isoformat(), float(max(n, 0)), float(max(-n, 0))) for d, n in zip(days, nets, strict=True) if n is not None]
    if not closed:  # the last day from ticks only, before the close: provisional, not in the streak
        evs = [e for e in evs if e["date"] != days[-1].isoformat()]
        evs.append(tick(at(days[-1].isoformat(), "10:00:00"), 1.0, 0.0, 1))
    else:  # a clock past the last day's close
        evs.append(tick(at("2025-10-10", "16:00:01"), 0.0, 0.0, 2, symbol="00700.HK"))
    r = Run(evs)
    doc = r.sb() if r.engine.sb.get(STOCK) else None
    if doc is None:
        return
    if closed:
        newest_first = nets[::-1]
    else:
        newest_first = nets[-2::-1]
        assert doc["provisional_net_buy_hkd"] == 1.0
    want = _walk(newest_first)
    assert (doc["streak_days"], doc["streak_net_buy_hkd"]) == (want[0], float(want[1]))
