"""Issue 11, one named scenario per rule with its numbers: bar events, trades win over bars,
new highs, average turnover, AUM record, MACD(12,26,9), basket look-through, restart survival."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from typing import Any

import orjson
import pytest

from consumers import basket, macd
from consumers.codec import Marker, StateWriter, marker_key, read_state
from consumers.engine import Engine
from harness.docs import basket_doc, etf_doc, signals_doc
from harness.metrics import sample_value
from monitor.calendars import default_calendars
from monitor.events import Rejected, Validator
from monitor.metrics import Exposition
from monitor.stats import PipelineStats

ETF = "513770.SH"
UTC8 = dt.timezone(dt.timedelta(hours=8))
CAL = default_calendars()


def sh_days(end: str, n: int) -> list[dt.date]:
    return list(CAL["SH"].last_n(dt.date.fromisoformat(end), n))


def bar(day: dt.date, close: float, high: float | None = None, amount: float = 1_000_000.0, sym: str = ETF,
        **extra: Any) -> dict[str, Any]:
    high = close if high is None else high
    return {"kind": "bar", "symbol": sym, "date": day.isoformat(), "open": close, "high": high, "low": close,
            "close": close, "volume": 1000, "amount": amount, **extra}


def trade(day: dt.date, hhmm: str, price: float, tid: int, volume: int = 100) -> dict[str, Any]:
    h, m = map(int, hhmm.split(":"))
    ts = int(dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC8).timestamp() * 1000)
    return {"kind": "trade", "symbol": ETF, "ts": ts, "price": price, "volume": volume, "trade_id": tid, "side": "B"}


def run(events: list[dict[str, Any]]) -> Engine:
    v, eng = Validator(CAL), Engine(CAL)
    for e in events:
        eng.apply(v.validate(e))
    return eng


# -- the bar event ------------------------------------------------------------------------
@pytest.mark.parametrize("change,reason", [
    ({"high": 0.9}, "bad_value"),  # high below close
    ({"low": 1.2}, "bad_value"),  # low above close
    ({"close": 0}, "bad_number"),
    ({"close": "abc"}, "wrong_type"),
    ({"date": "2025-09-13"}, "outside_session"),  # a Saturday
    ({"symbol": "ALIBABA"}, "bad_symbol"),
    ({"shares": 100}, "missing_field"),  # shares without nav
    ({"volume": 0}, "bad_value"),  # volume 0 with an amount
])
def test_bar_rejections_have_reason_codes(change: dict[str, Any], reason: str) -> None:
    raw = dict(bar(dt.date(2025, 9, 12), 1.0, 1.1), **change)
    with pytest.raises(Rejected) as exc:
        Validator(CAL).validate(raw)
    assert exc.value.reason == reason


def test_bar_from_csv_text_is_exact_and_kind_is_inferred() -> None:
    raw = {"symbol": ETF, "date": "2025-09-12", "open": "1.061", "high": "1.080", "low": "1.058", "close": "1.072",
           "volume": 565_000_000, "amount": "606000037.4", "shares": "11710000000", "nav": "1.0720"}
    b = Validator(CAL).validate(raw)
    assert b.kind == "bar" and (b.high, b.close, b.amount, b.nav) == (1_080_000, 1_072_000, 606_000_037_400_000, 1_072_000)


# -- a bar stands in for a day without trades; trades win ---------------------------------------
def test_bar_stands_in_for_the_previous_session_and_trades_win() -> None:
    d1, d2 = sh_days("2025-09-12", 2)
    eng = run([bar(d1, 1.060, amount=540e6), bar(d2, 1.0, amount=1.0),  # a bar for today too: trades win
               trade(d2, "09:31", 1.070, 1, 1000), trade(d2, "10:00", 1.072, 2, 1000)])
    doc = etf_doc(eng, ETF)
    assert doc["prev_turnover_cny"] == 540e6  # yesterday: the bar's amount
    assert doc["turnover_cny"] == 2142.0  # today: 1070 + 1072 from trades, not the bar's 1.0
    assert doc["price_change_ratio"] == pytest.approx(1.072 / 1.060 - 1, rel=1e-12)  # bar close as previous close
    assert doc["turnover_vs_prev_session_ratio"]["same_time"] is None  # a bar has no intraday curve
    assert signals_doc(eng, ETF)["high_cny"] == 1.072


# -- new highs -------------------------------------------------------------------------------
def test_new_high_windows_and_absent_with_too_little_history() -> None:
    days = sh_days("2025-09-12", 61)  # 60 previous days + today
    hist = [bar(d, 1.0, high=1.05 if i == 10 else 1.0) for i, d in enumerate(days[:-1])]  # 1.05: 50 days ago
    eng = run(hist + [trade(days[-1], "09:31", 1.02, 1)])
    nh = signals_doc(eng, ETF)["new_high"]
    # 1.02 >= max of the last 20 days (1.00) but < 1.05 (inside 60 days and all history); 250d: too few days
    assert nh == {"20d": 1, "60d": 0, "250d": None, "all": 0}
    eng = run(hist + [trade(days[-1], "09:31", 1.05, 1)])  # equal to the record counts as a new high
    assert signals_doc(eng, ETF)["new_high"] == {"20d": 1, "60d": 1, "250d": None, "all": 1}


def test_new_high_all_on_the_first_day_is_vacuous() -> None:
    eng = run([trade(dt.date(2025, 9, 12), "09:31", 1.0, 1)])
    assert signals_doc(eng, ETF)["new_high"] == {"20d": None, "60d": None, "250d": None, "all": 1}


# -- average turnover -----------------------------------------------------------------------------
def test_average_turnover_20d_and_ytd_exclude_today() -> None:
    days = sh_days("2026-01-09", 26)  # 2025-12-02 .. 2026-01-09; 2026 starts on Jan 5 (1-2 Jan closed)
    evs = [bar(d, 1.0, amount=float(100 * (i + 1))) for i, d in enumerate(days[:-1])]
    evs.append(trade(days[-1], "09:31", 1.0, 1, volume=10**6))  # today's huge turnover is excluded
    sig = signals_doc(run(evs), ETF)
    amounts = [100 * (i + 1) for i in range(25)]
    assert sig["turnover_avg_cny"]["20d"] == pytest.approx(sum(amounts[-20:]) / 20)  # 1550
    y2026 = [a for d, a in zip(days[:-1], amounts, strict=True) if d.year == 2026]  # Jan 5..8: 4 days
    assert len(y2026) == 4 and sig["turnover_avg_cny"]["ytd"] == pytest.approx(sum(y2026) / 4)


# -- AUM record --------------------------------------------------------------------------------------
def test_aum_record_and_at_record() -> None:
    d = sh_days("2025-09-12", 3)
    units = lambda day, shares, nav: {"kind": "units", "symbol": ETF, "date": day.isoformat(),  # noqa: E731 - a one-line event builder
                                      "shares_outstanding": shares, "nav": nav}
    eng = run([bar(d[0], 1.0, shares=9_000_000_000, nav=1.2),  # 10.8bn from a bar
               units(d[1], 10_000_000_000, 1.0), units(d[2], 10_000_000_000, 1.05)])
    sig = signals_doc(eng, ETF)
    assert (sig["aum_cny"], sig["aum_record_cny"], sig["aum_at_record"]) == (10.5e9, 10.8e9, 0)
    eng.apply(Validator(CAL).validate(units(d[2], 10_000_000_000, 1.09)))  # a correction: 10.9bn
    sig = signals_doc(eng, ETF)
    assert (sig["aum_cny"], sig["aum_record_cny"], sig["aum_at_record"]) == (10.9e9, 10.9e9, 1)


def test_the_units_record_still_wins_once_it_ages_out_of_the_retained_days() -> None:
    """510300.SH: 300 bars (shares 1e9, NAV 1) up to yesterday, except the bar 32 sessions back says
    3e9 shares; that day's units record says 1.1e9 and the next day's 1.0e9; one trade today. Once the
    records leave the 30 retained sessions (prune), the bar must not take over: the record is 1.1e9."""
    sym = "510300.SH"
    days = sh_days("2025-09-12", 301)
    today, back32 = days[-1], days[-1 - 32]
    evs: list[dict[str, Any]] = [bar(d, 1.0, sym=sym, shares=3_000_000_000 if d == back32 else 1_000_000_000, nav=1.0)
                                 for d in days[:-1]]
    nxt = days[days.index(back32) + 1]
    evs += [{"kind": "units", "symbol": sym, "date": back32.isoformat(), "shares_outstanding": 1_100_000_000, "nav": 1},
            {"kind": "units", "symbol": sym, "date": nxt.isoformat(), "shares_outstanding": 1_000_000_000, "nav": 1},
            {**trade(today, "10:00", 1.0, 1), "symbol": sym}]
    eng = run(evs)
    eng.prune()
    assert back32 not in eng.etf[sym].units  # aged out of the retained window
    assert signals_doc(eng, sym)["aum_record_cny"] == 1.1e9  # type: ignore[index]  # the symbol is known


# -- MACD -------------------------------------------------------------------------------------------------
def test_macd_recursion_by_hand() -> None:
    p = macd.fold([Decimal(10), Decimal(13)])
    # EMA12 = (2*13 + 11*10)/13 = 136/13; EMA26 = (26 + 250)/27 = 276/27; DIF = 136/13 - 276/27 = 84/351
    assert Fraction(p.dif).limit_denominator(10**6) == Fraction(84, 351)
    assert Fraction(p.dea).limit_denominator(10**6) == Fraction(2 * 84, 351 * 10)  # (2 DIF + 8*0)/10
    assert Fraction(p.histogram).limit_denominator(10**6) == 2 * (Fraction(84, 351) - Fraction(168, 3510))


def test_macd_null_before_35_closes_then_golden_cross_on_a_jump() -> None:
    days = sh_days("2025-09-12", 40)
    flat = [bar(d, 1.0) for d in days[:33]]
    sig = signals_doc(run(flat + [trade(days[33], "09:31", 1.0, 1)]), ETF)
    assert sig["macd"] == {"dif": None, "dea": None, "histogram": None, "cross": None, "closes": 34}
    # 34 flat closes (DIF = DEA = 0 exactly), then the 35th jumps: DIF > DEA, a golden cross
    eng = run(flat + [bar(days[33], 1.0), trade(days[34], "09:31", 1.1, 1)])
    m = signals_doc(eng, ETF)["macd"]
    dif = 2 * 0.1 / 13 - 2 * 0.1 / 27  # EMAs move by 2/(n+1) of the jump
    assert m["closes"] == 35 and m["cross"] == 1
    assert m["dif"] == pytest.approx(dif, rel=1e-12) and m["dea"] == pytest.approx(dif / 5, rel=1e-12)
    assert m["histogram"] == pytest.approx(2 * (dif - dif / 5), rel=1e-12)
    # the mirror: a drop is a death cross
    m = signals_doc(run(flat + [bar(days[33], 1.0), trade(days[34], "09:31", 0.9, 1)]), ETF)["macd"]
    assert m["cross"] == -1


def test_signals_follow_later_trades_of_the_day() -> None:
    """The closed history is cached per symbol; today's high, last price and MACD step are not."""
    days = sh_days("2025-09-12", 40)
    history = [bar(d, 1.0, high=1.05) for d in days[:-1]]
    later = [trade(days[-1], "10:00", 1.10, 2), trade(days[-1], "10:01", 0.90, 3)]
    eng = run(history + [trade(days[-1], "09:31", 1.0, 1)])
    before = signals_doc(eng, ETF)
    assert before["new_high"]["20d"] == 0 and before["macd"]["cross"] == 0
    for i, ev in enumerate(later, 1):
        eng.apply(Validator(CAL).validate(ev))
        fresh = run(history + [trade(days[-1], "09:31", 1.0, 1)] + later[:i])
        assert signals_doc(eng, ETF) == signals_doc(fresh, ETF)
    after = signals_doc(eng, ETF)
    assert after["new_high"]["20d"] == 1 and after["high_cny"] == 1.10 and after["macd"]["cross"] == -1


