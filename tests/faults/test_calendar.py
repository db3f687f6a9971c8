"""Clock and calendar through the real processes: holidays, a typhoon closure from config, a black
rainstorm from a time of day, across midnight (exchange time, not UTC) and the lunch break.

The events go in twice: through POST /ingest of ``fundflow consume`` (validated at the edge) and raw
onto the Kafka topics (validated by the consumer). Both must agree: the same events rejected as
``outside_session``, the accepted ones counted on the trading day the rules give (the raw copies of
accepted events are duplicates). The unit scenarios for the same rules are in tests/unit/test_rules.py.
"""

from __future__ import annotations

from typing import Any

import orjson
from kafka import KafkaProducer

from harness.fundflow import ConsumerProc, http
from harness.services import wait_until
from monitor.events import TOPICS
from tests.faults.pipeline import dead_letters, wait_drained

CONFIG = """
[[compute.closures]]
market = "HK"        # typhoon signal 8: HKEX shut all day
date = "2025-09-24"

[[compute.closures]]
market = "SH"        # black rainstorm: Shanghai stops at 10:30
date = "2025-09-25"
from = "10:30"
"""


def trade(symbol: str, ts: Any, price: float, volume: int, tid: str) -> dict[str, Any]:
    return {"kind": "trade", "symbol": symbol, "ts": ts, "price": price, "volume": volume, "side": "B",
            "trade_id": tid}


def tick(ts: str, seq: int, buy: float) -> dict[str, Any]:
    return {"kind": "southbound", "symbol": "09988.HK", "ts": ts, "channel": "SH", "buy_hkd": buy, "sell_hkd": 0.0,
            "seq": seq}


def daily(date: str, buy: float) -> dict[str, Any]:
    return {"kind": "southbound_daily", "symbol": "09988.HK", "date": date, "buy_hkd": buy, "sell_hkd": 0.0}


# (event, applied?) with the rule that decides it
CASES: list[tuple[dict[str, Any], bool]] = [
    (trade("513770.SH", "2025-09-11T15:30:00+08:00", 1.0, 100, "c1"), True),    # 30 min after the close: in the margin
    (trade("513770.SH", "2025-09-11T23:59:59+08:00", 1.0, 100, "c2"), False),   # a minute before midnight
    (trade("513770.SH", "2025-09-12T00:00:00+08:00", 1.0, 100, "c3"), False),   # midnight exactly
    (trade("513770.SH", "2025-09-11T16:30:00Z", 1.0, 100, "c4"), False),        # 00:30 on the 12th in Shanghai
    (trade("513770.SH", "2025-09-12T01:30:00Z", 1.0, 200, "c5"), True),         # 09:30 on the 12th: UTC date is not it
    (trade("513770.SH", "2025-09-12T12:00:00+08:00", 1.0, 300, "c6"), True),    # lunch break: in the day's turnover
    (trade("513770.SH", 1757656800000, 1.0, 400, "c7"), True),                  # 2025-09-12 13:00:00 as epoch ms
    (trade("159920.SZ", "2025-10-01T10:00:00+08:00", 2.0, 500, "c8"), False),   # National Day: XSHG (for .SZ) shut
    (trade("159920.SZ", "2025-09-30T10:00:00+08:00", 2.0, 500, "c9"), True),
    (trade("02800.HK", "2025-09-24T10:00:00+08:00", 25.0, 10, "c10"), False),   # typhoon closure from config
    (trade("02800.HK", "2025-10-02T10:00:00+08:00", 25.0, 10, "c11"), True),    # HKEX open while Shanghai is shut
    (trade("510300.SH", "2025-09-25T11:00:00+08:00", 4.0, 100, "c12"), True),   # rainstorm at 10:30: 11:00 in the margin
    (trade("510300.SH", "2025-09-25T13:30:00+08:00", 4.0, 100, "c13"), False),  # 13:30: beyond it
    (trade("510300.SH", "2025-09-27T10:00:00+08:00", 4.0, 100, "c14"), False),  # a Saturday
    (tick("2025-09-23T10:00:00+08:00", 1, 50.0), True),
    (tick("2025-09-24T10:00:00+08:00", 2, 70.0), False),                        # typhoon: no southbound day
    (tick("2025-10-02T10:00:00+08:00", 3, 90.0), False),                        # mainland shut: no southbound day
    (daily("2025-09-24", 700.0), False),
    (daily("2025-09-23", 60.0), True),                                          # the daily record overrides the ticks
]


def test_holidays_closures_midnight_and_lunch_break(kafka_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    cfg = tmp_path / "fundflow.toml"
    cfg.write_text(CONFIG)
    consumer = ConsumerProc(kb.bootstrap, "calendar", tmp_path / "consumer.log", config=cfg).start()
    consumer.wait_ready(90)
    body = b"\n".join(orjson.dumps(e) for e, _ in CASES)
    status, resp = http("POST", consumer.url + "/ingest?wait=true", body)
    assert status == 202, resp
    doc = orjson.loads(resp)
    rejected_idx = {r["index"]: r["reason"] for r in doc["reasons"]}
    assert rejected_idx == {i: "outside_session" for i, (_, ok) in enumerate(CASES) if not ok}, doc["reasons"]
    n_ok = sum(ok for _, ok in CASES)
    n_bad = len(CASES) - n_ok
    assert doc["accepted"] == n_ok

    # the same events raw onto the topics: the consumer's own validation agrees
    producer = KafkaProducer(bootstrap_servers=kb.bootstrap, acks="all")
    for e, _ in CASES:
        producer.send(TOPICS[e["kind"]], value=orjson.dumps(e), key=e["symbol"].encode())
    producer.flush(30)
    producer.close()
    st = wait_drained(consumer, n_ok, 60)

    def all_seen() -> bool:
        ev = consumer.status()["events"]
        return ev["duplicates"] == n_ok and ev["rejected"] == 2 * n_bad

    wait_until(all_seen, 60, "raw copies read")
    ev = consumer.status()["events"]
    assert ev["applied"] == n_ok and ev["duplicates"] == n_ok and ev["rejected"] == 2 * n_bad, ev
    letters = [x for x in dead_letters(kb.bootstrap)]
    assert len(letters) == 2 * n_bad and {x["reason"] for x in letters} == {"outside_session"}

    def turnover(symbol: str) -> dict[str, float]:
        return {d["date"]: d["turnover_cny"] for d in consumer.json(f"/api/v1/symbols/{symbol}/history")["etf"]}

    assert turnover("513770.SH") == {"2025-09-11": 100.0, "2025-09-12": 900.0}
    assert turnover("159920.SZ") == {"2025-09-30": 1000.0}
    assert turnover("02800.HK") == {"2025-10-02": 250.0}
    assert turnover("510300.SH") == {"2025-09-25": 400.0}
    sb = consumer.json("/api/v1/symbols/09988.HK/history?days=60")["southbound"]
    assert [(d["date"], d["net_buy_hkd"], d["source"]) for d in sb] == [("2025-09-23", 60.0, "daily")]
    assert st["ready"] and consumer.alive()
    assert consumer.stop() == 0
    ledger.add("clock and calendar", in_=2 * len(CASES), applied=n_ok, rejected=2 * n_bad, duplicates=n_ok)
