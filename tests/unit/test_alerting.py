"""The service's own alert picture follows the spec: its thresholds (with [alerts] applied),
its market gates, and its ``for:`` (pending first, firing once the condition has held that long).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from consumers.engine import Engine
from monitor import documents
from monitor.alerting import AlertEvaluator
from monitor.calendars import default_calendars, to_ms
from monitor.config import AlertsConfig
from monitor.events import Validator
from monitor.ops.spec import ALERTS

UTC8 = dt.timezone(dt.timedelta(hours=8))
DAY = "2025-09-11"  # a Thursday: SH, SZ and HK all trade


def at(hhmm: str, day: str = DAY) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    d = dt.date.fromisoformat(day)
    return to_ms(dt.datetime(d.year, d.month, d.day, h, m, tzinfo=UTC8))


def engine(events: list[dict[str, Any]]) -> Engine:
    cals = default_calendars()
    validator, eng = Validator(cals), Engine(cals)
    for obj in events:
        eng.apply(validator.validate(obj))
    return eng


def streak_of_buys(days: int, symbol: str = "09988.HK") -> list[dict[str, Any]]:
    sb = default_calendars()["SB"]
    return [{"kind": "southbound_daily", "symbol": symbol, "date": d.isoformat(), "buy_hkd": 2e9, "sell_hkd": 1e9}
            for d in sb.last_n(dt.date.fromisoformat(DAY), days)]


def big_buy(cny: float, hhmm: str = "10:00") -> dict[str, Any]:
    return {"kind": "trade", "symbol": "513770.SH", "ts": at(hhmm), "price": 1.0, "volume": int(cny),
            "amount": cny, "side": "B", "trade_id": "t1"}


def states(ev: AlertEvaluator, eng: Engine, now_ms: int) -> dict[tuple[str, str], str]:
    return {(a.alert, a.symbol): a.state for a in ev.evaluate(eng, now_ms)}


def test_every_business_alert_of_the_spec_is_evaluated_in_the_service() -> None:
    assert set(AlertEvaluator(AlertsConfig()).rules) == {a.name for a in ALERTS if a.group == "business"}


def test_pending_until_the_condition_has_held_for_its_for_duration_then_firing() -> None:
    eng = engine(streak_of_buys(10))  # the spec: streak >= {streak_days} (10) for 5m
    ev = AlertEvaluator(AlertsConfig())
    key = ("FundflowSouthboundNetBuyStreak", "09988.HK")
    t0 = at("16:30")
    assert states(ev, eng, t0) == {key: "pending"}
    assert states(ev, eng, t0 + 299_000) == {key: "pending"}
    assert states(ev, eng, t0 + 300_000) == {key: "firing"}
    [alert] = ev.evaluate(eng, t0 + 360_000)
    assert (alert.value, alert.active_since_ms) == (10, t0)


def test_thresholds_and_for_come_from_the_config_through_the_spec() -> None:
    eng = engine(streak_of_buys(3))
    assert states(AlertEvaluator(AlertsConfig()), eng, at("16:30")) == {}  # 3 days < 10
    cfg = AlertsConfig(streak_days=3, for_overrides={"FundflowSouthboundNetBuyStreak": "0s"})
    assert states(AlertEvaluator(cfg), eng, at("16:30")) == {("FundflowSouthboundNetBuyStreak", "09988.HK"): "firing"}


def test_market_gated_alerts_hold_only_while_the_symbols_exchange_trades() -> None:
    eng = engine([big_buy(600e6)])  # 600M CNY of active buying >= 500M, gated on SH being open, for 1m
    ev = AlertEvaluator(AlertsConfig())
    key = ("FundflowEtfLargeNetInflow", "513770.SH")
    assert states(ev, eng, at("10:01")) == {key: "pending"}
    assert states(ev, eng, at("10:02")) == {key: "firing"}
    assert states(ev, eng, at("12:00")) == {}  # lunch break: the gate closes and the alert is forgotten
    assert states(ev, eng, at("13:05")) == {key: "pending"}  # so it starts over
    assert states(ev, eng, at("15:30")) == {}  # after the close


def test_outflows_alert_as_the_spec_names_them() -> None:
    sell = big_buy(600e6) | {"side": "S"}
    [alert] = AlertEvaluator(AlertsConfig()).evaluate(engine([sell]), at("10:05"))
    assert (alert.alert, alert.value) == ("FundflowEtfLargeNetOutflow", 600e6)


def test_status_lists_each_alert_with_its_state_and_since_when() -> None:
    eng = engine(streak_of_buys(10))
    ev = AlertEvaluator(AlertsConfig())
    assert documents.alerts(ev.evaluate(eng, at("16:30"))) == [
        {"alert": "FundflowSouthboundNetBuyStreak", "symbol": "09988.HK", "value": 10, "state": "pending",
         "active_since": "2025-09-11T16:30:00.000+08:00"}]


def test_the_service_evaluates_at_most_once_per_interval() -> None:
    eng = engine(streak_of_buys(10))
    wall = [0.0]
    ev = AlertEvaluator(AlertsConfig(), interval_s=5.0, monotonic=lambda: wall[0])
    first = ev.states(eng, at("16:30"))
    wall[0] = 4.0
    assert ev.states(eng, at("16:40")) is first  # not evaluated again: still pending
    wall[0] = 5.0
    assert [a.state for a in ev.states(eng, at("16:40"))] == ["firing"]
