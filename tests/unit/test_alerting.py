"""The service's own alert picture follows the spec: its thresholds (with [alerts] applied),
its market gates, and its ``for:`` (pending first, firing once the condition has held that long).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from consumers import views
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


def states(ev: AlertEvaluator, eng: Engine, now_ms: int, *names: str) -> dict[tuple[str, str], str]:
    """(alert, symbol) -> state; only the alerts ``names`` when given."""
    return {(a.alert, a.symbol): a.state for a in ev.evaluate(eng, now_ms) if not names or a.alert in names}


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
    large = "FundflowEtfLargeNetInflow"  # (the trade is also a super-large order: the main-force alert fires too)
    key = (large, "513770.SH")
    assert states(ev, eng, at("10:01"), large) == {key: "pending"}
    assert states(ev, eng, at("10:02"), large) == {key: "firing"}
    assert states(ev, eng, at("12:00"), large) == {}  # lunch break: the gate closes and the alert is forgotten
    assert states(ev, eng, at("13:05"), large) == {key: "pending"}  # so it starts over
    assert states(ev, eng, at("15:30"), large) == {}  # after the close


def test_outflows_alert_as_the_spec_names_them() -> None:
    sell = big_buy(600e6) | {"side": "S"}
    alerts = AlertEvaluator(AlertsConfig()).evaluate(engine([sell]), at("10:05"))
    assert [(a.alert, a.value) for a in alerts if a.alert.startswith("FundflowEtfLarge")] == [
        ("FundflowEtfLargeNetOutflow", 600e6)]


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


# -- main-force net inflow, premium to IOPV, southbound quota ----------------------------------------------------


def with_etf_view(monkeypatch: pytest.MonkeyPatch, symbol: str, **fields: Any) -> None:
    """The ETF view of ``symbol`` with ``fields`` as the flows computation gives them (micro-CNY, ratios):
    the alerts are tested over the view, whatever computes it."""
    real = views.etf

    def etf(eng: Engine, sym: str) -> views.EtfView | None:
        v = real(eng, sym)
        return dataclasses.replace(v, **fields) if v is not None and sym == symbol else v

    monkeypatch.setattr(views, "etf", etf)


@dataclasses.dataclass(frozen=True)
class Quota:
    """A southbound quota row with the fields of consumers.views.QuotaView (the shared contract)."""

    channel: str
    used_ratio: float | None
    date: dt.date | None = dt.date(2025, 9, 11)
    ts_ms: int | None = None
    quota: int | None = 42_000_000_000_000_000  # 42bn CNY in micros
    balance: int | None = None
    net_buy: dict[str, int | None] = dataclasses.field(default_factory=dict)


def with_quota(monkeypatch: pytest.MonkeyPatch, *rows: Quota) -> None:
    monkeypatch.setattr(views, "southbound_quota", lambda eng: list(rows), raising=False)


MAIN = ("FundflowEtfMainNetInflow", "FundflowEtfMainNetOutflow")


def test_main_force_inflow_of_300m_alerts_at_200m_after_a_minute_while_sh_trades(monkeypatch: pytest.MonkeyPatch) -> None:
    # one 300M CNY buy without an order id: classed by its own amount, super-large (>= 1M): main 1d = +300M,
    # >= [alerts] main_net_inflow_1d_cny (200M); the active net inflow (300M) stays below its own 500M
    eng = engine([big_buy(300e6)])
    with_etf_view(monkeypatch, "513770.SH", main_net_inflow={"1d": 300_000_000 * 10**6})
    ev = AlertEvaluator(AlertsConfig())
    key = ("FundflowEtfMainNetInflow", "513770.SH")
    assert states(ev, eng, at("10:01")) == {key: "pending"}
    assert states(ev, eng, at("10:01") + 59_000) == {key: "pending"}  # before for: 1m
    assert states(ev, eng, at("10:02")) == {key: "firing"}
    [alert] = ev.evaluate(eng, at("10:03"))
    assert alert.value == 300e6
    assert states(ev, eng, at("12:00")) == {}  # lunch break on SH
    assert states(ev, eng, at("15:30")) == {}  # after the close


def test_main_force_outflow_alerts_with_the_outflow_as_a_positive_value(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = engine([big_buy(300e6) | {"side": "S"}])  # main 1d = -300M <= -200M
    with_etf_view(monkeypatch, "513770.SH", main_net_inflow={"1d": -300_000_000 * 10**6})
    [alert] = AlertEvaluator(AlertsConfig()).evaluate(eng, at("10:05"))
    assert (alert.alert, alert.symbol, alert.value) == ("FundflowEtfMainNetOutflow", "513770.SH", 300e6)


@pytest.mark.parametrize("main_1d_cny", [199_999_999, -199_999_999, 0])
def test_main_force_flows_under_the_threshold_do_not_alert(monkeypatch: pytest.MonkeyPatch, main_1d_cny: int) -> None:
    eng = engine([big_buy(1e6)])
    with_etf_view(monkeypatch, "513770.SH", main_net_inflow={"1d": main_1d_cny * 10**6})
    assert states(AlertEvaluator(AlertsConfig(for_overrides=dict.fromkeys(MAIN, "0s"))), eng, at("10:05")) == {}


def test_main_force_threshold_comes_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = engine([big_buy(1e6)])
    with_etf_view(monkeypatch, "513770.SH", main_net_inflow={"1d": 150_000_000 * 10**6})
    cfg = AlertsConfig(main_net_inflow_1d_cny=100e6, for_overrides={"FundflowEtfMainNetInflow": "0s"})
    assert states(AlertEvaluator(cfg), eng, at("10:05")) == {("FundflowEtfMainNetInflow", "513770.SH"): "firing"}


def test_a_premium_or_discount_of_1_percent_alerts_after_5_minutes_while_the_market_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    # last 1.03 over IOPV 1.00: premium 3% >= 1%; 159920.SZ at 0.98 over 1.00: a 2% discount counts as well
    eng = engine([big_buy(1e6) | {"price": 1.03},
                  big_buy(1e6) | {"symbol": "159920.SZ", "price": 0.98, "trade_id": "t2"}])
    with_etf_view(monkeypatch, "513770.SH", premium_ratio=1.03 / 1.00 - 1)
    with_etf_view(monkeypatch, "159920.SZ", premium_ratio=0.98 / 1.00 - 1)
    ev = AlertEvaluator(AlertsConfig())
    premium = "FundflowEtfPremiumHigh"
    t0 = at("10:00")
    assert states(ev, eng, t0) == {(premium, "159920.SZ"): "pending", (premium, "513770.SH"): "pending"}
    assert states(ev, eng, t0 + 299_000) == {(premium, "159920.SZ"): "pending", (premium, "513770.SH"): "pending"}
    assert states(ev, eng, t0 + 300_000) == {(premium, "159920.SZ"): "firing", (premium, "513770.SH"): "firing"}
    values = {a.symbol: a.value for a in ev.evaluate(eng, t0 + 360_000)}
    assert values == {"159920.SZ": pytest.approx(0.02), "513770.SH": pytest.approx(0.03)}
    assert states(ev, eng, at("15:30")) == {}  # both markets closed


@pytest.mark.parametrize("premium", [0.0099, -0.0099, None])
def test_a_premium_under_1_percent_or_no_iopv_today_does_not_alert(monkeypatch: pytest.MonkeyPatch, premium: float | None) -> None:
    eng = engine([big_buy(1e6)])
    with_etf_view(monkeypatch, "513770.SH", premium_ratio=premium)
    cfg = AlertsConfig(for_overrides={"FundflowEtfPremiumHigh": "0s"})
    assert states(AlertEvaluator(cfg), eng, at("10:05")) == {}


def test_quota_nearly_used_alerts_per_channel_while_hong_kong_trades(monkeypatch: pytest.MonkeyPatch) -> None:
    # SH: 1 - 6.3bn / 42bn = 0.85 >= 0.8; SZ: 1 - 21bn / 42bn = 0.5; for: 1m, gated on HK (not on SH/SZ)
    with_quota(monkeypatch, Quota("SH", 0.85, balance=6_300_000_000 * 10**6),
               Quota("SZ", 0.5, balance=21_000_000_000 * 10**6))
    eng = engine([])
    ev = AlertEvaluator(AlertsConfig())
    key = ("FundflowSouthboundQuotaNearlyUsed", "SH")
    assert states(ev, eng, at("10:00")) == {key: "pending"}
    assert states(ev, eng, at("10:00") + 45_000) == {key: "pending"}
    assert states(ev, eng, at("10:01")) == {key: "firing"}
    [alert] = ev.evaluate(eng, at("10:02"))
    assert (alert.symbol, alert.value) == ("SH", 0.85)
    assert states(ev, eng, at("12:30")) == {}  # Hong Kong's lunch break
    assert states(ev, eng, at("15:30")) == {key: "pending"}  # Shanghai has closed, Hong Kong trades until 16:00
    assert states(ev, eng, at("16:30")) == {}  # Hong Kong has closed


@pytest.mark.parametrize("used", [0.79, None])
def test_quota_under_the_threshold_or_not_published_does_not_alert(monkeypatch: pytest.MonkeyPatch, used: float | None) -> None:
    with_quota(monkeypatch, Quota("SH", used), Quota("SZ", None, quota=None))
    cfg = AlertsConfig(for_overrides={"FundflowSouthboundQuotaNearlyUsed": "0s"})
    assert states(AlertEvaluator(cfg), engine([]), at("10:05")) == {}
    cfg = AlertsConfig(quota_used_ratio=0.75, for_overrides={"FundflowSouthboundQuotaNearlyUsed": "0s"})
    fired = states(AlertEvaluator(cfg), engine([]), at("10:05"))
    assert fired == ({} if used is None else {("FundflowSouthboundQuotaNearlyUsed", "SH"): "firing"})
