"""Net inflow by order size and the premium to IOPV: named scenarios with hand-computed numbers.

Rule: a trade is classed by its aggressor order's amount today including this trade (the buy
order of a buyer-initiated trade, the sell order of a seller-initiated one), in apply order;
without an aggressor id, by its own amount; without a side, in no class. Bounds 50k / 200k / 1M
CNY. main = large + super_large. The classes sum to the active net inflow in every window.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers import views
from consumers.engine import Engine
from consumers.orders import DEFAULT_CLASSES, OrderClasses, OrderTotals, order_key
from harness.docs import etf_doc
from harness.metrics import sample_value
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars
from monitor.config import Config
from monitor.events import Rejected, Validator
from monitor.metrics import Exposition
from monitor.service import Service
from monitor.stats import PipelineStats

SYM = "513770.SH"
T0 = 1757640600000  # 2025-09-12 09:30:00 +08:00 (a Friday session)
NEXT_DAY = 1757899800000  # 2025-09-15 09:30:00 +08:00 (the next session)
CAL = default_calendars()
WINDOWS = ("1m", "5m", "15m", "1h", "1d", "5d", "20d")
REPO = Path(__file__).resolve().parents[2]


def trade(n: int, amount: float, side: str | None, buy: Any = None, sell: Any = None, ts: int = T0,
          price: float = 1.0) -> dict[str, Any]:
    ev: dict[str, Any] = {"kind": "trade", "symbol": SYM, "ts": ts + n * 1000, "price": price,
                          "volume": amount / price, "amount": amount, "trade_id": f"T{n}"}
    if side is not None:
        ev["side"] = side
    if buy is not None:
        ev["buy_order_id"] = buy
    if sell is not None:
        ev["sell_order_id"] = sell
    return ev


def run(events: list[dict[str, Any]], classes: OrderClasses = DEFAULT_CLASSES) -> Engine:
    engine = Engine(CAL, order_classes=classes)
    validator = Validator(CAL)
    for ev in events:
        engine.apply(validator.validate(ev))
    return engine


# the scenario of the module docstring, one minute of 513770.SH
DAY = [
    trade(0, 1_000, None),  # first trade of the day, no previous session: no side, no class
    trade(1, 30_000, "B", buy=9001, sell=1),  # order 9001: 30k so far -> small
    trade(2, 30_000, "B", buy=9001, sell=2),  # 9001: 60k -> medium (the first fill stays small)
    trade(3, 10_000, "S", buy=9001, sell="A7"),  # aggressor A7 (10k, small); 9001 is passive: unchanged
    trade(4, 150_000, "B", buy=9001, sell=3),  # 9001: 210k -> large
    trade(4, 150_000, "B", buy=9001, sell=3),  # the same trade_id again: a duplicate, adds nothing
    trade(5, 1_200_000, "B"),  # no order ids: its own amount -> super_large
]


def test_a_trade_is_classed_by_its_aggressor_orders_amount_so_far_today() -> None:
    doc = etf_doc(run(DAY), SYM)
    assert doc is not None
    day = {c: doc["order_net_inflow_cny"][c]["1d"] for c in ("small", "medium", "large", "super_large")}
    assert day == {"small": 30_000 - 10_000, "medium": 30_000, "large": 150_000, "super_large": 1_200_000}
    assert doc["main_net_inflow_cny"]["1d"] == 150_000 + 1_200_000
    assert doc["net_inflow_cny"]["1d"] == 20_000 + 30_000 + 150_000 + 1_200_000
    assert doc["turnover_cny"] == 1_000 + 30_000 + 30_000 + 10_000 + 150_000 + 1_200_000
    assert doc["main_ratio_1d"] == pytest.approx((150_000 + 1_200_000) / 1_421_000, rel=1e-15)


def test_the_classes_sum_to_the_active_net_inflow_in_every_window() -> None:
    doc = etf_doc(run(DAY), SYM)
    assert doc is not None
    for w in WINDOWS:
        parts = [doc["order_net_inflow_cny"][c][w] for c in ("small", "medium", "large", "super_large")]
        assert sum(parts) == doc["net_inflow_cny"][w], w
        assert doc["main_net_inflow_cny"][w] == parts[2] + parts[3]


def test_an_orders_amount_restarts_each_trading_day() -> None:
    doc = etf_doc(run([trade(1, 40_000, "B", buy=5), trade(2, 40_000, "B", buy=5, ts=NEXT_DAY)]), SYM)
    assert doc is not None
    # on the 15th, order 5 has 40k today (not 80k): small, not medium
    assert doc["order_net_inflow_cny"]["small"]["1d"] == 40_000
    assert doc["order_net_inflow_cny"]["small"]["5d"] == 80_000
    assert doc["order_net_inflow_cny"]["medium"]["5d"] == 0


def test_the_bounds_come_from_config_and_are_checked() -> None:
    classes = OrderClasses.of_cny([10_000, 20_000, 30_000])
    doc = etf_doc(run([trade(1, 15_000, "B", buy=1), trade(2, 15_000, "B", buy=1)], classes), SYM)
    assert doc is not None
    assert doc["order_net_inflow_cny"]["medium"]["1d"] == 15_000
    assert doc["order_net_inflow_cny"]["super_large"]["1d"] == 15_000  # 30k reaches the top bound
    with pytest.raises(ValueError, match="three increasing"):
        OrderClasses.of_cny([50_000, 20_000, 1_000_000])


def test_order_ids_are_non_empty_strings_or_integers() -> None:
    validator = Validator(CAL)
    assert validator.validate(trade(1, 1_000, "B", buy=17)).buy_order_id == "17"  # type: ignore[union-attr]  # a Trade here
    for bad in ("", True, 1.5, [1]):
        with pytest.raises(Rejected) as exc:
            validator.validate(trade(1, 1_000, "B", buy=bad))
        assert exc.value.reason == "wrong_type"


def test_numeric_and_text_order_ids_never_share_a_key() -> None:
    assert order_key("17") == 17 and order_key("0") == 0
    assert order_key("017") < 0 and order_key("A7") < 0 and order_key("017") != order_key("17")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(1, 400_000)), max_size=300))
def test_order_totals_match_a_dict_whatever_the_merge_points(adds: list[tuple[int, int]]) -> None:
    totals, ref = OrderTotals(), {}
    cap = 1_000_000
    for key, amount in adds:
        ref[key] = min(ref.get(key, 0) + amount, cap)
        assert totals.add(key, amount, cap) == ref[key]
    assert {k: totals.get(k) for k in ref} == ref
    assert len(OrderTotals.from_state(totals.to_state())) == len(ref)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5400), st.integers(1, 2_000_000), st.sampled_from(["B", "S", None]),
                          st.integers(0, 6)), min_size=1, max_size=60))
def test_classes_sum_to_net_for_any_stream(steps: list[tuple[int, int, str | None, int]]) -> None:
    """Trades at any second of the first 90 minutes, in any order, some without side or order id."""
    events = []
    for n, (sec, amount, side, order) in enumerate(steps):
        ev = trade(0, amount, side, buy=order or None, sell=(order + 100) if order else None, ts=T0 + sec * 1000)
        ev["trade_id"] = f"T{n}"
        events.append(ev)
    doc = etf_doc(run(events), SYM)
    assert doc is not None
    for w in WINDOWS:
        parts = [doc["order_net_inflow_cny"][c][w] for c in ("small", "medium", "large", "super_large")]
        assert round(sum(parts), 6) == doc["net_inflow_cny"][w], w


# -- the premium to IOPV ---------------------------------------------------------------------------
def iopv(ts: int, value: float) -> dict[str, Any]:
    return {"kind": "iopv", "symbol": SYM, "ts": ts, "iopv": value}


def test_the_premium_is_the_last_price_over_todays_latest_iopv() -> None:
    engine = run([iopv(T0 + 15_000, 1.25), iopv(T0 + 30_000, 1.26), iopv(T0 + 20_000, 1.99),  # older: ignored
                  trade(40, 1_000, "B", price=1.2789)])
    v = views.etf(engine, SYM)
    assert v is not None and v.iopv == 1_260_000
    assert v.premium_ratio == pytest.approx(1.2789 / 1.26 - 1, rel=1e-12)


def test_no_premium_without_a_trade_or_an_iopv_today() -> None:
    engine = run([iopv(T0 + 15_000, 1.25)])
    v = views.etf(engine, SYM)
    assert v is not None and v.iopv == 1_250_000 and v.premium_ratio is None  # no trade today
    engine = run([iopv(T0 + 15_000, 1.25), trade(1, 1_000, "B", ts=NEXT_DAY), iopv(T0 + 30_000, 1.30)])
    v = views.etf(engine, SYM)
    assert v is not None and v.iopv is None and v.premium_ratio is None  # the 12th's IOPVs do not count on the 15th


def test_a_repeated_iopv_is_a_duplicate_and_a_bad_one_is_rejected() -> None:
    engine = Engine(CAL)
    validator = Validator(CAL)
    assert engine.apply(validator.validate(iopv(T0, 1.25))) == "applied"
    assert engine.apply(validator.validate(iopv(T0, 1.25))) == "duplicate"
    for bad, reason in ((iopv(T0, 0), "bad_number"), ({**iopv(T0, 1.2), "symbol": "09988.HK"}, "bad_symbol"),
                        (iopv(T0 - 86_400_000, 1.2), "outside_session")):  # the 11th at 09:30 is fine; the 11th
        if bad["ts"] == T0 - 86_400_000:
            bad["ts"] = T0 - 4 * 3_600_000  # 05:30, far outside the session
        with pytest.raises(Rejected) as exc:
            validator.validate(bad)
        assert exc.value.reason == reason


# -- exported and restored ---------------------------------------------------------------------------
def test_metrics_carry_main_classes_and_premium() -> None:
    engine = run([*DAY, iopv(T0 + 5_000, 0.99)])
    page = Exposition(engine, PipelineStats()).render().decode()
    assert sample_value(page, "fundflow_etf_main_net_inflow_cny", {"symbol": SYM, "window": "1d"}) == 1_350_000
    medium = {"class": "medium", "symbol": SYM}
    assert sample_value(page, "fundflow_etf_order_net_inflow_cny", {**medium, "window": "1d"}) == 30_000
    # classes: the session's only (cardinality); main has every window
    assert sample_value(page, "fundflow_etf_order_net_inflow_cny", {**medium, "window": "5d"}) is None
    assert sample_value(page, "fundflow_etf_main_net_inflow_cny", {"symbol": SYM, "window": "1m"}) == 1_350_000
    assert sample_value(page, "fundflow_etf_iopv_cny", {"symbol": SYM}) == 0.99
    assert sample_value(page, "fundflow_etf_premium_ratio", {"symbol": SYM}) == pytest.approx(1.0 / 0.99 - 1)


def test_a_restart_keeps_each_orders_amount_so_far() -> None:
    """Checkpoint after the first fill of order 9001; the second fill after the restart is medium."""
    bus = MemoryBus(6)
    bus.ensure_topics()

    def service() -> Service:
        cfg = Config()
        cfg.kafka.checkpoint_interval_s = 3600.0
        return Service(cfg, bus=bus, live_clock=False)

    def feed_and_consume(svc: Service, events: list[dict[str, Any]]) -> None:
        pub = svc.publisher("test")
        for e in events:
            pub.publish_obj(e, orjson.dumps(e))
        asyncio.run(svc.runner.run(asyncio.Event(), until_caught_up=True))

    first = service()
    feed_and_consume(first, [*DAY[:2], iopv(T0 + 1_500, 1.01)])
    second = service()
    feed_and_consume(second, DAY[2:])
    doc = etf_doc(second.engine, SYM)
    assert doc is not None
    assert doc["order_net_inflow_cny"]["medium"]["1d"] == 30_000
    assert doc["order_net_inflow_cny"]["medium"]["1m"] == 30_000  # the windows are rebuilt per class
    assert doc["main_net_inflow_cny"]["1d"] == 1_350_000
    assert doc["iopv_cny"] == 1.01
    assert second.runner.applied_total == len(DAY) - 2  # only what came after the checkpoint was read


def test_fundflow_replay_of_a_tape_with_order_ids_iopvs_and_quota(tmp_path: Path) -> None:
    """The scenario's minute, an IOPV of 1.0 and an SH quota record, through ``fundflow replay``."""
    tape = tmp_path / "flows.ndjson"
    quota = {"kind": "southbound_quota", "channel": "SH", "ts": T0 + 60_000, "quota_cny": 42_000_000_000,
             "balance_cny": 31_500_000_000}
    tape.write_bytes(b"\n".join(orjson.dumps(e) for e in [*DAY, iopv(T0 + 2_000, 1.0), quota]) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", str(tape), "--report", "json", "-q"],
                         cwd=REPO, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    report = orjson.loads(out.stdout)
    etf = report["symbols"][SYM]["etf"]
    assert etf["main_net_inflow_cny"]["1d"] == 1_350_000
    assert {c: w["1d"] for c, w in etf["order_net_inflow_cny"].items()} == \
        {"small": 20_000, "medium": 30_000, "large": 150_000, "super_large": 1_200_000}
    assert etf["iopv_cny"] == 1.0 and etf["premium_ratio"] == 0.0  # the last trade is at 1.0
    sh = next(c for c in report["southbound_quota"] if c["channel"] == "SH")
    assert sh["used_ratio"] == 0.25 and sh["balance_cny"] == 31_500_000_000
    assert report["duplicates"] == 1


def test_a_late_trade_of_a_closed_day_is_classed_by_its_orders_amount_that_day() -> None:
    """Order 5 buys 40k on the 12th; the 15th opens (the 12th closes, its totals are compressed); a late
    40k fill of order 5 on the 12th makes it 80k: medium, on the 12th."""
    engine = run([trade(1, 40_000, "B", buy=5), trade(2, 10_000, "B", ts=NEXT_DAY)])
    engine.prune()
    day = engine.etf[SYM].days[min(engine.etf[SYM].days)]
    assert day.orders is not None and day.orders.frozen is not None
    engine.apply(Validator(CAL).validate(trade(3, 40_000, "B", buy=5)))
    assert day.flows[2] == 40_000 * 1_000_000  # medium buy on the 12th (micros)
    assert day.orders.get(order_key("5")) == 80_000_000_000  # micros


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.integers(-2**63, 2**63 - 1), st.sampled_from([-2**63, 2**63 - 1, 0, -1])),
                          st.integers(0, 10**12)), max_size=200))
def test_frozen_totals_come_back_exactly(entries: list[tuple[int, int]]) -> None:
    totals = OrderTotals()
    for key, amount in entries:
        totals.add(key, amount, 10**12)
    before = {k: totals.get(k) for k, _ in entries}
    totals.freeze()
    again = OrderTotals.from_state(orjson.loads(orjson.dumps(totals.to_state())))
    assert {k: again.get(k) for k, _ in entries} == before
