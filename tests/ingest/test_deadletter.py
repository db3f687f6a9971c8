"""Every rejected input of the async edge is dead-lettered with its reason and counted."""

from __future__ import annotations

import orjson

from consumers.engine import Engine
from harness.metrics import sample_value
from monitor.ingest.publisher import MAX_BATCH_BYTES, Publisher
from monitor.metrics import Exposition
from tests.ingest.conftest import FlakyBus, dead_letters, trade, validator


async def test_payload_paths(publisher: Publisher, bus: FlakyBus) -> None:
    acks: list[str] = []
    r = await publisher.apublish_payload(orjson.dumps(trade(1)), on_done=lambda: acks.append("one"))
    assert (r.accepted, r.rejected) == (1, 0)
    mixed = [trade(2), {"kind": "trade"}, "text", dict(trade(3), side="Z"), trade(4)]
    r = await publisher.apublish_payload(orjson.dumps(mixed), on_done=lambda: acks.append("array"))
    assert (r.accepted, r.rejected) == (2, 3)
    assert [(e["index"], e["reason"]) for e in r.errors] == [(1, "missing_field"), (2, "bad_json"), (3, "bad_value")]
    r = await publisher.apublish_payload(b"{broken", on_done=lambda: acks.append("broken"))
    assert r.errors[0]["reason"] == "bad_json"
    r = await publisher.apublish_payload(b"[" + b" " * MAX_BATCH_BYTES + b"]", on_done=lambda: acks.append("big"))
    assert r.errors[0]["reason"] == "too_large"
    assert await publisher.sink.wait_empty(5)
    # each payload acknowledged once, after all its records (events and dead letters) were delivered
    assert acks == ["one", "array", "broken", "big"]
    letters = dead_letters(bus)
    assert sorted(d["reason"] for d in letters) == ["bad_json", "bad_json", "bad_value", "missing_field", "too_large"]
    assert all(d["source"] == "test" and d["detail"] and d["ts"] for d in letters)
    assert orjson.loads(next(d for d in letters if d["reason"] == "missing_field")["raw"]) == {"kind": "trade"}
    assert sum(publisher.stats.rejected.values()) == 5
    assert [e["trade_id"] for e in bus.values("fundflow.etf.trades")] == ["t1", "t2", "t4"]


async def test_rejections_exported_per_source_and_reason(publisher: Publisher) -> None:
    await publisher.apublish_raw(b"nope")
    await publisher.apublish_obj(dict(trade(1), price=-1))
    text = Exposition(Engine(validator().calendars, 60, False), publisher.stats).render().decode()
    assert sample_value(text, "fundflow_events_rejected_total", {"reason": "bad_json", "source": "test"}) == 1
    assert sample_value(text, "fundflow_events_rejected_total", {"reason": "bad_number", "source": "test"}) == 1
