"""The simulator: determinism, calendar/session discipline, and the seed-day story.

Every seed-day figure is recomputed here from the emitted events with Decimal and
small independent code (not the simulator's own totals), so the demo numbers the
design quotes are what a consumer would actually see.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import lru_cache
from itertools import islice, pairwise
from typing import Any

import exchange_calendars as xcals
import orjson
import pytest

from monitor.simulator import Scenario, generate, paced, truth

UTC8 = dt.timezone(dt.timedelta(hours=8))
SEED_DAY = "2025-09-12"
PREV_DAY = "2025-09-11"
ETF = "513770.SH"


def d(x: float) -> Decimal:
    """A JSON float as the decimal it was written as."""
    return Decimal(repr(x))


def local_date(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts / 1000, UTC8).date().isoformat()


@lru_cache(maxsize=4)
def sessions(code: str) -> dict[str, tuple[int, int, int | None, int | None]]:
    """date -> (open, close, break_start, break_end) in epoch ms, straight from exchange_calendars."""
    cal = xcals.get_calendar(code, start="2025-01-02", end="2026-01-30")
    out = {}
    for day, row in cal.schedule.iterrows():
        ms = [None if v is None or v != v else int(v.value // 1_000_000)
              for v in (row["open"], row["close"], row["break_start"], row["break_end"])]
        out[day.date().isoformat()] = tuple(ms)
    return out


def in_session(ts: int, s: tuple[int, int, int | None, int | None]) -> bool:
    o, c, bs, be = s
    return o <= ts < c and not (bs is not None and bs <= ts < be)


def event_time(ev: dict[str, Any]) -> int:
    """Units stand at the Shanghai close of their date, dailies at the HK close."""
    if "ts" in ev:
        return ev["ts"]
    code = "XSHG" if ev["kind"] == "units" else "XHKG"
    return sessions(code)[ev["date"]][1]


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(Scenario()))


@pytest.fixture(scope="module")
def facts(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-day aggregates recomputed from the events alone."""
    turnover: dict[str, Decimal] = defaultdict(Decimal)
    volume: dict[str, int] = defaultdict(int)
    last: dict[str, Decimal] = {}
    units: dict[str, tuple[int, Decimal]] = {}
    daily: dict[str, dict[str, Decimal]] = defaultdict(dict)
    ticks: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for e in events:
        k = e["kind"]
        if k == "trade" and e["symbol"] == ETF:
            day = local_date(e["ts"])
            turnover[day] += d(e["amount"])
            volume[day] += e["volume"]
            last[day] = d(e["price"])
        elif k == "units" and e["symbol"] == ETF:
            units[e["date"]] = (e["shares_outstanding"], d(e["nav"]))
        elif k == "southbound_daily":
            daily[e["symbol"]][e["date"]] = d(e["buy_hkd"]) - d(e["sell_hkd"])
        elif k == "southbound":
            ticks[e["symbol"]][local_date(e["ts"])] += d(e["buy_hkd"]) - d(e["sell_hkd"])
    return {"turnover": turnover, "volume": volume, "last": last, "units": units, "daily": daily, "ticks": ticks}


# --------------------------------------------------------------------------- determinism and shape


def _digest(events: Any) -> str:
    h = hashlib.sha256()
    for e in events:
        h.update(orjson.dumps(e))
        h.update(b"\n")
    return h.hexdigest()


def test_same_seed_same_bytes(events: list[dict[str, Any]]) -> None:
    assert _digest(events) == _digest(generate(Scenario()))


def test_other_seed_other_data() -> None:
    a = list(islice(generate(Scenario(days=2)), 2000))
    b = list(islice(generate(Scenario(days=2, seed=7)), 2000))
    assert a != b


