"""Feed gaps through the real processes: a simulated two-day tape with some seqs taken out, pushed
into ``fundflow consume`` (Kafka between), must show exactly those gaps in
``fundflow_feed_gaps_total`` and ``/api/v1/status``; a withheld seq sent at the end is a late fill.

The simulator numbers each stock's ticks per channel straight on across days, and the trades of one
ETF here are numbered from 1 each day: neither day boundary may count as a gap.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import orjson

from harness.fundflow import ConsumerProc, http
from harness.metrics import sample_value
from monitor.simulator import Scenario, generate
from tests.faults.pipeline import wait_drained

TAPE = Scenario(days=2, trade_interval_s=60, tick_interval_s=300)  # ~4,000 events
UTC8 = dt.timezone(dt.timedelta(hours=8))


def _day(ev: dict[str, Any]) -> str:
    return dt.datetime.fromtimestamp(ev["ts"] / 1000, UTC8).date().isoformat()


def _stream(events: list[dict[str, Any]], symbol: str, channel: str, day: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "southbound" and e["symbol"] == symbol and e["channel"] == channel
            and _day(e) == day]


def build() -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """(the tape with gaps, the withheld tick, a tick that moves the stream clock past the grace, expected open rows)."""
    events = list(generate(TAPE))
    days = sorted({_day(e) for e in events if e["kind"] == "southbound"})
    assert len(days) == 2
    etf = next(e["symbol"] for e in events if e["kind"] == "trade")
    seqs: Counter[str] = Counter()
    for e in events:  # one ETF's trades numbered 1, 2, ... each day
        if e["kind"] == "trade" and e["symbol"] == etf:
            seqs[_day(e)] += 1
            e["seq"] = seqs[_day(e)]
    stocks = sorted({e["symbol"] for e in events if e["kind"] == "southbound"})
    a, b, c = stocks[:3]
    drop: list[dict[str, Any]] = []
    run = _stream(events, a, "SH", days[0])
    drop += run[len(run) // 2:len(run) // 2 + 3]  # three in a row on day 1
    run = _stream(events, b, "SZ", days[1])
    drop.append(run[len(run) // 3])  # one on day 2
    trades = [e for e in events if e["kind"] == "trade" and e["symbol"] == etf and _day(e) == days[1]]
    drop.append(trades[len(trades) // 2])  # one numbered trade
    run = _stream(events, c, "SH", days[1])
    withheld = run[len(run) // 2]  # missing now, sent at the end
    expected = [{"kind": "southbound", "symbol": a, "channel": "SH", "date": days[0],
                 "first_missing": drop[0]["seq"], "last_missing": drop[2]["seq"], "missing": 3},
                {"kind": "southbound", "symbol": b, "channel": "SZ", "date": days[1],
                 "first_missing": drop[3]["seq"], "last_missing": drop[3]["seq"], "missing": 1},
                {"kind": "trade", "symbol": etf, "date": days[1],
                 "first_missing": drop[4]["seq"], "last_missing": drop[4]["seq"], "missing": 1},
                {"kind": "southbound", "symbol": c, "channel": "SH", "date": days[1],
                 "first_missing": withheld["seq"], "last_missing": withheld["seq"], "missing": 1}]
    gone = {id(e) for e in drop} | {id(withheld)}
    tape = [e for e in events if id(e) not in gone]
    last = _stream(events, a, "SH", days[1])[-1]
    close = dt.datetime.fromisoformat(days[1] + "T16:10:00+08:00")  # 10 min after the HK close, in the margin
    advance = dict(last, seq=last["seq"] + 1, ts=int(close.timestamp() * 1000))
    return tape, withheld, advance, expected


def _push(consumer: ConsumerProc, events: list[dict[str, Any]]) -> int:
    status, resp = http("POST", consumer.url + "/ingest?wait=true", b"\n".join(orjson.dumps(e) for e in events))
    assert status == 202, resp
    doc = orjson.loads(resp)
    assert doc["accepted"] == len(events), doc
    return len(events)


def _rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{k: v for k, v in r.items() if k != "opened_at"} for r in status["feed_gaps"]["open"]]
    return sorted(rows, key=lambda r: (r["date"], r["kind"], r["symbol"]))


def test_dropped_seqs_are_counted_shown_and_a_late_one_is_a_fill(kafka_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    consumer = ConsumerProc(kb.bootstrap, "gaps", tmp_path / "consumer.log").start()
    consumer.wait_ready(90)
    tape, withheld, advance, expected = build()
    sent = _push(consumer, tape)
    wait_drained(consumer, sent, 120)
    # Partitions are read a batch at a time, so a hole can open at a clock already near the end of the
    # day (the greatest event time of every partition): one more tick puts the clock past every grace.
    sent += _push(consumer, [advance])
    st = wait_drained(consumer, sent, 60)
    want = sorted(expected, key=lambda r: (r["date"], r["kind"], r["symbol"]))
    gaps = st["feed_gaps"]
    assert gaps["gaps"] == {"trade": 1, "southbound": 5}, gaps
    assert gaps["late_fills"] == {"trade": 0, "southbound": 0} and gaps["pending"] == {"trade": 0, "southbound": 0}
    assert _rows(st) == want
    text = consumer.metrics()
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "southbound"}) == 5
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "trade"}) == 1
    assert sample_value(text, "fundflow_feed_gap_fills_total", {"kind": "southbound"}) == 0

    # the withheld tick, hours late, and a few re-sent ones (duplicates: no change)
    # (trades and ticks: an IOPV or quota record re-sent after a later one is applied and changes nothing)
    resent = [e for e in tape if e["kind"] in ("trade", "southbound")][:20]
    sent += _push(consumer, [withheld] + resent)
    st = wait_drained(consumer, sent - len(resent), 60)
    gaps = st["feed_gaps"]
    assert gaps["gaps"] == {"trade": 1, "southbound": 5}, gaps  # the gap counter does not go back
    assert gaps["late_fills"] == {"trade": 0, "southbound": 1}, gaps
    assert _rows(st) == [r for r in want if r["symbol"] != withheld["symbol"] or r["kind"] != "southbound"]
    text = consumer.metrics()
    assert sample_value(text, "fundflow_feed_gap_fills_total", {"kind": "southbound"}) == 1
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "southbound"}) == 5
    ev = consumer.status()["events"]
    assert ev["applied"] == sent - len(resent) and ev["duplicates"] == len(resent) and ev["rejected"] == 0, ev
    assert consumer.stop() == 0
    ledger.add("feed gaps", in_=sent, applied=ev["applied"], duplicates=ev["duplicates"],
               note="6 seqs dropped, 1 filled late")
