"""Issue-11 market signals against an independent reference written from the issue's rules.

The reference below does not import ``consumers``: it rebuilds each day from the
raw events (trades win, a bar stands in for a day without trades), reads trading
days from exchange_calendars directly, averages with Fractions, and computes
MACD(12,26,9) with exact Fractions (the convention EMA_n(t) = (2 close_t +
(n-1) EMA_n(t-1)) / (n+1) seeded with the first close; DEA seeded with the
first DIF). Production runs Validator + Engine (and ``fundflow replay`` for the
seed day). Money agrees to 0.01, MACD to 1e-9 relative, flags and nulls exactly.

The end-to-end check: a CSV of daily bars (every day before the simulator's
seed day) plus the seed day's events as NDJSON through ``fundflow replay``
reproduce the seed day's signals: 250-day high, AUM record above 10bn CNY,
MACD golden cross for 513770.SH, and equal what the full tick history gives.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.docs import signals_doc

REPO = Path(__file__).resolve().parents[2]
UTC8 = dt.timezone(dt.timedelta(hours=8))
SYMBOL = "513770.SH"


# --------------------------------------------------------------------------- the reference
@lru_cache(maxsize=1)
def xshg_days() -> list[dt.date]:
    import exchange_calendars as xcals

    cal = xcals.get_calendar("XSHG", start="2023-01-03", end="2026-06-30")
    return [d.date() for d in cal.sessions]


def dec(x: Any) -> Decimal:
    return Decimal(str(x))


def ref_macd(closes: list[Fraction]) -> list[tuple[Fraction, Fraction]]:
    """(DIF, DEA) per close, exact."""
    out = []
    e12 = e26 = closes[0]
    dea = Fraction(0)
    out.append((Fraction(0), dea))
    for c in closes[1:]:
        e12 = (2 * c + 11 * e12) / 13
        e26 = (2 * c + 25 * e26) / 27
        dif = e12 - e26
        dea = (2 * dif + 8 * dea) / 10
        out.append((dif, dea))
    return out


def reference(events: Iterable[Mapping[str, Any]], symbol: str = SYMBOL) -> dict[str, Any]:
    days = xshg_days()
    trades: dict[dt.date, list[tuple[tuple[int, int, str], Decimal, Decimal, Decimal]]] = {}
    bars: dict[dt.date, Mapping[str, Any]] = {}
    units: dict[dt.date, tuple[Decimal, Decimal]] = {}
    clock_day = None
    seen = set()
    for e in events:
        if e["kind"] == "trade":
            if e["trade_id"] in seen:
                continue
            seen.add(e["trade_id"])
            d = dt.datetime.fromtimestamp(e["ts"] / 1000, UTC8).date()
            tid = str(e["trade_id"])
            trades.setdefault(d, []).append(((e["ts"], len(tid), tid), dec(e["price"]), dec(e["volume"]), dec(e["amount"])))
        else:
            d = dt.date.fromisoformat(e["date"])
            if e["kind"] == "bar":
                bars[d] = e
            else:
                units[d] = (dec(e["shares_outstanding"]), dec(e["nav"]))
        clock_day = d if clock_day is None or d > clock_day else clock_day
    cur = [d for d in days if d <= clock_day][-1]

    view: dict[dt.date, dict[str, Decimal]] = {}
    for d in set(trades) | set(bars):
        if d in trades:
            ts = trades[d]
            view[d] = {"high": max(p for _, p, _, _ in ts), "close": max(ts)[1],
                       "turnover": sum((a for *_, a in ts), Decimal(0)), "volume": sum((v for _, _, v, _ in ts), Decimal(0))}
        else:
            b = bars[d]
            view[d] = {"high": dec(b["high"]), "close": dec(b["close"]), "turnover": dec(b["amount"]),
                       "volume": dec(b["volume"])}
    first = min(view) if view else None
    before = [d for d in days if d < cur]
    today = view.get(cur)
    th = today["high"] if today else None
    new_high: dict[str, int | None] = {}
    for name, n in (("20d", 20), ("60d", 60), ("250d", 250)):
        window = before[-n:]
        hs = [view[d]["high"] for d in window if d in view]
        if th is None or len(window) < n or first is None or window[0] < first or not hs:
            new_high[name] = None
        else:
            new_high[name] = int(th >= max(hs))
    earlier = [view[d]["high"] for d in view if d < cur]
    new_high["all"] = None if th is None else int(not earlier or th >= max(earlier))

    def avg(ds: list[dt.date]) -> float | None:
        vals = [view[d]["turnover"] for d in ds if d in view]
        return float(Fraction(sum(vals, Decimal(0))) / len(vals)) if vals else None

    aums = {d: Decimal(b["shares"]) * dec(b["nav"]) for d, b in bars.items() if b.get("shares") is not None}
    aums.update({d: s * n for d, (s, n) in units.items()})
    aum = aums[max(aums)] if aums else None
    record = max(aums.values()) if aums else None

    closes = [Fraction(view[d]["close"]) for d in sorted(view) if d <= cur]
    macd: dict[str, Any] = {"dif": None, "dea": None, "histogram": None, "cross": None, "closes": len(closes)}
    if len(closes) >= 35:
        series = ref_macd(closes)
        dif, dea = series[-1]
        macd.update(dif=float(dif), dea=float(dea), histogram=float(2 * (dif - dea)))
        if today is None:
            macd["cross"] = 0
        else:
            pdif, pdea = series[-2]
            macd["cross"] = 1 if pdif <= pdea and dif > dea else -1 if pdif >= pdea and dif < dea else 0
    return {
        "high_cny": float(th) if th is not None else None,
        "new_high": new_high,
        "turnover_avg_cny": {"20d": avg(before[-20:]), "ytd": avg([d for d in before if d.year == cur.year])},
        "aum_cny": float(aum) if aum is not None else None,
        "aum_record_cny": float(record) if record is not None else None,
        "aum_at_record": None if aum is None else int(aum >= record),
        "macd": macd,
    }


def compare(got: Any, want: Any, path: str = "") -> list[str]:
    if isinstance(want, dict):
        if set(got) != set(want):
            return [f"{path}: keys {sorted(got)} != {sorted(want)}"]
        return [x for k in want for x in compare(got[k], want[k], f"{path}/{k}")]
    if want is None or got is None:
        return [] if got == want else [f"{path}: {got!r} != {want!r}"]
    if isinstance(want, int):
        return [] if got == want and type(got) is int else [f"{path}: {got!r} != {want!r}"]
    if "/macd/" in path:
        ok = math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-15)
    else:
        ok = abs(got - want) <= 0.01 + 1e-15 * abs(want)
    return [] if ok else [f"{path}: {got!r} != {want!r}"]


# --------------------------------------------------------------------------- production
def run_engine(events: list[dict[str, Any]]) -> dict[str, Any]:
    from consumers.engine import Engine
    from monitor.calendars import default_calendars
    from monitor.events import Validator

    cal = default_calendars()
    v, eng = Validator(cal), Engine(cal)
    for e in events:
        eng.apply(v.validate(e))
    doc = signals_doc(eng, SYMBOL)
    assert doc is not None
    return doc


def _ms(day: dt.date, hh: int, mm: int, ss: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC8).timestamp() * 1000)


PRICES = ("1.000", "1.001", "1.002", "1.003", "0.999", "1.010", "0.990")


@st.composite
def tapes(draw: st.DrawFn) -> list[dict[str, Any]]:
    days = xshg_days()
    start = draw(st.integers(days.index(dt.date(2024, 10, 8)), days.index(dt.date(2025, 11, 3))))
    n = draw(st.integers(1, 90))
    span = days[start:start + n]
    events: list[dict[str, Any]] = []
    trade_days = set(draw(st.lists(st.sampled_from(span), max_size=6)))
    tid = 0
    for d in span:
        have = draw(st.sampled_from(("bar", "bar", "bar", "none", "both", "trades")))
        if have in ("bar", "both") or (have == "trades" and d not in trade_days):
            close = draw(st.sampled_from(PRICES))
            hi = max(close, draw(st.sampled_from(PRICES)))
            lo = min(close, draw(st.sampled_from(PRICES)))
            bar: dict[str, Any] = {"kind": "bar", "symbol": SYMBOL, "date": d.isoformat(), "open": close, "high": hi,
                                   "low": lo, "close": close, "volume": draw(st.integers(100, 10_000)) * 100,
                                   "amount": str(draw(st.integers(1, 10_000_000)) / 100)}
            if draw(st.booleans()):
                bar.update(shares=draw(st.integers(1, 100)) * 1_000_000, nav=draw(st.sampled_from(PRICES)))
            events.append(bar)
        if have in ("both", "trades") or d in trade_days:
            for _ in range(draw(st.integers(1, 4))):
                tid += 1
                price = draw(st.sampled_from(PRICES))
                vol = draw(st.integers(1, 50)) * 100
                events.append({"kind": "trade", "symbol": SYMBOL, "ts": _ms(d, draw(st.sampled_from((9, 10, 13, 14))),
                               draw(st.integers(31, 59))), "price": float(price), "volume": vol,
                               "amount": float(Decimal(price) * vol), "trade_id": tid, "side": "B"})
        if draw(st.integers(0, 5)) == 0:
            events.append({"kind": "units", "symbol": SYMBOL, "date": d.isoformat(),
                           "shares_outstanding": draw(st.integers(1, 100)) * 1_000_000,
                           "nav": float(draw(st.sampled_from(PRICES)))})
    if not events:
        events.append({"kind": "bar", "symbol": SYMBOL, "date": span[0].isoformat(), "open": 1, "high": 1, "low": 1,
                       "close": 1, "volume": 100, "amount": 100})
    # bar CSV columns arrive as text: the bar's prices are decimal strings here
    for e in events:
        if e["kind"] == "bar":
            for k in ("open", "high", "low", "close"):
                e[k] = str(e[k])
    return events


def _sorted_for_stream(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Day by day as a feed sends them: the bar of a day, its trades, then its units record."""
    def key(e: dict[str, Any]) -> tuple[Any, ...]:
        if "ts" in e:
            return (dt.datetime.fromtimestamp(e["ts"] / 1000, UTC8).date(), 1, e["ts"])
        return (dt.date.fromisoformat(e["date"]), 0 if e["kind"] == "bar" else 2, 0)
    return sorted(events, key=key)