def test_event_kinds_and_types(events: list[dict[str, Any]]) -> None:
    kinds = {e["kind"] for e in events}
    assert kinds == {"trade", "units", "southbound", "southbound_daily", "iopv", "southbound_quota"}
    for e in events:
        if e["kind"] == "trade":
            assert isinstance(e["ts"], int) and isinstance(e["volume"], int) and e["volume"] > 0
            assert e["price"] == round(e["price"], 3) and e["price"] > 0
            # amount = price x volume, half-even to the cent
            assert d(e["amount"]) == (d(e["price"]) * e["volume"]).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
            assert e.get("side", "B") in ("B", "S")
        elif e["kind"] == "southbound":
            assert e["channel"] in ("SH", "SZ") and isinstance(e["seq"], int)
            assert e["buy_hkd"] == round(e["buy_hkd"], 2) >= 0 and e["sell_hkd"] == round(e["sell_hkd"], 2) >= 0
        elif e["kind"] == "units":
            assert isinstance(e["shares_outstanding"], int) and e["nav"] == round(e["nav"], 4)
        elif e["kind"] == "iopv":
            assert isinstance(e["ts"], int) and e["iopv"] == round(e["iopv"], 4) and e["iopv"] > 0
        elif e["kind"] == "southbound_quota":
            assert e["channel"] in ("SH", "SZ") and isinstance(e["ts"], int)
            assert e["quota_cny"] == 42_000_000_000 and isinstance(e["balance_cny"], int)
            assert 0 <= e["balance_cny"] <= e["quota_cny"]
        else:
            assert e["buy_hkd"] == round(e["buy_hkd"], 2) and e["sell_hkd"] == round(e["sell_hkd"], 2)


def test_non_decreasing_event_time(events: list[dict[str, Any]]) -> None:
    times = [event_time(e) for e in events]
    assert all(a <= b for a, b in pairwise(times))


def test_units_after_their_trades_dailies_after_their_ticks(events: list[dict[str, Any]]) -> None:
    seen_units: set[tuple[str, str]] = set()
    seen_daily: set[tuple[str, str]] = set()
    for e in events:
        if e["kind"] == "units":
            seen_units.add((e["symbol"], e["date"]))
        elif e["kind"] == "southbound_daily":
            seen_daily.add((e["symbol"], e["date"]))
        elif e["kind"] == "trade":
            assert (e["symbol"], local_date(e["ts"])) not in seen_units
        elif e["kind"] == "southbound":
            assert (e["symbol"], local_date(e["ts"])) not in seen_daily


def test_trades_inside_mainland_sessions_only(events: list[dict[str, Any]]) -> None:
    sh = sessions("XSHG")
    expected_days = [day for day in sorted(sh) if day <= SEED_DAY][-25:]
    days = set()
    for e in events:
        if e["kind"] == "trade":
            day = local_date(e["ts"])
            assert day in sh and in_session(e["ts"], sh[day]), e
            days.add(day)
    assert sorted(days) == expected_days
    assert expected_days[0] == "2025-08-11"


def test_ticks_only_when_both_markets_open(events: list[dict[str, Any]]) -> None:
    sh, hk = sessions("XSHG"), sessions("XHKG")
    for e in events:
        if e["kind"] == "southbound":
            day = local_date(e["ts"])
            assert day in sh and day in hk and in_session(e["ts"], hk[day]), e


def test_one_units_per_etf_day_and_dailies_except_seed_day(events: list[dict[str, Any]]) -> None:
    sc = Scenario()
    units = [(e["symbol"], e["date"]) for e in events if e["kind"] == "units"]
    assert len(units) == len(set(units)) == 25 * len(sc.etfs)
    dailies = {(e["symbol"], e["date"]) for e in events if e["kind"] == "southbound_daily"}
    tick_days = {(e["symbol"], local_date(e["ts"])) for e in events if e["kind"] == "southbound"}
    assert dailies == {k for k in tick_days if k[1] != SEED_DAY}
    assert {k[1] for k in tick_days if k[1] == SEED_DAY} == {SEED_DAY}


def test_unique_trade_ids_and_increasing_seqs(events: list[dict[str, Any]]) -> None:
    ids = [e["trade_id"] for e in events if e["kind"] == "trade"]
    assert len(ids) == len(set(ids))
    for e in events:
        if e["kind"] == "trade":
            assert re.fullmatch(r"\d{6}\.S[HZ]-\d{8}-\d{6}", e["trade_id"])
            assert e["trade_id"].startswith(f"{e['symbol']}-{local_date(e['ts']).replace('-', '')}-")
    last: dict[tuple[str, str], int] = {}
    for e in events:
        if e["kind"] == "southbound":
            key = (e["symbol"], e["channel"])
            assert e["seq"] > last.get(key, 0)
            last[key] = e["seq"]


