"""Tapes replayed at a speed factor of their event time; bad lines dead-lettered, the rest goes on."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from monitor.ingest.publisher import Publisher
from monitor.ingest.replay import ReplayOptions, ReplaySource, parse_speed
from tests.ingest.conftest import TS, FlakyBus, dead_letters, trade


def ndjson_tape(path, n: int = 5, step_ms: int = 250, bad: bool = True):
    lines = [orjson.dumps(trade(i, ts=TS + i * step_ms)) for i in range(n)]
    if bad:
        lines.insert(2, b'{"kind": "trade", oops')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return str(path)


async def replay(publisher: Publisher, files: list[str], speed: str, **kw) -> tuple[ReplaySource, float]:
    src = ReplaySource(ReplayOptions(files=files, speed=speed, **kw), publisher)
    t0 = time.monotonic()
    await asyncio.wait_for(src.run(asyncio.Event()), 10)
    elapsed = time.monotonic() - t0
    assert await publisher.sink.wait_empty(5)
    return src, elapsed


def test_parse_speed() -> None:
    assert parse_speed("max") == 0 and parse_speed("10x") == 10 and parse_speed(2) == 2 and parse_speed("0.5") == 0.5
    with pytest.raises(ValueError):
        parse_speed("-1")


@pytest.mark.parametrize("speed, low, high", [("4", 0.9 / 4, 0.6), ("10x", 0.09, 0.35), ("max", 0.0, 0.08)])
async def test_ndjson_at_speed(publisher: Publisher, bus: FlakyBus, tmp_path, speed, low, high) -> None:
    path = ndjson_tape(tmp_path / "t.ndjson")  # 1.0 s of event time
    src, elapsed = await replay(publisher, [path], speed)
    assert low <= elapsed <= high, elapsed
    assert src.finished and src.sent == 6
    assert [e["trade_id"] for e in bus.values("fundflow.etf.trades")] == [f"t{i}" for i in range(5)]
    (letter,) = dead_letters(bus)
    assert letter["reason"] == "bad_json" and letter["raw"] == b'{"kind": "trade", oops'
    assert publisher.stats.rejected[("test", "bad_json")] == 1


async def test_csv_tape_and_gap_cap(publisher: Publisher, bus: FlakyBus, tmp_path) -> None:
    path = tmp_path / "trades.csv"
    rows = ["symbol,ts,price,volume,side,trade_id"]
    # a 60 s pause in event time, capped to 0.1 s of wall time
    for i, ts in enumerate((TS, TS + 100, TS + 60_100, TS + 60_200)):
        rows.append(f"513770.SH,{ts},1.07,{100 + i},B,c{i}")
    rows.append("513770.SH,not-a-time,1.07,5,B,bad")
    path.write_text("\n".join(rows) + "\n")
    src, elapsed = await replay(publisher, [str(path)], "1", kind="trade", max_gap_s=0.1)
    assert 0.25 <= elapsed <= 1.0, elapsed
    assert [e["trade_id"] for e in bus.values("fundflow.etf.trades")] == ["c0", "c1", "c2", "c3"]
    assert [d["reason"] for d in dead_letters(bus)] == ["bad_timestamp"]


async def test_stop_cuts_a_slow_replay_short(publisher: Publisher, tmp_path) -> None:
    path = ndjson_tape(tmp_path / "slow.ndjson", n=3, step_ms=60_000, bad=False)
    src = ReplaySource(ReplayOptions(files=[path], speed="1"), publisher)
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert src.sent == 1 and not src.finished