def test_macd_for_an_hk_stock_with_bars_only() -> None:
    days = list(CAL["HK"].last_n(dt.date(2025, 9, 12), 36))
    eng = run([bar(d, 80.0 + i * 0.5, sym="09988.HK") for i, d in enumerate(days)])
    assert "09988.HK" not in eng.etf  # an HK bar does not make a stock an ETF
    m = signals_doc(eng, "09988.HK")["macd"]
    assert m["closes"] == 36 and m["dif"] > 0 and m["cross"] == 0  # a steady rise: no cross today


# -- basket look-through ------------------------------------------------------------------------------------
def test_basket_weighted_net_buy_and_top_weights() -> None:
    h = basket.from_csv("etf,constituent,weight\n513770.SH,00700.HK,14.5%\n513770.SH,09988.HK,0.14\n"
                        "513770.SH,01810.HK,0.12\n513770.SH,03690.HK,0.10\n513770.SH,09618.HK,0.06\n")
    assert basket.top_weight_ratio(h[ETF], 4) == Decimal("0.505")
    assert basket.top_weight_ratio(h[ETF], 10) == Decimal("0.565")
    day = dt.date(2025, 9, 11)
    daily = lambda sym, buy, sell: {"kind": "southbound_daily", "symbol": sym, "date": day.isoformat(),  # noqa: E731 - a one-line event builder
                                    "buy_hkd": buy, "sell_hkd": sell}
    eng = run([daily("00700.HK", 3e9, 1e9), daily("09988.HK", 1e9, 2e9)])
    eng.holdings = h
    doc = basket_doc(eng, ETF)
    # 0.145 x 2bn + 0.14 x (-1bn) = 150M; the others have no southbound data
    assert doc["southbound_net_buy_hkd"] == {"1d": 150e6, "5d": 150e6, "20d": 150e6}
    assert doc["top_weight_ratio"] == {"4": 0.505, "10": 0.565}
    rows = {r["symbol"]: r for r in doc["holdings"]}
    assert rows["09988.HK"]["streak_days"] == -1 and rows["09618.HK"]["net_buy_hkd"]["1d"] is None


