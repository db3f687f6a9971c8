"""The bounded buffer between the sources and the bus: retries, back-pressure, no loss, order."""

from __future__ import annotations

import asyncio

import pytest

from monitor.ingest.sink import OutRecord, Sink, SinkClosed, release_sink, shared_sink
from monitor.stats import PipelineStats
from tests.ingest.conftest import FlakyBus


def rec(i: int, key: bytes = b"K", done: list | None = None) -> OutRecord:
    return OutRecord("fundflow.etf.trades", key, b"%d" % i, None, (lambda: done.append(i)) if done is not None else None)


async def test_delivers_in_order_and_acknowledges(bus: FlakyBus, stats: PipelineStats) -> None:
    done: list[int] = []
    async with Sink(bus, stats, max_events=50, batch_max=7) as sink:
        for i in range(200):
            await sink.put(rec(i, done=done))
        assert await sink.wait_empty(5)
    assert [int(r.value) for r in bus.records("fundflow.etf.trades")] == list(range(200))
    assert done == list(range(200))
    assert stats.buffered == 0 and sink.produced == 200


async def test_backpressure_bounded_buffer_and_nothing_lost(bus: FlakyBus, stats: PipelineStats) -> None:
    bus.down.set()
    sink = await Sink(bus, stats, max_events=10, batch_max=4, backoff_initial_s=0.01, backoff_max_s=0.02).start()
    accepted = 0

    async def source() -> None:
        nonlocal accepted
        for i in range(30):
            await sink.put(rec(i))
            accepted += 1

    task = asyncio.create_task(source())
    await asyncio.sleep(0.3)
    # the bus is down: the source is held at the buffer size instead of dropping
    assert accepted == 10 and not task.done()
    assert stats.buffered == 10 and sink.pending == 10
    assert not sink.try_put(rec(99))
    assert bus.failed_flushes >= 2 and not sink.healthy
    bus.down.clear()
    await asyncio.wait_for(task, 5)
    assert await sink.close(5)
    assert sorted(int(r.value) for r in bus.records("fundflow.etf.trades")) == list(range(30))
    assert stats.buffered == 0 and sink.healthy


async def test_failed_batch_is_retried_with_backoff(bus: FlakyBus, stats: PipelineStats) -> None:
    bus.down.set()
    sink = await Sink(bus, stats, max_events=100, backoff_initial_s=0.05, backoff_max_s=0.1).start()
    await sink.put(rec(1))
    await asyncio.sleep(0.35)
    # 0.05 then 0.1 (capped) with jitter in [d/2, d]: between 3 and 9 attempts in 0.35 s
    assert 2 <= bus.failed_flushes <= 10
    bus.down.clear()
    assert await sink.wait_empty(2)
    await sink.close()
    assert [int(r.value) for r in bus.records("fundflow.etf.trades")] == [1]


async def test_closed_sink_refuses_and_wakes_blocked_sources(bus: FlakyBus, stats: PipelineStats) -> None:
    bus.down.set()
    sink = await Sink(bus, stats, max_events=1, backoff_initial_s=0.01, backoff_max_s=0.01).start()
    await sink.put(rec(1))
    blocked = asyncio.create_task(sink.put(rec(2)))
    await asyncio.sleep(0.05)
    assert await sink.close(timeout=0.2) is False  # bus still down: reported, not hidden
    with pytest.raises(SinkClosed):
        await blocked
    with pytest.raises(SinkClosed):
        await sink.put(rec(3))


async def test_one_shared_sink_per_bus(bus: FlakyBus, stats: PipelineStats) -> None:
    a = await shared_sink(bus, stats)
    b = await shared_sink(bus, stats)
    assert a is b
    assert await release_sink(a) and not a.closed
    assert await release_sink(b) and a.closed
    c = await shared_sink(bus, stats)
    assert c is not a
    await release_sink(c)
