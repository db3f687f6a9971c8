"""The public documents do not change by accident: every /api/v1 answer, the replay report and
the business half of /metrics, byte for byte, against goldens captured from a seeded tape.

The tape is the simulator's seed scenario with a year of daily bars, units, southbound dailies and
the demo basket, plus an HK-listed ETF (bars and trades), HK stock bars, a duplicate, a late
trade and a rejected event. It is read twice: cut at 10:30 of the seed day (a session in
progress: intraday windows, same-time turnover, provisional southbound) and whole.

A deliberate change to a document regenerates the goldens::

    FUNDFLOW_WRITE_GOLDEN=1 python -m pytest -q tests/unit/test_documents_golden.py

and the diff of ``tests/unit/golden/documents.json.gz`` (decompressed) is reviewed with the change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import gzip
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumers.basket import from_mapping
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars, to_ms
from monitor.cli import demo_sectors
from monitor.config import Config
from monitor.documents import report as report_document
from monitor.events import Rejected
from monitor.metrics import business_gauges
from monitor.service import Service
from monitor.simulator import DEMO_HISTORY_DAYS, DEMO_HOLDINGS, Scenario, generate

GOLDEN = Path(__file__).parent / "golden" / "documents.json.gz"
UTC8 = dt.timezone(dt.timedelta(hours=8))
SEED = dt.date(2025, 9, 12)
CUT_MS = to_ms(dt.datetime(2025, 9, 12, 10, 30, tzinfo=UTC8))
HK_ETF = "02800.HK"


def _hk_extras() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Bars for an HK stock and an HK ETF (before the tape), and the ETF's trades on the seed day."""
    hk = default_calendars()["HK"]
    bars = []
    for i, d in enumerate(hk.before_n(SEED, 60)):
        for symbol, base in (("09988.HK", 100.0), (HK_ETF, 25.0)):
            close = round(base * (1 + 0.004 * ((i * 7) % 11 - 5)), 3)
            bars.append({"kind": "bar", "symbol": symbol, "date": d.isoformat(), "open": close, "high": round(close * 1.01, 3),
                         "low": round(close * 0.99, 3), "close": close, "volume": 1_000_000 + 10_000 * i,
                         "amount": round(close * (1_000_000 + 10_000 * i), 2)})
    trades = []
    for k in range(40):
        t = dt.datetime(2025, 9, 12, 9, 31, tzinfo=UTC8) + dt.timedelta(minutes=7 * k)
        trades.append({"kind": "trade", "symbol": HK_ETF, "ts": to_ms(t), "price": round(25.2 + 0.01 * (k % 9), 3),
                       "volume": 1000 + 100 * k, "trade_id": f"hk{k}"})
    return bars, trades


def tape() -> list[dict[str, Any]]:
    events = list(generate(Scenario(trade_interval_s=30.0, tick_interval_s=600.0, history_days=DEMO_HISTORY_DAYS)))
    bars, trades = _hk_extras()
    out: list[dict[str, Any]] = list(bars)
    pending = iter(sorted(trades, key=lambda e: e["ts"]))
    nxt = next(pending, None)
    for ev in events:
        while nxt is not None and "ts" in ev and nxt["ts"] <= ev["ts"]:
            out.append(nxt)
            nxt = next(pending, None)
        out.append(ev)
    if nxt is not None:
        out.append(nxt)
        out.extend(pending)
    last = max(e["ts"] for e in out if "ts" in e)
    first_trade = next(e for e in out if e["kind"] == "trade" and e.get("ts", 0) >= CUT_MS - 3_600_000)
    out.append(dict(first_trade))  # a duplicate
    out.append({"kind": "trade", "symbol": "513770.SH", "ts": last - 300_000, "price": 1.07, "volume": 100,
                "trade_id": "late-1"})  # behind the grace
    out.append({"kind": "trade", "symbol": "513770.SH"})  # rejected: missing fields
    return out


def until(events: list[dict[str, Any]], cut_ms: int) -> Iterator[dict[str, Any]]:
    for ev in events:
        if "ts" in ev and ev["ts"] > cut_ms:
            return
        yield ev


def service(events: Iterator[dict[str, Any]]) -> Service:
    svc = Service(Config(), bus=MemoryBus(1), live_clock=False, simulated_market=True)
    svc.engine.holdings = from_mapping(DEMO_HOLDINGS)
    svc.engine.sectors = demo_sectors()
    for obj in events:
        try:
            ev = svc.validator.validate(obj)
        except Rejected as exc:
            svc.stats.rejected[("golden", exc.reason)] += 1
            continue
        svc.stats.ingested[("golden", ev.kind)] += 1
        svc.engine.apply(ev)
    svc.engine.prune()
    return svc