def test_signals_are_metrics() -> None:
    days = sh_days("2025-09-12", 40)
    eng = run([bar(d, 1.0, shares=10**10, nav=1.0) for d in days[:-1]] + [trade(days[-1], "09:31", 1.1, 1)])
    eng.holdings = basket.from_mapping({ETF: {"00700.HK": "0.5"}})
    text = Exposition(eng, PipelineStats()).render().decode()
    sym = {"symbol": ETF}
    for name, labels, value in (("fundflow_etf_new_high", {**sym, "window": "20d"}, 1),
                                ("fundflow_etf_new_high", {**sym, "window": "all"}, 1),
                                ("fundflow_etf_aum_record_cny", sym, 1e10),
                                ("fundflow_etf_aum_at_record", sym, 1),
                                ("fundflow_macd_cross", sym, 1),
                                ("fundflow_etf_turnover_avg_cny", {**sym, "window": "20d"}, 1e6),
                                ("fundflow_etf_basket_top_weight_ratio", {**sym, "n": "4"}, 0.5)):
        assert sample_value(text, name, labels) == value, (name, labels)


def test_hk_signals_are_named_in_hkd() -> None:
    """An HK stock's bars are in HKD: its money signals say so (turnover_avg_hkd), and so does the gauge
    of an HK-listed ETF (fundflow_etf_turnover_avg_hkd); mainland symbols keep _cny."""
    hk_days = list(CAL["HK"].last_n(dt.date(2025, 9, 12), 21))
    hk_etf_trade = trade(hk_days[-1], "09:31", 25.0, 1) | {"symbol": "02800.HK"}
    eng = run([bar(d, 100.0, sym="09988.HK", amount=2e9) for d in hk_days[:-1]]
              + [bar(d, 25.0, sym="02800.HK", amount=4e8) for d in hk_days[:-1]] + [hk_etf_trade]
              + [bar(d, 1.0) for d in sh_days("2025-09-11", 20)] + [trade(dt.date(2025, 9, 12), "09:31", 1.0, 2)])
    stock = signals_doc(eng, "09988.HK")
    assert stock["turnover_avg_hkd"] == {"20d": 2e9, "ytd": 2e9}
    assert {"high_hkd", "aum_hkd", "aum_record_hkd"} <= set(stock) and not [k for k in stock if k.endswith("_cny")]
    assert signals_doc(eng, ETF)["turnover_avg_cny"]["20d"] == 1e6
    text = Exposition(eng, PipelineStats()).render().decode()
    assert 'fundflow_etf_turnover_avg_hkd{symbol="02800.HK",window="20d"} 4e+08' in text
    assert 'fundflow_etf_turnover_avg_cny{symbol="513770.SH",window="20d"} 1e+06' in text
    assert 'fundflow_etf_turnover_avg_cny{symbol="02800.HK"' not in text


