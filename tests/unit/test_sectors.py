"""Sectors, one named scenario per rule with its hand-computed numbers: the sectors file, the sums per
sector and window, the top symbol, the order, symbols without a sector, /api/v1/sectors, the report and
the /metrics families."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumers import sectors, views
from consumers.engine import Engine
from consumers.sectors import SectorRow, SectorsError, from_csv, sector_rows, sector_table
from harness.metrics import sample_value
from monitor import documents
from monitor.calendars import default_calendars
from monitor.cli import demo_sectors
from monitor.config import Config, load_sectors
from monitor.events import Validator
from monitor.metrics import Exposition
from monitor.server import make_app
from monitor.simulator import Scenario, generate
from monitor.stats import PipelineStats

UTC8 = dt.timezone(dt.timedelta(hours=8))
CAL = default_calendars()
M = 1_000_000  # micros per unit
WINDOWS = ("1d", "5d", "20d")

# Five sectors: one with an ETF and stocks, one of ETFs only, one of stocks only, two without any data.
# 512880.SH and 03690.HK have flows but no sector.
SECTORS_CSV = """symbol,sector
513770.SH,Internet
09988.HK,Internet
00700.HK,Internet
510300.SH,Broad market
159920.SZ,Broad market
02318.HK,Financials
00388.HK,Financials
513180.SH,Semiconductors
516110.SH,Autos
"""


def _ts(day: str, hh: int, mm: int) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, hh, mm, tzinfo=UTC8).timestamp() * 1000)


def trade(symbol: str, day: str, side: str, cny: float, tid: str, hhmm: tuple[int, int] = (9, 45)) -> dict[str, Any]:
    """An aggressor trade of ``cny`` (price 1.000 x volume)."""
    return {"kind": "trade", "symbol": symbol, "ts": _ts(day, *hhmm), "price": 1.0, "volume": int(cny), "side": side,
            "trade_id": tid}


def daily(symbol: str, day: str, buy: float, sell: float) -> dict[str, Any]:
    return {"kind": "southbound_daily", "symbol": symbol, "date": day, "buy_hkd": buy, "sell_hkd": sell}


def tick(symbol: str, buy: float, sell: float, seq: int) -> dict[str, Any]:
    return {"kind": "southbound", "symbol": symbol, "ts": _ts("2025-09-12", 9, 50), "channel": "SH", "buy_hkd": buy,
            "sell_hkd": sell, "seq": seq}


def run(events: list[dict[str, Any]], sectors_csv: str = SECTORS_CSV) -> Engine:
    v, eng = Validator(CAL), Engine(CAL)
    for e in events:
        eng.apply(v.validate(e))
    eng.sectors = from_csv(sectors_csv)
    return eng


def flows_engine() -> Engine:
    """Stream clock 2025-09-12 10:00 (a Friday). 1d = 09-12; 5d = 09-08..09-12; 20d reaches back past 09-05.

    ETF trades are all below 50k CNY (small orders: no main net inflow).
    ETFs (CNY, side B +, S -):           09-05    09-08    09-12  |    1d      5d     20d
      513770.SH Internet                  +30k     -10k     +20k  |  +20k    +10k    +40k
      510300.SH Broad market              -45k               +5k  |   +5k     +5k    -40k
      159920.SZ Broad market                       +40k     -15k  |  -15k    +25k    +25k
      512880.SH (no sector)                                 +9k at 10:00 (the stream clock)
    Southbound (HKD, buy - sell):
      09988.HK Internet                   +10M      -4M      +2M  |   +2M     -2M     +8M
      00700.HK Internet                             +7M           |    0      +7M     +7M
      02318.HK Financials                   09-11: +1M       -2M  |   -2M     -1M     -1M
      00388.HK Financials                  +6M                    |    0       0      +6M
      03690.HK (no sector)                         +50M
    """
    return run([
        daily("09988.HK", "2025-09-05", 30e6, 20e6), daily("00388.HK", "2025-09-05", 6e6, 0),
        trade("513770.SH", "2025-09-05", "B", 30e3, "a1"), trade("510300.SH", "2025-09-05", "S", 45e3, "b1"),
        daily("09988.HK", "2025-09-08", 6e6, 10e6), daily("00700.HK", "2025-09-08", 8e6, 1e6),
        daily("03690.HK", "2025-09-08", 50e6, 0),
        trade("513770.SH", "2025-09-08", "S", 10e3, "a2"), trade("159920.SZ", "2025-09-08", "B", 40e3, "c1"),
        daily("02318.HK", "2025-09-11", 2e6, 1e6),
        trade("513770.SH", "2025-09-12", "B", 20e3, "a3"), trade("510300.SH", "2025-09-12", "B", 5e3, "b2"),
        trade("159920.SZ", "2025-09-12", "S", 15e3, "c2"),
        tick("09988.HK", 3e6, 1e6, 1), tick("02318.HK", 0.5e6, 2.5e6, 1),
        trade("512880.SH", "2025-09-12", "B", 9e3, "d1", hhmm=(10, 0)),
    ])


def row(sector: str, symbols: int, etf_cny: int, sb_hkd: int, top: str | None, main_cny: int = 0) -> SectorRow:
    return SectorRow(sector, symbols, etf_cny * M, main_cny * M, sb_hkd * M, top)


# -- the sums, the top symbol and the order ------------------------------------------------------
def test_two_sectors_with_etfs_and_stocks_sum_per_window() -> None:
    eng = flows_engine()
    by = {w: {r.sector: r for r in sector_rows(eng, w)} for w in WINDOWS}

    def sums(sector: str) -> list[tuple[int, int]]:
        return [(by[w][sector].etf_net_inflow // M, by[w][sector].southbound_net_buy // M) for w in WINDOWS]

    assert sums("Internet") == [(20_000, 2_000_000), (10_000, 5_000_000), (40_000, 15_000_000)]
    assert sums("Broad market") == [(-10_000, 0), (30_000, 0), (-15_000, 0)]
    assert sums("Financials") == [(0, -2_000_000), (0, -1_000_000), (0, 5_000_000)]
    assert {s: r.symbols for s, r in by["1d"].items()} == {"Internet": 3, "Broad market": 2, "Financials": 2,
                                                          "Semiconductors": 0, "Autos": 0}


def test_rows_sorted_by_etf_inflow_then_southbound_then_name_with_the_top_symbol() -> None:
    eng = flows_engine()
    assert sector_rows(eng, "1d") == [
        row("Internet", 3, 20_000, 2_000_000, "513770.SH"),
        row("Autos", 0, 0, 0, None),  # ties Semiconductors (0, 0): by name
        row("Semiconductors", 0, 0, 0, None),
        row("Financials", 2, 0, -2_000_000, "00388.HK"),  # stocks only: the largest net buy, 0 > -2M
        row("Broad market", 2, -10_000, 0, "510300.SH"),  # +5k beats -15k
    ]
    assert sector_rows(eng, "5d") == [
        row("Broad market", 2, 30_000, 0, "159920.SZ"),
        row("Internet", 3, 10_000, 5_000_000, "513770.SH"),  # has an ETF: the ETF, though 00700.HK bought 7M HKD
        row("Autos", 0, 0, 0, None),
        row("Semiconductors", 0, 0, 0, None),
        row("Financials", 2, 0, -1_000_000, "00388.HK"),
    ]
    assert sector_rows(eng, "20d") == [
        row("Internet", 3, 40_000, 15_000_000, "513770.SH"),
        row("Financials", 2, 0, 5_000_000, "00388.HK"),  # (0, +5M) before (0, 0)
        row("Autos", 0, 0, 0, None),
        row("Semiconductors", 0, 0, 0, None),
        row("Broad market", 2, -15_000, 0, "159920.SZ"),  # +25k beats -40k
    ]


def test_symbols_without_a_sector_are_left_out() -> None:
    """512880.SH (+9k CNY today) and 03690.HK (+50M HKD) have flows but no sector: in no row, no count."""
    eng = flows_engine()
    rows = sector_rows(eng, "20d")
    assert sum(r.etf_net_inflow for r in rows) == (40_000 - 15_000) * M
    assert sum(r.southbound_net_buy for r in rows) == 20_000_000 * M
    assert sum(r.symbols for r in rows) == 7
    assert sum(r.etf_net_inflow for r in sector_rows(eng, "1d")) == (20_000 - 10_000) * M


def test_no_sectors_configured_no_rows() -> None:
    eng = flows_engine()
    eng.sectors = {}
    assert sector_rows(eng, "1d") == [] and sector_table(eng) == {"1d": [], "5d": [], "20d": []}


def test_unknown_window_is_refused() -> None:
    with pytest.raises(ValueError, match="1d, 5d, 20d"):
        sector_rows(flows_engine(), "1h")


def test_the_table_of_every_window_equals_the_rows_of_each() -> None:
    eng = flows_engine()
    assert sector_table(eng) == {w: sector_rows(eng, w) for w in WINDOWS}


def test_top_symbol_tie_goes_to_the_first_in_sort_order() -> None:
    """510300.SH and 159920.SZ both +1k today: 159920.SZ sorts first."""
    eng = run([trade("510300.SH", "2025-09-12", "B", 1e3, "x"), trade("159920.SZ", "2025-09-12", "B", 1e3, "y")],
              "symbol,sector\n510300.SH,Broad market\n159920.SZ,Broad market\n")
    assert sector_rows(eng, "1d") == [row("Broad market", 2, 2_000, 0, "159920.SZ")]


def test_main_net_inflow_sums_the_etfs_main_and_counts_a_missing_value_as_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Main net inflow per ETF, stubbed (the ETF view fills it): 513770.SH 1d +1.2M, 5d None, 20d +0.7M;
    510300.SH 1d -0.2M, 5d and 20d missing. Sums: Internet 1.2M / 0 / 0.7M, Broad market -0.2M / 0 / 0."""
    main: dict[str, dict[str, int | None]] = {"513770.SH": {"1d": 1_200_000, "5d": None, "20d": 700_000},
                                               "510300.SH": {"1d": -200_000}}
    real = views.etf

    def etf(engine: Engine, symbol: str) -> views.EtfView | None:
        v = real(engine, symbol)
        return None if v is None else dataclasses.replace(v, main_net_inflow={
            w: (None if x is None else x * M) for w, x in main.get(symbol, {}).items()})

    monkeypatch.setattr(sectors.views, "etf", etf)
    eng = flows_engine()
    got = {w: {r.sector: r.etf_main_net_inflow // M for r in sector_rows(eng, w)} for w in WINDOWS}
    assert [got[w]["Internet"] for w in WINDOWS] == [1_200_000, 0, 700_000]
    assert [got[w]["Broad market"] for w in WINDOWS] == [-200_000, 0, 0]
    assert [got[w]["Financials"] for w in WINDOWS] == [0, 0, 0]  # no ETFs


def test_main_net_inflow_of_main_sized_trades() -> None:
    """513770.SH: B 2,000,000 (super-large) and S 300,000 (large) today -> main 1d +1.7M; 510300.SH: B 10,000
    (small) -> main 0. Sector main 1d: Internet +1.7M (= its net), Broad market 0 (net +10k)."""
    eng = run([trade("513770.SH", "2025-09-12", "B", 2e6, "m1"), trade("513770.SH", "2025-09-12", "S", 3e5, "m2"),
               trade("510300.SH", "2025-09-12", "B", 1e4, "m3")])
    etf = views.etf(eng, "513770.SH")
    assert etf is not None and etf.main_net_inflow["1d"] == 1_700_000_000_000  # micros
    assert sector_rows(eng, "1d") == [row("Internet", 1, 1_700_000, 0, "513770.SH", main_cny=1_700_000),
                                      row("Broad market", 1, 10_000, 0, "510300.SH", main_cny=0),
                                      row("Autos", 0, 0, 0, None), row("Financials", 0, 0, 0, None),
                                      row("Semiconductors", 0, 0, 0, None)]


def test_an_hk_listed_etf_is_not_summed_as_cny() -> None:
    """02800.HK trades (HKD) in a sector: no ETF flow is summed from it and it is not counted."""
    eng = run([{"kind": "trade", "symbol": "02800.HK", "ts": _ts("2025-09-12", 9, 45), "price": 25.0,
                "volume": 1000, "side": "B", "trade_id": "h1"}], "symbol,sector\n02800.HK,Broad market\n")
    assert sector_rows(eng, "1d") == [row("Broad market", 0, 0, 0, None)]


# -- the sectors file ---------------------------------------------------------------------------
def test_csv_reads_symbol_to_sector_trimmed_and_upper_cased() -> None:
    text = "\ufeffSymbol, Sector\n513770.sh , Internet \n09988.HK,Internet\n\n00700.HK,Internet\n09988.HK,Internet\n"
    assert from_csv(text) == {"513770.SH": "Internet", "09988.HK": "Internet", "00700.HK": "Internet"}


@pytest.mark.parametrize("text,message", [
    ("symbol,group\n513770.SH,Internet\n", "line 1: sectors CSV needs the columns symbol, sector"),
    ("", "line 1: sectors CSV needs the columns symbol, sector"),
    ("symbol,sector\n513770.SH,Internet\n09988.HK,Internet\n513770.SH,Technology\n",
     "line 4: 513770.SH is in sector 'Internet' already (line 2)"),
    ("symbol,sector\n513770.SH,Internet\nALIBABA,Internet\n", "line 3: symbol 'ALIBABA' is neither an ETF"),
    ("symbol,sector\n9988.HK,Internet\n", "line 2: symbol '9988.HK' is neither"),
    ("symbol,sector\n513770.SH,\n", "line 2: sector is empty for 513770.SH"),
    ("symbol,sector\n513770.SH\n", "line 2: sector is empty for 513770.SH"),
    ("symbol,sector\n,Internet\n", "line 2: symbol is empty"),
])
def test_csv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(SectorsError) as exc:
        from_csv(text)
    assert str(exc.value).startswith(message), str(exc.value)
    assert isinstance(exc.value, ValueError)


def test_config_loads_the_sectors_file_and_names_it_in_errors(tmp_path: Path) -> None:
    cfg = Config()
    assert load_sectors(cfg) == {}
    path = tmp_path / "sectors.csv"
    path.write_text("symbol,sector\n513770.SH,Internet\n", encoding="utf-8")
    cfg.sectors.csv = str(path)
    assert load_sectors(cfg) == {"513770.SH": "Internet"}
    path.write_text("symbol,sector\n513770.SH,Internet\n513770.SH,Tech\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"\[sectors\] csv {path}: line 3: 513770.SH is in sector 'Internet'"):
        load_sectors(cfg)


def test_the_demo_sectors_file_covers_every_simulated_symbol() -> None:
    s = Scenario()
    got = demo_sectors()
    assert set(got) == set(s.etfs) | set(s.southbound)
    assert got["513770.SH"] == got["09988.HK"] == got["00700.HK"] == got["03690.HK"] == "Internet"


def test_the_demo_shows_sector_flows() -> None:
    """Two simulated days through the engine with the demo's sectors: every sector has data and a top symbol."""
    v, eng = Validator(CAL), Engine(CAL)
    for obj in generate(Scenario(days=2, trade_interval_s=120.0, tick_interval_s=1800.0)):
        eng.apply(v.validate(obj))
    eng.sectors = demo_sectors()
    rows = sector_rows(eng, "5d")
    assert {r.sector for r in rows} == set(eng.sectors.values())
    assert all(r.symbols > 0 and r.top_symbol is not None for r in rows)
    assert any(r.etf_net_inflow for r in rows) and any(r.southbound_net_buy for r in rows)


# -- JSON: the API and the report ----------------------------------------------------------------
def test_sectors_document_in_currency_units() -> None:
    doc = documents.sectors_answer(flows_engine(), "5d")
    assert doc["as_of"] == "2025-09-12T10:00:00.000+08:00" and doc["window"] == "5d"
    assert doc["sectors"][:2] == [
        {"sector": "Broad market", "symbols": 2, "etf_net_inflow_cny": 30_000.0, "etf_main_net_inflow_cny": 0.0,
         "southbound_net_buy_hkd": 0.0, "top_symbol": "159920.SZ"},
        {"sector": "Internet", "symbols": 3, "etf_net_inflow_cny": 10_000.0, "etf_main_net_inflow_cny": 0.0,
         "southbound_net_buy_hkd": 5_000_000.0, "top_symbol": "513770.SH"},
    ]
    assert [r["sector"] for r in doc["sectors"]] == ["Broad market", "Internet", "Autos", "Semiconductors",
                                                    "Financials"]


def test_report_has_the_sector_rows_of_every_window() -> None:
    eng = flows_engine()
    rep = documents.report(eng)
    assert list(rep["sectors"]) == ["1d", "5d", "20d"]
    for w in ("1d", "5d", "20d"):
        assert rep["sectors"][w] == documents.sectors_answer(eng, w)["sectors"]
    assert rep["sectors"]["20d"][1]["sector"] == "Financials"
    assert rep["sectors"]["20d"][1]["southbound_net_buy_hkd"] == 5_000_000.0


def _app(eng: Engine, token: str = "") -> Any:
    return make_app(eng, Exposition(eng, PipelineStats()), lambda: True, lambda: {}, token=token)


async def test_api_serves_sectors_per_window_and_refuses_a_bad_window() -> None:
    eng = flows_engine()
    async with TestClient(TestServer(_app(eng))) as client:
        resp = await client.get("/api/v1/sectors")
        body = await resp.json()
        assert resp.status == 200 and body["window"] == "1d"
        assert [(r["sector"], r["etf_net_inflow_cny"]) for r in body["sectors"]][:1] == [("Internet", 20_000.0)]
        resp = await client.get("/api/v1/sectors?window=20d")
        assert (await resp.json())["sectors"][0]["southbound_net_buy_hkd"] == 15_000_000.0
        for bad in ("1h", "7d", ""):
            resp = await client.get(f"/api/v1/sectors?window={bad}")
            assert resp.status == 400, bad
            assert (await resp.json())["error"]["message"] == "window must be one of 1d, 5d, 20d for sector flows"


async def test_api_sectors_needs_the_token() -> None:
    async with TestClient(TestServer(_app(flows_engine(), token="s3cret"))) as client:
        assert (await client.get("/api/v1/sectors")).status == 401
        resp = await client.get("/api/v1/sectors", headers={"Authorization": "Bearer s3cret"})
        assert resp.status == 200


def test_openapi_describes_the_sectors_route() -> None:
    spec = json.loads((Path(__file__).parents[2] / "monitor" / "openapi.json").read_text())
    get = spec["paths"]["/api/v1/sectors"]["get"]
    assert get["parameters"][0]["schema"]["enum"] == ["1d", "5d", "20d"]
    assert set(spec["components"]["schemas"]["SectorRow"]["properties"]) == {
        "sector", "symbols", "etf_net_inflow_cny", "etf_main_net_inflow_cny", "southbound_net_buy_hkd", "top_symbol"}


# -- /metrics -------------------------------------------------------------------------------------
def test_metrics_per_sector_and_window() -> None:
    text = Exposition(flows_engine(), PipelineStats()).render().decode()

    def values(name: str, sector: str) -> list[float | None]:
        return [sample_value(text, f"fundflow_sector_{name}", {"sector": sector, "window": w}) for w in WINDOWS]

    assert values("net_inflow_cny", "Internet") == [20e3, 10e3, 40e3]
    assert values("net_inflow_cny", "Broad market") == [-10e3, 30e3, -15e3]
    assert values("net_inflow_cny", "Financials") == [0, 0, 0]  # no ETFs: the sum over none
    assert values("main_net_inflow_cny", "Internet") == [0, 0, 0]  # small orders only
    assert values("southbound_net_buy_hkd", "Internet") == [2e6, 5e6, 15e6]
    assert values("southbound_net_buy_hkd", "Financials") == [-2e6, -1e6, 5e6]
    assert values("southbound_net_buy_hkd", "Broad market") == [0, 0, 0]
    # a sector none of whose symbols has data exports nothing: 3 sectors x 3 windows x 3 families
    assert values("net_inflow_cny", "Semiconductors") == [None, None, None]
    assert sum(1 for line in text.splitlines() if line.startswith("fundflow_sector_")) == 27


def test_metrics_escape_the_sector_label() -> None:
    v, eng = Validator(CAL), Engine(CAL)
    eng.apply(v.validate(trade("513770.SH", "2025-09-12", "B", 1e6, "e1")))
    eng.sectors = {"513770.SH": 'Internet "HK"\\A'}
    text = Exposition(eng, PipelineStats()).render().decode()
    assert 'fundflow_sector_net_inflow_cny{sector="Internet \\"HK\\"\\\\A",window="1d"} 1e+06' in text
    assert sample_value(text, "fundflow_sector_net_inflow_cny", {"sector": 'Internet "HK"\\A', "window": "1d"}) == 1e6