@settings(max_examples=int(os.environ.get("FUNDFLOW_REF_EXAMPLES", "120")) // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes())
def test_signals_match_reference(events: list[dict[str, Any]]) -> None:
    events = _sorted_for_stream(events)
    got = run_engine(events)
    want = reference(events)
    diffs = compare(got, want)
    assert not diffs, "\n".join(diffs)


def test_macd_reference_agrees_with_pandas() -> None:
    """The Fraction MACD above is the pandas ewm(span, adjust=False) recursion (a third opinion)."""
    import pandas as pd  # the test extra has it
    closes = [Fraction(1000 + (i * 37) % 23 - 11, 1000) for i in range(80)]
    s = pd.Series([float(c) for c in closes])
    dif = s.ewm(span=12, adjust=False).mean() - s.ewm(span=26, adjust=False).mean()
    dea = dif.ewm(span=9, adjust=False).mean()
    for (d, e), pd_d, pd_e in zip(ref_macd(closes), dif, dea, strict=True):
        assert math.isclose(float(d), pd_d, rel_tol=1e-9, abs_tol=1e-13)
        assert math.isclose(float(e), pd_e, rel_tol=1e-9, abs_tol=1e-13)


# --------------------------------------------------------------------------- end to end: bar CSV + one day
SEED = dt.date(2025, 9, 12)
BAR_COLUMNS = ("symbol", "date", "open", "high", "low", "close", "volume", "amount", "shares", "nav")


@pytest.fixture(scope="module")
def seed_tapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """bars.csv: every ETF's bars for all days before the seed day (history + the simulated days, from the
    simulator's truth); seed.ndjson: the seed day's events. Also returns all events (full ticks)."""
    from monitor.simulator import DEMO_HISTORY_DAYS, Scenario, Simulation

    sim = Simulation(Scenario(history_days=DEMO_HISTORY_DAYS))
    events = list(sim.events())
    t = sim.truth
    out = tmp_path_factory.mktemp("backfill")
    bars_csv, seed_nd = out / "bars.csv", out / "seed.ndjson"
    with open(bars_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(BAR_COLUMNS)
        for sym in Scenario().etfs:
            for date, b in sorted(t["bars"][sym].items()):
                w.writerow([sym, date, b["open"], b["high"], b["low"], b["close"], b["volume"], b["amount"],
                            b["shares"], b["nav"]])
            for date, d in sorted(t["etf"][sym].items()):
                if date == SEED.isoformat():
                    continue
                u = t["units"][sym][date]
                w.writerow([sym, date, d["open"], d["high"], d["low"], d["last_price"], d["volume"], d["turnover"],
                            u["shares_outstanding"], u["nav"]])
    seed_ms = _ms(SEED, 0, 0)
    with open(seed_nd, "wb") as fh:
        for e in events:
            if ("ts" in e and e["ts"] >= seed_ms) or e.get("date") == SEED.isoformat():
                fh.write(orjson.dumps(e) + b"\n")
    return bars_csv, seed_nd, events


def _replay(*paths: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", *map(str, paths), "--report", "json", "-q"],
                         cwd=REPO, env=env, capture_output=True, timeout=600)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return orjson.loads(out.stdout)


def test_bar_csv_plus_one_day_reproduces_the_seed_day(seed_tapes: tuple[Path, Path, list[dict[str, Any]]]) -> None:
    bars_csv, seed_nd, events = seed_tapes
    report = _replay(bars_csv, seed_nd)
    assert report["rejected"] == {}
    sig = report["symbols"][SYMBOL]["signals"]
    assert sig["new_high"]["250d"] == 1 and sig["new_high"]["all"] == 1
    assert sig["aum_cny"] > 10e9 and sig["aum_at_record"] == 1 and sig["aum_record_cny"] == sig["aum_cny"]
    assert sig["macd"]["cross"] == 1 and sig["macd"]["closes"] >= 285
    assert 550e6 < sig["turnover_avg_cny"]["ytd"] < 600e6  # "average daily turnover this year is nearly 600M"
    etf = report["symbols"][SYMBOL]["etf"]
    assert round(etf["turnover_cny"] / 1e6) == 606 and etf["turnover_cny"] > etf["prev_turnover_cny"]
    assert round(etf["price_change_ratio"] * 100, 2) == 1.13
    # the same signals as the full tick history (trades for the 25 days) through the engine, and the reference
    from consumers.engine import Engine
    from monitor.calendars import default_calendars
    from monitor.events import Validator

    cal = default_calendars()
    v, eng = Validator(cal), Engine(cal)
    for e in events:
        eng.apply(v.validate(e))
    for sym in ("513770.SH", "159920.SZ", "513180.SH", "510300.SH"):
        full = signals_doc(eng, sym)
        assert not compare(report["symbols"][sym]["signals"], full), sym
    with open(bars_csv) as fh:
        rows = [dict(r, kind="bar") for r in csv.DictReader(fh) if r["symbol"] == SYMBOL]
    seed_events = [orjson.loads(line) for line in seed_nd.read_bytes().splitlines()]
    want = reference(rows + [e for e in seed_events if e.get("symbol") == SYMBOL and e["kind"] in ("trade", "units")])
    diffs = compare(sig, want)
    assert not diffs, "\n".join(diffs)
