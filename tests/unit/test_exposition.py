"""/metrics prints exactly what prometheus_client would print, in both formats.

The business gauges are formatted by fundflow itself (monitor/metrics.py, for speed); the
reference here is prometheus_client: the same samples through GaugeMetricFamily, and the
whole page parsed back and printed again by prometheus_client's own generators.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from consumers import basket
from consumers.engine import Engine
from monitor.calendars import default_calendars, to_ms
from monitor.events import Validator
from monitor.metrics import Exposition, GaugeText, business_gauges, escape_label
from monitor.simulator import Scenario, generate
from monitor.stats import PipelineStats

UTC8 = dt.timezone(dt.timedelta(hours=8))


class _Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        yield from self.families


def reprint(families: list[Any], openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return (generate_openmetrics if openmetrics else generate_latest)(registry)


@pytest.mark.parametrize("value,text", [(606_000_037.0, "6.06000037e+08"), (37.1e9, "3.71e+10"), (15, "15.0"),
                                        (-2.5e9, "-2500000000.0"), (0.0113, "0.0113"), (math.inf, "+Inf")])
def test_named_values(value: float, text: str) -> None:
    fam = GaugeText("x", "")
    fam.add('symbol="513770.SH"', value)
    assert fam.lines == [f'fundflow_x{{symbol="513770.SH"}} {text}\n']


@given(help_=st.text(max_size=30), label=st.text(max_size=12), value=st.floats(allow_nan=False),
       openmetrics=st.booleans())
def test_one_gauge_family_equals_prometheus_client(help_: str, label: str, value: float, openmetrics: bool) -> None:
    ours = GaugeText("x", help_)
    ours.add(f'a="{escape_label(label)}",b="w"', value)
    theirs = GaugeMetricFamily("fundflow_x", help_, labels=["b", "a"])  # prometheus_client sorts label names
    theirs.add_metric(["w", label], value)
    expected = reprint([theirs], openmetrics)
    got = ours.text(openmetrics).encode() + (b"# EOF\n" if openmetrics else b"")
    assert got == expected


@pytest.fixture(scope="module")
def exposition() -> Exposition:
    """Two simulated days of 6 ETFs and 4 stocks, 35 days of bars before them, a basket, an HK-listed ETF,
    sectors: every family has samples."""
    cal = default_calendars()
    v, eng = Validator(cal), Engine(cal, 60, False)
    events = list(generate(Scenario.synthetic(6, 4, days=2, seed=3, trade_interval_s=60, tick_interval_s=300)))
    etf = min(e["symbol"] for e in events if e["kind"] == "trade")
    for i, day in enumerate(cal["SH"].before_n(dt.date(2025, 9, 11), 35)):
        eng.apply(v.validate({"kind": "bar", "symbol": etf, "date": day.isoformat(), "open": 1, "high": 1 + i / 100,
                              "low": 1, "close": 1 + i / 200, "volume": 10, "amount": 10}))
    for ev in events:
        eng.apply(v.validate(ev))
    for day in cal["HK"].before_n(dt.date(2025, 9, 12), 3):  # an HK-listed ETF: its HKD families
        eng.apply(v.validate({"kind": "bar", "symbol": "02800.HK", "date": day.isoformat(), "open": 25, "high": 25,
                              "low": 25, "close": 25, "volume": 10, "amount": 250}))
    eng.apply(v.validate({"kind": "trade", "symbol": "02800.HK", "ts": to_ms(dt.datetime(2025, 9, 12, 10, 0, tzinfo=UTC8)),
                          "price": 25.1, "volume": 10, "trade_id": "hk1"}))
    eng.holdings = basket.from_mapping({etf: {s: "0.1" for s in sorted(eng.sb)}})
    for channel in ("SH", "SZ"):  # the quota families
        eng.apply(v.validate({"kind": "southbound_quota", "channel": channel, "quota_cny": 42e9, "balance_cny": 3e10,
                              "ts": to_ms(dt.datetime(2025, 9, 12, 10, 0, tzinfo=UTC8))}))
    eng.sectors = {etf: "Sector A", min(eng.sb): "Sector A", max(eng.sb): 'Sector "B"'}  # a label to escape
    return Exposition(eng, PipelineStats())


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text-0.0.4", "openmetrics"])
def test_the_page_reprints_byte_for_byte(exposition: Exposition, openmetrics: bool) -> None:
    page = exposition.render(openmetrics).decode()
    families = list((parse_openmetrics if openmetrics else parse_text)(page))
    business = {g.name for g in business_gauges(exposition.engine)}
    assert len(business) == 35 and business <= {f.name for f in families if f.samples}  # all of them, with samples
    assert reprint(families, openmetrics).decode() == page


async def test_the_served_page_is_the_same_page_and_lets_the_consumer_run(exposition: Exposition,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exposition, "SLICE_SYMBOLS", 2)
    turns = 0

    async def consumer() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(consumer())
    await asyncio.sleep(0)
    page = await exposition.render_async()
    task.cancel()
    symbols = len(exposition.engine.etf) + len(exposition.engine.sb)
    assert page == exposition.render() and turns >= symbols // 2