# -- restart: the state topic's records carry the daily bars ------------------------------------------------------
def test_signals_survive_a_checkpoint_and_a_restart() -> None:
    days = sh_days("2025-09-12", 40)
    evs = [bar(d, 1.0 + (i % 7) / 100, shares=10**10, nav=1.0) for i, d in enumerate(days[:-2])]
    evs += [trade(days[-2], "09:31", 1.03, 1), trade(days[-2], "14:00", 1.02, 2),
            trade(days[-1], "09:31", 1.09, 3)]
    eng = run(evs[:-1])
    writer = StateWriter(eng, "g")
    keys = eng.take_updates()
    records, bumps = writer.encode(keys, {ETF: 0}, {0: 1})
    heads = [orjson.loads(v) for _, k, v in records if v is not None and b"|h|" in k]
    head = next(h for h in heads if h["date"] == days[-2].isoformat())
    assert head["ohlc"] == {"open": 1_030_000, "high": 1_030_000, "low": 1_020_000, "close": 1_020_000,
                            "volume": 200_000_000, "amount": 205_000_000}
    marker = Marker(1, {}, eng.as_of_ms, {})
    state = read_state("g", [(k, v) for _, k, v in records] + [(marker_key("g", 0), marker.to_json())])
    fresh = Engine(CAL)
    StateWriter(fresh, "g").load(0, state)
    v = Validator(CAL)
    for e in (eng, fresh):
        e.apply(v.validate(evs[-1]))
    assert signals_doc(fresh, ETF) == signals_doc(eng, ETF)


def test_pruned_trade_days_keep_their_daily_bar() -> None:
    days = sh_days("2025-09-12", 45)
    evs = [trade(d, "10:00", 1.0 + i / 1000, i + 1) for i, d in enumerate(days)]
    eng = run(evs)
    before = signals_doc(eng, ETF)
    eng.prune()
    assert len(eng.etf[ETF].days) < 45 and eng.etf[ETF].summaries
    assert signals_doc(eng, ETF) == before and before["macd"]["cross"] is not None
