"""The simulator's seed day (2025-09-12) through `fundflow replay` equals Scenario.truth() exactly.

The tape is the default Scenario written as NDJSON; the replay runs in a
subprocess (embedded bus, consumer runner, the same code a deployment runs).
Money is compared exactly (the float of the exact decimal), ratios to 1e-12.
The quotes of the design document are checked in their own words at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.metrics import sample_value
from monitor.simulator import Scenario, generate, trading_days, truth
from tests.reference.model import Model

REPO = Path(__file__).resolve().parents[2]
SEED = "2025-09-12"


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(generate(Scenario()))


@pytest.fixture(scope="module")
def facts() -> dict[str, Any]:
    return truth(Scenario())


@pytest.fixture(scope="module")
def days() -> tuple[list[str], list[str]]:
    mainland, sb = trading_days(Scenario())
    return [s.date.isoformat() for s in mainland], [s.date.isoformat() for s in sb]


@pytest.fixture(scope="module")
def report(events: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("seed") / "seed.ndjson"
    with open(path, "wb") as fh:
        for ev in events:
            fh.write(orjson.dumps(ev) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", str(path), "--report", "json", "-q"],
                         cwd=REPO, env=env, capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return orjson.loads(out.stdout)


def money(x: Decimal | int) -> float:
    return float(Decimal(x))


def test_clock_and_counters(report: dict[str, Any], events: list[dict[str, Any]]) -> None:
    last = max(e["ts"] for e in events if "ts" in e)
    assert dt.datetime.fromisoformat(report["as_of"]).timestamp() * 1000 == last
    assert report["as_of"].startswith(SEED) and report["as_of"].endswith("+08:00")
    assert (report["rejected"], report["duplicates"], report["late"]) == ({}, 0, 0)


@pytest.mark.parametrize("symbol", Scenario().etfs)
def test_etf_equals_truth(report: dict[str, Any], facts: dict[str, Any], days: tuple[list[str], list[str]],
                          symbol: str) -> None:
    mainland, _ = days
    t, u = facts["etf"][symbol], facts["units"][symbol]
    doc = report["symbols"][symbol]["etf"]
    seed, prev = t[mainland[-1]], t[mainland[-2]]
    assert mainland[-1] == SEED
    assert doc["turnover_cny"] == money(seed["turnover"])
    assert doc["prev_turnover_cny"] == money(prev["turnover"])
    # the clock (15:59:55, southbound ticks) is past the Shanghai close: same time = the whole previous day
    assert doc["turnover_vs_prev_session_ratio"]["full_day"] == pytest.approx(float(seed["turnover"] / prev["turnover"]), rel=1e-12)
    assert doc["turnover_vs_prev_session_ratio"]["same_time"] == doc["turnover_vs_prev_session_ratio"]["full_day"]
    net = {d: t[d]["buy"] - t[d]["sell"] for d in mainland}
    assert doc["net_inflow_cny"]["1d"] == money(net[mainland[-1]])
    assert doc["net_inflow_cny"]["5d"] == money(sum(net[d] for d in mainland[-5:]))
    assert doc["net_inflow_cny"]["20d"] == money(sum(net[d] for d in mainland[-20:]))
    assert all(doc["net_inflow_cny"][w] == 0.0 for w in ("1m", "5m", "15m"))  # no trade after 15:00
    assert doc["price_change_ratio"] == pytest.approx(float(seed["last_price"] / prev["last_price"] - 1), rel=1e-12)
    # whole session (240 min) today vs 5 x 240 min before: volume / (mean of the previous five)
    vol5 = sum(t[d]["volume"] for d in mainland[-6:-1])
    assert doc["volume_ratio"] == pytest.approx(float(Fraction(seed["volume"] * 5, vol5)), rel=1e-12)
    inflow = {d: u[d]["inflow"] or Decimal(0) for d in mainland}
    assert doc["creation_net_inflow_cny"] == {"1d": money(inflow[mainland[-1]]),
                                              "5d": money(sum(inflow[d] for d in mainland[-5:])),
                                              "20d": money(sum(inflow[d] for d in mainland[-20:]))}
    assert doc["aum_cny"] == money(u[SEED]["shares_outstanding"] * u[SEED]["nav"])


def _streak(nets_newest_first: list[Decimal]) -> tuple[int, Decimal]:
    n, sign = 0, 0
    for v in nets_newest_first:
        s = (v > 0) - (v < 0)
        if not s or (sign and s != sign):
            break
        sign, n = s, n + 1
    return sign * n, sum(nets_newest_first[:n], Decimal(0))


@pytest.mark.parametrize("symbol", Scenario().southbound)
def test_southbound_equals_truth(report: dict[str, Any], facts: dict[str, Any], days: tuple[list[str], list[str]],
                                 symbol: str) -> None:
    _, sb = days
    net = facts["southbound"][symbol]
    doc = report["symbols"][symbol]["southbound"]
    assert sb[-1] == SEED
    assert doc["net_buy_hkd"] == {"1d": money(net[SEED]), "5d": money(sum(net[d] for d in sb[-5:])),
                                  "20d": money(sum(net[d] for d in sb[-20:]))}
    # 15:59:55 is before the HKEX close and the seed day has no daily record: it is provisional
    assert doc["provisional_net_buy_hkd"] == money(net[SEED])
    n, total = _streak([net[d] for d in reversed(sb[:-1])])
    assert (doc["streak_days"], doc["streak_net_buy_hkd"]) == (n, money(total))


def test_top_southbound_equals_truth(report: dict[str, Any], facts: dict[str, Any], days: tuple[list[str], list[str]]) -> None:
    _, sb = days
    totals = {s: sum(v[d] for d in sb[-20:]) for s, v in facts["southbound"].items()}
    want = sorted(totals, key=lambda s: (-totals[s], s))
    assert report["top_southbound_20d"] == [[s, money(totals[s])] for s in want]


def test_the_design_documents_quotes(report: dict[str, Any]) -> None:
    etf = report["symbols"]["513770.SH"]["etf"]
    assert round(etf["turnover_cny"] / 1e6) == 606 and etf["turnover_cny"] > etf["prev_turnover_cny"]
    assert round(etf["price_change_ratio"] * 100, 2) == 1.13
    assert round(etf["creation_net_inflow_cny"]["20d"] / 1e9, 3) == 2.792
    ali = report["symbols"]["09988.HK"]["southbound"]
    assert ali["streak_days"] == 15 and ali["streak_net_buy_hkd"] > 37.1e9
    assert [s for s, _ in report["top_southbound_20d"][:3]] == ["09988.HK", "00700.HK", "03690.HK"]


def test_replay_equals_the_reference_model(report: dict[str, Any], events: list[dict[str, Any]]) -> None:
    from tests.reference.test_against_reference import compare

    diffs = compare(report, Model().run(events))
    assert not diffs, "\n".join(diffs[:20])


def test_prometheus_report_carries_the_same_state(report: dict[str, Any], events: list[dict[str, Any]],
                                                  tmp_path: Path) -> None:
    """`--report prometheus`: valid exposition text whose business series equal the JSON report's values."""
    path = tmp_path / "seed.ndjson"
    path.write_bytes(b"".join(orjson.dumps(ev) + b"\n" for ev in events))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", str(path), "--report", "prometheus", "-q"],
                         cwd=REPO, env=env, capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    text = out.stdout.decode()
    etf = report["symbols"]["513770.SH"]["etf"]
    sb = report["symbols"]["09988.HK"]["southbound"]
    etf_sym, sb_sym = {"symbol": "513770.SH"}, {"symbol": "09988.HK"}
    assert sample_value(text, "fundflow_etf_turnover_cny", etf_sym) == etf["turnover_cny"]
    for window in ("1d", "5d", "20d"):
        assert sample_value(text, "fundflow_etf_net_inflow_cny", {**etf_sym, "window": window}) == \
            etf["net_inflow_cny"][window]
        assert sample_value(text, "fundflow_southbound_net_buy_hkd", {**sb_sym, "window": window}) == \
            sb["net_buy_hkd"][window]
    assert sample_value(text, "fundflow_southbound_net_buy_streak_sessions", sb_sym) == sb["streak_days"] == 15
