"""Production (Validator + Engine, and `fundflow replay`) against the independent reference model.

Hypothesis builds tapes around holidays and half days (National Day, Christmas
and New Year, Easter and May Day), with configured closures (typhoon whole
days, black rainstorm from a time of day), zero-net days, trades without a
side (tick rule, incl. the first trade of a day against the previous
session's last price, and zero ticks), late and out-of-order arrivals,
duplicates by trade_id and by channel+seq, units records and southbound daily
records overriding the ticks. Money must agree to 0.01, ratios to 1e-9
relative, and null exactly where the reference says the value is undefined.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
import tempfile
from collections import Counter
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.engine import Engine
from monitor import documents
from monitor.calendars import Calendars, parse_closures
from monitor.config import Closure
from monitor.events import Rejected, Validator, encode
from tests.reference.model import UTC8, Model
from tests.reference.model import Calendars as RefCalendars

REPO = Path(__file__).resolve().parents[2]
RATIO_KEYS = {"full_day", "same_time", "volume_ratio", "price_change_ratio", "main_ratio_1d", "premium_ratio"}
ISSUE11_KEYS = {"signals", "basket"}  # market signals of a symbol: not part of this model
ETFS = ("513770.SH", "159920.SZ", "02800.HK")
STOCKS = ("09988.HK", "00700.HK", "03690.HK")
PERIODS = (  # (first, last) calendar dates a tape may span
    (dt.date(2025, 8, 11), dt.date(2025, 9, 12)),  # plain weeks (the seed day)
    (dt.date(2025, 9, 15), dt.date(2025, 10, 16)),  # National Day: mainland shut 1-8 Oct, HKEX 1 and 7 Oct
    (dt.date(2025, 12, 1), dt.date(2026, 1, 9)),  # HK half days 24/31 Dec, HK shut 25-26 Dec, mainland 1-2 Jan
    (dt.date(2025, 4, 1), dt.date(2025, 5, 9)),  # Qingming, Easter (HK), May Day (mainland)
)
CUT_TIMES = ("09:00", "10:00", "11:00", "11:45", "12:00", "13:30", "14:30", "15:30")
PRICES = (1.0, 1.001, 1.002, 1.003, 0.999)
EDGE_OFFSETS_MS = (0, 1, 999, 1000, 59_000, 59_999, 60_000, 60_001, 61_000, 299_999, 300_000, 301_000,
                   899_000, 900_000, 3_599_000, 3_599_999, 3_600_000, 3_601_000)


def _ms(day: dt.date, seconds: int, ms: int = 0) -> int:
    base = dt.datetime(day.year, day.month, day.day, tzinfo=UTC8)
    return int(base.timestamp() * 1000) + seconds * 1000 + ms


@st.composite
def tapes(draw: st.DrawFn, max_timed: int = 60) -> dict[str, Any]:
    first, last = draw(st.sampled_from(PERIODS))
    span_days = (last - first).days
    start = first + dt.timedelta(days=draw(st.integers(0, span_days - 7)))
    end = start + dt.timedelta(days=draw(st.integers(6, min(30, (last - start).days))))
    dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    closures = draw(st.lists(st.builds(
        lambda m, d, f: {"market": m, "date": d.isoformat(), "from_time": f},
        st.sampled_from(("SH", "SZ", "HK")), st.sampled_from(dates), st.sampled_from((None,) + CUT_TIMES)),
        max_size=2, unique_by=lambda c: (c["market"], c["date"])))
    base = RefCalendars()  # without the closures: the tape is written as if the closure were unknown
    grace = draw(st.sampled_from((0, 30, 60, 600)))

    def day_for(market: str) -> dt.date:
        trading = [d for d in dates if base.is_day(market, d)]
        if trading and draw(st.integers(0, 9)) < 9:
            return draw(st.sampled_from(trading))
        return draw(st.sampled_from(dates))  # maybe a weekend or holiday: rejected

    def time_in(market: str, day: dt.date) -> int:
        if base.is_day(market, day):
            iv = base.days[market][day]
            lo, hi = iv[0][0] - 20 * 60_000, iv[-1][1] + 20 * 60_000
        else:
            lo, hi = _ms(day, 9 * 3600), _ms(day, 16 * 3600)
        return draw(st.integers(lo, hi))

    # the final instant, on a late trading day, with a burst of events at the window edges before it
    last_days = [d for d in dates if base.is_day("SB", d) or base.is_day("SH", d)]
    end_day = draw(st.sampled_from(last_days[-3:] or dates[-1:]))
    t_end = _ms(end_day, draw(st.integers(10 * 3600 + 1800, 15 * 3600 + 1800)), draw(st.integers(0, 999)))

    timed: list[dict[str, Any]] = []
    n = draw(st.integers(5, max_timed))
    tid = Counter()
    seqs = Counter()
    for _ in range(n):
        what = draw(st.sampled_from(("trade", "trade", "trade", "tick", "tick")))
        burst = draw(st.integers(0, 3)) == 0
        if what == "trade":
            sym = draw(st.sampled_from(ETFS))
            market = sym[-2:]
            ts = t_end - draw(st.sampled_from(EDGE_OFFSETS_MS)) if burst else time_in(market, day_for(market))
            price = draw(st.sampled_from(PRICES))
            volume = 100 * draw(st.integers(1, 50))
            ev: dict[str, Any] = {"kind": "trade", "symbol": sym, "ts": ts, "price": price, "volume": volume}
            amount_kind = draw(st.integers(0, 3))
            if amount_kind:
                amt = (Decimal(repr(price)) * volume).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
                ev["amount"] = float(amt + (Decimal("0.01") if amount_kind == 3 else 0))
            side = draw(st.sampled_from((None, None, "B", "S")))
            if side:
                ev["side"] = side
            tid[sym] += 1
            ev["trade_id"] = str(tid[sym]) if draw(st.booleans()) else f"T{tid[sym]}"
        else:
            sym = draw(st.sampled_from(STOCKS))
            channel = draw(st.sampled_from(("SH", "SZ")))
            ts = t_end - draw(st.sampled_from(EDGE_OFFSETS_MS)) if burst else time_in("SB", day_for("SB"))
            buy = draw(st.integers(0, 10**9))
            sell = buy if draw(st.integers(0, 9)) == 0 else draw(st.integers(0, 10**9))
            seqs[(sym, channel)] += 1
            ev = {"kind": "southbound", "symbol": sym, "ts": ts, "channel": channel,
                  "buy_hkd": buy / 100, "sell_hkd": sell / 100, "seq": seqs[(sym, channel)]}
        timed.append(ev)
    # one trade per symbol per millisecond: the day's last price is then the trade with the latest time
    used: set[tuple[str, int]] = set()
    for ev in timed:
        while (ev["symbol"], ev["ts"]) in used:
            ev["ts"] += 1
        used.add((ev["symbol"], ev["ts"]))

    dated: list[tuple[int, dict[str, Any]]] = []
    for sym in ETFS:
        shares = 100_000_000
        for d in sorted(set(draw(st.lists(st.sampled_from(dates), max_size=8)))):
            shares = max(0, shares + 100 * draw(st.integers(-50_000, 50_000)))
            nav = draw(st.integers(9000, 12000)) / 10_000
            dated.append((_ms(d, 15 * 3600), {"kind": "units", "symbol": sym, "date": d.isoformat(),
                                                "shares_outstanding": shares, "nav": nav}))
    for sym in STOCKS:
        for d in sorted(set(draw(st.lists(st.sampled_from(dates), max_size=8)))):
            buy = draw(st.integers(0, 10**11))
            sell = buy if draw(st.integers(0, 4)) == 0 else draw(st.integers(0, 10**11))
            dated.append((_ms(d, 16 * 3600), {"kind": "southbound_daily", "symbol": sym, "date": d.isoformat(),
                                                "buy_hkd": buy / 100, "sell_hkd": sell / 100}))
    tape = sorted([(ev["ts"], i, ev) for i, ev in enumerate(timed)] + [(t, n + i, ev) for i, (t, ev) in enumerate(dated)],
                  key=lambda x: (x[0], x[1]))
    events = [ev for _, _, ev in tape]
    # out of order: move some events later (late when moved past the grace), and re-send some (duplicates)
    for _ in range(draw(st.integers(0, 6))):
        if len(events) > 1:
            i = draw(st.integers(0, len(events) - 2))
            j = draw(st.integers(i + 1, len(events) - 1))
            events.insert(j, events.pop(i))
    for _ in range(draw(st.integers(0, 5))):
        if events:
            i = draw(st.integers(0, len(events) - 1))
            j = draw(st.integers(i + 1, len(events)))
            events.insert(j, dict(events[i]))
    return {"events": events, "closures": closures, "grace": grace}


# --------------------------------------------------------------------------- the production paths
def run_engine(tape: dict[str, Any], prune_at: frozenset[int] = frozenset()) -> dict[str, Any]:
    """Validator at the edge, the wire codec, the Validator again and the Engine: what the consumer runner does."""
    cals = Calendars(parse_closures([Closure(**c) for c in tape["closures"]])) if tape["closures"] else Calendars()
    validator = Validator(cals, session_margin_minutes=60)
    engine = Engine(cals, grace_seconds=tape["grace"])
    rejected: Counter[str] = Counter()
    for i, obj in enumerate(tape["events"]):
        try:
            ev = validator.decode(encode(validator.validate(obj)))
            engine.apply(ev)
        except Rejected as exc:
            rejected[exc.reason] += 1
            continue
        if i in prune_at:
            engine.prune()
    engine.prune()
    return orjson.loads(orjson.dumps(documents.report(engine, 10, dict(rejected))))


def run_replay(tape: dict[str, Any], tmp: Path, csv: bool = False) -> dict[str, Any]:
    if csv:
        files = write_csv(tape, tmp)
    else:
        files = [tmp / "tape.ndjson"]
        files[0].write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in tape["events"]))
    cfg = tmp / "fundflow.toml"
    lines = ["[compute]", f"grace_seconds = {tape['grace']}"]
    if tape["closures"]:
        items = []
        for c in tape["closures"]:
            extra = f', from_time = "{c["from_time"]}"' if c["from_time"] else ""
            items.append(f'{{market = "{c["market"]}", date = "{c["date"]}"{extra}}}')
        lines.append(f"closures = [{', '.join(items)}]")
    cfg.write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", *map(str, files), "--report", "json", "-q",
                          "--config", str(cfg)], cwd=REPO, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    return orjson.loads(out.stdout)


# --------------------------------------------------------------------------- comparison
def compare(got: Any, want: Any, path: str = "", skip: frozenset[str] = frozenset()) -> list[str]:
    """Differences between production and reference: money to 0.01, ratios to 1e-9 relative, nulls exact."""
    key = path.rsplit("/", 1)[-1]
    if key in skip:
        return []
    if isinstance(want, dict):
        if isinstance(got, dict) and path.startswith("/symbols/") and path.count("/") == 2:
            got = {k: v for k, v in got.items() if k not in ISSUE11_KEYS}  # checked by test_signals_reference.py
        if not isinstance(got, dict) or set(got) != set(want):
            return [f"{path}: keys {sorted(got) if isinstance(got, dict) else got!r} != {sorted(want)}"]
        return [d for k in want for d in compare(got[k], want[k], f"{path}/{k}", skip)]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: {got!r} != {want!r}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in compare(g, w, f"{path}[{i}]", skip)]
    if want is None or got is None or isinstance(want, (str, bool)):
        return [] if got == want else [f"{path}: {got!r} != {want!r}"]
    if isinstance(want, int) or isinstance(got, int):  # counts: streak days, duplicates, late, rejections
        return [] if got == want and type(got) is type(want) else [f"{path}: {got!r} != {want!r}"]
    if key in RATIO_KEYS:
        ok = math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
    else:
        ok = abs(got - want) <= 0.01 + 1e-15 * abs(want)  # 0.01 of a currency unit (and the float's own ulp)
    return [] if ok else [f"{path}: {got!r} != {want!r}"]


def check(got: dict[str, Any], tape: dict[str, Any], skip: frozenset[str] = frozenset()) -> None:
    want = Model(tape["closures"], tape["grace"]).run(tape["events"])
    diffs = compare(got, want, skip=skip)
    assert not diffs, "\n".join(diffs[:20])


# --------------------------------------------------------------------------- the tests
@settings(max_examples=int(os.environ.get("FUNDFLOW_REF_EXAMPLES", "120")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes())
def test_engine_matches_reference(tape: dict[str, Any]) -> None:
    check(run_engine(tape), tape)


@settings(max_examples=int(os.environ.get("FUNDFLOW_REF_EXAMPLES", "120")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes(), st.data())
def test_engine_with_pruning_mid_stream_matches_reference(tape: dict[str, Any], data: st.DataObject) -> None:
    """The consumer runner prunes state at every checkpoint; the final state must not depend on when."""
    n = len(tape["events"])
    at = frozenset(data.draw(st.lists(st.integers(0, max(0, n - 1)), max_size=4))) if n else frozenset()
    check(run_engine(tape, at), tape)


@settings(max_examples=int(os.environ.get("FUNDFLOW_REF_REPLAY_EXAMPLES", "3")), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes(max_timed=120))
def test_fundflow_replay_matches_reference(tape: dict[str, Any]) -> None:
    """The same through the command line (embedded bus, consumer runner). The bus merges partitions by
    event time, so arrival order across symbols (and with it the late count) is the bus's: not compared."""
    tape = without_too_late(tape)
    with tempfile.TemporaryDirectory() as tmp:
        check(run_replay(tape, Path(tmp)), tape, skip=frozenset({"late"}))