def test_some_trades_leave_side_to_the_tick_rule(events: list[dict[str, Any]]) -> None:
    trades = [e for e in events if e["kind"] == "trade"]
    missing = sum(1 for e in trades if "side" not in e)
    assert 0.07 < missing / len(trades) < 0.13


def test_truth_matches_events(events: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    """truth() is computed while generating; the tick rule reproduces its buy/sell split."""
    t = truth(Scenario())
    for day, amount in facts["turnover"].items():
        assert t["etf"][ETF][day]["turnover"] == amount
        assert t["etf"][ETF][day]["volume"] == facts["volume"][day]
        assert t["etf"][ETF][day]["last_price"] == facts["last"][day]
    buy: dict[str, Decimal] = defaultdict(Decimal)
    sell: dict[str, Decimal] = defaultdict(Decimal)
    prev: dict[tuple[str, str], Decimal] = {}
    for e in events:
        if e["kind"] != "trade" or e["symbol"] != ETF:
            continue
        day, price = local_date(e["ts"]), d(e["price"])
        side = e.get("side") or ("B" if price > prev[(ETF, day)] else "S")
        (buy if side == "B" else sell)[day] += d(e["amount"])
        prev[(ETF, day)] = price
    for day in buy:
        assert t["etf"][ETF][day]["buy"] == buy[day] and t["etf"][ETF][day]["sell"] == sell[day]
    for sym, days in t["southbound"].items():
        for day, net in days.items():
            src = facts["ticks"] if day == SEED_DAY else facts["daily"]
            assert net == src[sym][day]
    assert t["units"][ETF][SEED_DAY]["shares_outstanding"] == facts["units"][SEED_DAY][0]


def test_ticks_are_not_exact_but_close(facts: dict[str, Any]) -> None:
    diffs = 0
    for sym, days in facts["daily"].items():
        for day, net in days.items():
            tick = facts["ticks"][sym][day]
            diffs += tick != net
    assert diffs > 10


# --------------------------------------------------------------------------- the seed day, recomputed


def test_seed_day_turnover(facts: dict[str, Any]) -> None:
    to = facts["turnover"]
    assert Decimal("605.5e6") <= to[SEED_DAY] <= Decimal("606.5e6")
    assert Decimal("520e6") <= to[PREV_DAY] <= Decimal("560e6") < to[SEED_DAY]
    for day, amount in to.items():
        if day not in (SEED_DAY, PREV_DAY):
            assert Decimal("400e6") <= amount <= Decimal("600e6"), day


def test_seed_day_price_change(facts: dict[str, Any]) -> None:
    change = (facts["last"][SEED_DAY] / facts["last"][PREV_DAY] - 1) * 100
    assert change.quantize(Decimal("0.01"), ROUND_HALF_EVEN) == Decimal("1.13")


def test_seed_day_volume_heavy(facts: dict[str, Any]) -> None:
    days = sorted(facts["volume"])
    assert days[-1] == SEED_DAY
    prev5 = sum(facts["volume"][x] for x in days[-6:-1]) / 5
    assert facts["volume"][SEED_DAY] / prev5 > 1.25


def test_creation_inflow_20d_and_aum(facts: dict[str, Any]) -> None:
    units = facts["units"]
    days = sorted(units)
    window = [x for x in sorted(sessions("XSHG")) if x <= SEED_DAY][-20:]
    assert days[-20:] == window and len(days) > 20
    inflow = sum((units[days[i]][0] - units[days[i - 1]][0]) * units[days[i]][1]
                 for i in range(len(days) - 20, len(days)))
    assert Decimal("2.7915e9") <= inflow <= Decimal("2.7925e9")
    shares, nav = units[SEED_DAY]
    assert shares * nav > Decimal("10e9")


def test_alibaba_streak(facts: dict[str, Any]) -> None:
    sh, hk = sessions("XSHG"), sessions("XHKG")
    sb_days = [x for x in sorted(hk) if x in sh and x < SEED_DAY]
    streak, before = sb_days[-15:], sb_days[-16]
    assert streak[-1] == PREV_DAY
    daily = facts["daily"]["09988.HK"]
    assert all(daily[x] > 0 for x in streak)
    assert daily[before] < 0
    assert sum(daily[x] for x in streak) > Decimal("37.1e9")
    assert facts["ticks"]["09988.HK"][SEED_DAY] > 0


def test_top_southbound_20d(facts: dict[str, Any]) -> None:
    sh, hk = sessions("XSHG"), sessions("XHKG")
    window = [x for x in sorted(hk) if x in sh and x <= SEED_DAY][-20:]
    assert window[-1] == SEED_DAY
    totals = {}
    for sym in Scenario().southbound:
        totals[sym] = sum(facts["daily"][sym][x] for x in window[:-1]) + facts["ticks"][sym][SEED_DAY]
    ranked = sorted(totals, key=totals.__getitem__, reverse=True)
    assert ranked[:3] == ["09988.HK", "00700.HK", "03690.HK"]
    assert totals[ranked[3]] < totals["03690.HK"] / 2


# --------------------------------------------------------------------------- tick-by-tick extras: order ids, IOPV, quota

CLASS_BOUNDS = (Decimal(50_000), Decimal(200_000), Decimal(1_000_000))  # CNY: small | medium | large | super_large


def order_class(cumulative: Decimal) -> str:
    small, medium, large = CLASS_BOUNDS
    if cumulative < small:
        return "small"
    if cumulative < medium:
        return "medium"
    return "large" if cumulative < large else "super_large"


def seed_day(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind and local_date(e["ts"]) == SEED_DAY]


def test_every_seed_day_trade_has_both_order_ids(events: list[dict[str, Any]]) -> None:
    """Integers as exchanges number orders: both sides, never the same order, the resting one first."""
    trades = seed_day(events, "trade")
    assert len(trades) > 19_000
    for e in trades:
        assert type(e["buy_order_id"]) is int and type(e["sell_order_id"]) is int, e
        assert e["buy_order_id"] != e["sell_order_id"]
    # each symbol's aggressor orders are numbered upwards through the day, in the order they arrive
    prev_tick: dict[str, float] = {}
    seen: dict[str, set[int]] = defaultdict(set)
    newest: dict[str, int] = defaultdict(int)
    for e in trades:
        sym = e["symbol"]
        side = e.get("side") or ("B" if e["price"] > prev_tick[sym] else "S")
        prev_tick[sym] = e["price"]
        aggressor = e["buy_order_id"] if side == "B" else e["sell_order_id"]
        passive = e["sell_order_id"] if side == "B" else e["buy_order_id"]
        assert passive < aggressor, e  # the resting order was in the book first
        if aggressor not in seen[sym]:
            assert aggressor > newest[sym], e
            seen[sym].add(aggressor)
            newest[sym] = aggressor


def test_order_classes_of_513770_seed_day_all_non_zero(events: list[dict[str, Any]], facts: dict[str, Any]) -> None:
    """Each trade is classed by its aggressor order's cumulative amount including it (50k/200k/1M CNY);
    the demo shows all four classes and a main (large + super-large) share of 30-60% of turnover."""
    amount: dict[str, Decimal] = defaultdict(Decimal)
    cumulative: dict[int, Decimal] = defaultdict(Decimal)
    prev_price = None
    turnover = Decimal(0)
    for e in seed_day(events, "trade"):
        if e["symbol"] != ETF:
            continue
        a = d(e["amount"])
        side = e.get("side") or ("B" if e["price"] > prev_price else "S")  # the tick rule
        prev_price = e["price"]
        order = e["buy_order_id"] if side == "B" else e["sell_order_id"]
        cumulative[order] += a
        amount[order_class(cumulative[order])] += a
        turnover += a
    assert set(amount) == {"small", "medium", "large", "super_large"}
    assert all(v > 0 for v in amount.values())
    assert sum(amount.values()) == turnover == facts["turnover"][SEED_DAY]
    assert Decimal("0.30") <= (amount["large"] + amount["super_large"]) / turnover <= Decimal("0.60")
    assert 1.1 < sum(1 for e in seed_day(events, "trade") if e["symbol"] == ETF) / len(cumulative) < 1.6


def test_iopv_every_15_s_and_513770_premium_at_the_close(events: list[dict[str, Any]]) -> None:
    o, c, bs, be = sessions("XSHG")[SEED_DAY]
    assert (c - o, be - bs) == (5.5 * 3_600_000, 1.5 * 3_600_000)
    iopvs = seed_day(events, "iopv")
    last_price = {e["symbol"]: d(e["price"]) for e in seed_day(events, "trade")}
    for sym in Scenario().etfs:
        times = [e["ts"] for e in iopvs if e["symbol"] == sym]
        assert times[0] == o and times[-1] == c and bs in times and be in times
        assert {b - a for a, b in pairwise(times)} == {15_000, be - bs}
        assert len(times) == 2 * (2 * 3600 // 15 + 1) == 962
        premium = last_price[sym] / d([e for e in iopvs if e["symbol"] == sym][-1]["iopv"]) - 1
        if sym == ETF:  # a cross-border ETF at a premium: the demo's alert
            assert Decimal("0.01") <= premium <= Decimal("0.02"), premium
        else:
            assert abs(premium) <= Decimal("0.004"), (sym, premium)


def test_quota_every_minute_and_sh_used_at_the_close(events: list[dict[str, Any]]) -> None:
    o, c, bs, be = sessions("XHKG")[SEED_DAY]
    quotas = seed_day(events, "southbound_quota")
    used = {}
    for ch in ("SH", "SZ"):
        rows = [e for e in quotas if e["channel"] == ch]
        times = [e["ts"] for e in rows]
        assert times[0] == o and times[-1] == c
        assert {b - a for a, b in pairwise(times)} == {60_000, be - bs}
        assert len(times) == (12 - 9.5) * 60 + 1 + (16 - 13) * 60 + 1 == 332
        assert {e["quota_cny"] for e in rows} == {42_000_000_000}
        assert rows[0]["balance_cny"] == 42_000_000_000  # nothing bought before the open
        used[ch] = 1 - Fraction(rows[-1]["balance_cny"], rows[-1]["quota_cny"])
    assert Fraction(80, 100) <= used["SH"] <= Fraction(85, 100)  # the demo's "quota nearly used"
    assert used["SZ"] < used["SH"]


def test_quota_only_on_southbound_days() -> None:
    """No quota while HK is shut (Christmas), and the HK half day publishes until its noon close."""
    evs = list(generate(Scenario(end_date=dt.date(2025, 12, 31), days=6, order_ids=False, iopv=False)))
    quota_days = {local_date(e["ts"]) for e in evs if e["kind"] == "southbound_quota"}
    tick_days = {local_date(e["ts"]) for e in evs if e["kind"] == "southbound"}
    assert quota_days == tick_days and not quota_days & {"2025-12-25", "2025-12-26"}
    half = [e["ts"] for e in evs if e["kind"] == "southbound_quota" and local_date(e["ts"]) == "2025-12-24"]
    o, c, _, _ = sessions("XHKG")["2025-12-24"]
    assert (half[0], half[-1], len(half)) == (o, c, 2 * ((c - o) // 60_000 + 1))


def test_extras_leave_every_other_event_unchanged() -> None:
    """The extras draw from streams of their own: without them the tape is the same, byte for byte."""
    bare = list(generate(Scenario(days=2, order_ids=False, iopv=False, quota=False)))
    full = [{k: v for k, v in e.items() if k not in ("buy_order_id", "sell_order_id")}
            for e in generate(Scenario(days=2)) if e["kind"] not in ("iopv", "southbound_quota")]
    assert bare == full
    assert not any("buy_order_id" in e for e in bare)


def test_synthetic_orders_fill_two_and_a_half_trades_on_average() -> None:
    """The benchmark tape's aggressor orders: geometric, mean 2.5 trades."""
    trades = [e for e in generate(Scenario.synthetic(4, 0, days=1, trade_interval_s=3.0)) if e["kind"] == "trade"]
    fills: dict[tuple[str, int], int] = defaultdict(int)
    prev: dict[str, float] = {}
    for e in trades:
        side = e.get("side") or ("B" if e["price"] > prev[e["symbol"]] else "S")
        prev[e["symbol"]] = e["price"]
        fills[(e["symbol"], e["buy_order_id"] if side == "B" else e["sell_order_id"])] += 1
    mean = len(trades) / len(fills)
    assert 2.3 < mean < 2.7, mean
    single = sum(1 for n in fills.values() if n == 1) / len(fills)
    assert 0.35 < single < 0.45  # geometric: P(1) = 1 / 2.5


# --------------------------------------------------------------------------- calendars edge cases and scale


def test_hk_holidays_and_half_days() -> None:
    """Christmas: HK shut on 25-26 Dec while Shanghai trades; 24 and 31 Dec HK closes at noon."""
    evs = list(generate(Scenario(end_date=dt.date(2025, 12, 31), days=6)))
    times = [event_time(e) for e in evs]
    assert all(a <= b for a, b in pairwise(times))
    tick_days = {local_date(e["ts"]) for e in evs if e["kind"] == "southbound"}
    trade_days = {local_date(e["ts"]) for e in evs if e["kind"] == "trade"}
    assert {"2025-12-25", "2025-12-26"} <= trade_days
    assert not tick_days & {"2025-12-25", "2025-12-26"}
    hk = sessions("XHKG")
    for e in evs:
        if e["kind"] == "southbound":
            assert in_session(e["ts"], hk[local_date(e["ts"])])
            if local_date(e["ts"]) == "2025-12-24":
                assert dt.datetime.fromtimestamp(e["ts"] / 1000, UTC8).hour < 12
    assert {e["date"] for e in evs if e["kind"] == "southbound_daily"} == tick_days - {"2025-12-31"}


def test_synthetic_scenario() -> None:
    sc = Scenario.synthetic(6, 5, days=2, trade_interval_s=30, tick_interval_s=600)
    assert len(set(sc.etfs)) == 6 and len(set(sc.southbound)) == 5
    assert all(re.fullmatch(r"5\d{5}\.SH|1\d{5}\.SZ", s) for s in sc.etfs)
    assert all(re.fullmatch(r"0\d{4}\.HK", s) for s in sc.southbound)
    evs = list(generate(sc))
    assert {e["symbol"] for e in evs if e["kind"] != "southbound_quota"} == set(sc.etfs) | set(sc.southbound)
    assert evs == list(generate(sc))


# --------------------------------------------------------------------------- pacing


class FakeTime:
    """A clock that only moves when the pacer sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _collect(events: list[dict[str, Any]], speed: float, ft: FakeTime, **kw: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [e async for e in paced(events, speed, ft.clock, sleep=ft.sleep, **kw)]

    return asyncio.run(run())


SAMPLE = [
    {"kind": "trade", "ts": 1_000},
    {"kind": "trade", "ts": 3_000},
    {"kind": "units", "date": "2025-09-12"},
    {"kind": "trade", "ts": 13_000},
]


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf")])
def test_paced_fast(speed: float) -> None:
    ft = FakeTime()
    evs = [{"kind": "trade", "ts": i * 1000} for i in range(1200)]
    assert _collect(evs, speed, ft, batch=500) == evs
    assert ft.sleeps == [0, 0]  # control handed back, no waiting


def test_paced_follows_event_time() -> None:
    ft = FakeTime()
    assert _collect(SAMPLE, 2.0, ft) == SAMPLE
    assert ft.sleeps == [pytest.approx(1.0), pytest.approx(5.0)]  # 2 s and 10 s of event time at 2x


def test_paced_history_at_full_speed_then_realtime() -> None:
    ft = FakeTime()
    _collect(SAMPLE, 1.0, ft, realtime_from_ms=3_000)
    assert ft.sleeps == [pytest.approx(10.0)]


def test_paced_caps_gaps() -> None:
    ft = FakeTime()
    _collect(SAMPLE, 1.0, ft, max_gap_s=4.0)
    assert ft.sleeps == [pytest.approx(2.0), pytest.approx(4.0)]


def test_paced_accepts_async_source() -> None:
    async def source():  # type: ignore[no-untyped-def]  # an untyped async generator, as a caller may pass
        for e in SAMPLE:
            yield e

    async def run() -> list[dict[str, Any]]:
        ft = FakeTime()
        return [e async for e in paced(source(), 0, ft.clock, sleep=ft.sleep)]

    assert asyncio.run(run()) == SAMPLE
