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
    assert kinds == {"trade", "units", "southbound", "southbound_daily"}
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
        else:
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
    assert {e["symbol"] for e in evs} == set(sc.etfs) | set(sc.southbound)
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