def without_too_late(tape: dict[str, Any]) -> dict[str, Any]:
    """The tape less the events the one-stream reference refuses as too_late.

    Through the bus each partition has its own clock, never ahead of the one-stream clock at the same
    event (a partition holds a subset of what came before), so an event the reference takes is taken
    there too; the refused ones would be judged by a different clock, so they are left out here and
    covered by the engine-level test and tests/faults."""
    model = Model(tape["closures"], tape["grace"])
    model.run(tape["events"])
    drop = set(model.too_late_at)
    return {**tape, "events": [e for i, e in enumerate(tape["events"]) if i not in drop]}


def test_replay_of_a_time_ordered_tape_counts_late_like_the_reference(tmp_path: Path) -> None:
    """One symbol in one partition: the bus keeps its order, so late is the reference's too."""
    t0 = _ms(dt.date(2025, 9, 12), 10 * 3600)
    ev = [{"kind": "trade", "symbol": "513770.SH", "ts": t0 + s * 1000, "price": 1.0 + (s % 3) / 1000, "volume": 100,
           "trade_id": str(i)} for i, s in enumerate((0, 30, 100, 39, 40, 41, 99, 5))]
    tape = {"events": ev, "closures": [], "grace": 60}
    got = run_replay(tape, tmp_path)
    assert got["late"] == 2  # 39 s and 5 s arrive more than 60 s behind 100 s; 40 s is exactly 60 s behind
    assert got["duplicates"] == 0
    check(got, tape)