def _paths(svc: Service) -> list[str]:
    engine = svc.engine
    paths = ["/api/v1/symbols", "/api/v1/status", "/api/v1/symbols/NOPE.SH", "/api/v1/symbols/NOPE.SH/history",
             "/api/v1/symbols/09988.HK/intraday", "/api/v1/streaks", "/api/v1/streaks?min_days=3&direction=buy",
             "/api/v1/streaks?min_days=0&direction=sell", "/api/v1/streaks?direction=up", "/api/v1/flows",
             "/api/v1/flows?market=HK&window=5d&top=3", "/api/v1/flows?market=HK&window=1m"]
    paths += [f"/api/v1/flows?market={m}&window={w}" for m in ("SH", "SZ") for w in ("1m", "1h", "1d", "20d")]
    paths += ["/api/v1/sectors", "/api/v1/sectors?window=5d", "/api/v1/sectors?window=20d",
              "/api/v1/sectors?window=1h"]
    for s in engine.symbols():
        paths += [f"/api/v1/symbols/{s}", f"/api/v1/symbols/{s}/history", f"/api/v1/symbols/{s}/history?days=5"]
        if s in engine.etf:
            paths += [f"/api/v1/symbols/{s}/intraday", f"/api/v1/symbols/{s}/intraday?step=900"]
    return paths


async def _api(svc: Service) -> dict[str, str]:
    out: dict[str, str] = {}
    async with TestClient(TestServer(svc.app())) as client:
        for path in _paths(svc):
            resp = await client.get(path)
            out[f"GET {path}"] = f"{resp.status} " + (await resp.read()).decode()
    return out


def documents(name: str, svc: Service) -> dict[str, str]:
    rejected: Counter[str] = Counter()
    for (_, reason), n in svc.stats.rejected.items():
        rejected[reason] += n
    out = {f"{name} report": orjson.dumps(report_document(svc.engine, 10, dict(rejected)),
                                          option=orjson.OPT_INDENT_2).decode()}
    for openmetrics in (False, True):
        out[f"{name} metrics openmetrics={openmetrics}"] = "".join(
            fam.text(openmetrics) for fam in business_gauges(svc.engine))
    out.update({f"{name} {k}": v for k, v in asyncio.run(_api(svc)).items()})
    return out


@pytest.fixture(scope="module")
def current() -> dict[str, str]:
    events = tape()
    out = documents("10:30", service(until(events, CUT_MS)))
    out.update(documents("close", service(iter(events))))
    return out


def test_documents_are_byte_identical_to_the_goldens(current: dict[str, str]) -> None:
    if os.environ.get("FUNDFLOW_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_bytes(gzip.compress(orjson.dumps(current, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
                                         mtime=0))
    golden: dict[str, str] = orjson.loads(gzip.decompress(GOLDEN.read_bytes()))
    assert sorted(current) == sorted(golden)
    changed = [k for k in golden if current[k] != golden[k]]
    diff = "".join(difflib.unified_diff(golden[changed[0]].splitlines(True), current[changed[0]].splitlines(True),
                                        "golden", "now", n=1)) if changed else ""
    assert not changed, f"{len(changed)} documents changed, first {changed[0]!r}:\n{diff[:6000]}"


def test_the_goldens_cover_every_document_kind(current: dict[str, str]) -> None:
    """The tape reaches the interesting states: a basket, HK signals, both curves, a late and a duplicate."""
    close = orjson.loads(current["close report"])
    assert (close["duplicates"], close["late"], close["rejected"]) == (1, 1, {"missing_field": 1})
    assert set(close["symbols"]["513770.SH"]) == {"etf", "signals", "basket"}
    assert set(close["symbols"]["09988.HK"]) == {"southbound", "signals"}
    assert close["symbols"]["09988.HK"]["signals"]["macd"]["closes"] > 35
    assert close["symbols"][HK_ETF]["etf"]["turnover_cny"] > 0
    intraday = orjson.loads(current["10:30 GET /api/v1/symbols/513770.SH/intraday"].split(" ", 1)[1])
    assert intraday["today"]["cumulative_turnover_cny"] and intraday["previous"]["cumulative_turnover_cny"]
    etf = orjson.loads(current["10:30 GET /api/v1/symbols/513770.SH"].split(" ", 1)[1])["etf"]
    assert etf["prev_turnover_same_time_cny"] and etf["net_inflow_cny"]["1h"] is not None
    assert all(r["symbols"] and r["top_symbol"] for r in close["sectors"]["5d"])