CSV_COLUMNS = {"trade": ["symbol", "ts", "price", "volume", "amount", "side", "trade_id"],
               "units": ["symbol", "date", "shares_outstanding", "nav"],
               "southbound": ["symbol", "ts", "channel", "buy_hkd", "sell_hkd", "seq"],
               "southbound_daily": ["symbol", "date", "buy_hkd", "sell_hkd"]}


def write_csv(tape: dict[str, Any], tmp: Path) -> list[Path]:
    """One CSV per kind, header row, an empty cell for an absent field."""
    files = []
    for kind, cols in CSV_COLUMNS.items():
        path = tmp / f"{kind}.csv"
        rows = [",".join(cols)]
        rows += [",".join("" if e.get(c) is None else repr(e[c]) if isinstance(e[c], float) else str(e[c]) for c in cols)
                 for e in tape["events"] if e["kind"] == kind]
        path.write_text("\n".join(rows) + "\n")
        files.append(path)
    return files


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tapes(max_timed=80))
def test_replay_of_csv_tapes_one_kind_per_file_matches_reference(tape: dict[str, Any]) -> None:
    """The same tapes as four CSV files (one kind per file): the per-symbol order of each kind is kept."""
    tape = without_too_late(tape)
    with tempfile.TemporaryDirectory() as tmp:
        check(run_replay(tape, Path(tmp), csv=True), tape, skip=frozenset({"late"}))
