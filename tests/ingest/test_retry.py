"""Reconnect and retry delays: exponential, capped, jittered within bounds."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from monitor.ingest.retry import Backoff, sleep_or_stop


def test_exponential_and_capped() -> None:
    b = Backoff(0.5, 8.0, jitter=0.0)
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    b.reset()
    assert b.next() == 0.5


def test_jitter_bounds() -> None:
    b = Backoff(1.0, 30.0, jitter=0.5, rand=random.Random(7))
    for _ in range(200):
        cap = min(30.0, 1.0 * 2 ** b.failures)  # the delay about to be drawn
        d = b.next()
        assert cap / 2 <= d <= cap
    assert b.peek() == 30.0
    draws = {round(Backoff(1.0, 1.0, jitter=1.0, rand=random.Random(s)).next(), 6) for s in range(50)}
    assert len(draws) > 40 and all(0 <= d <= 1.0 for d in draws)  # full jitter spreads a fleet out


def test_invalid() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


async def test_sleep_or_stop() -> None:
    stop = asyncio.Event()
    t0 = time.monotonic()
    assert await sleep_or_stop(0.05, stop) is False
    assert time.monotonic() - t0 >= 0.04
    asyncio.get_running_loop().call_later(0.05, stop.set)
    t0 = time.monotonic()
    assert await sleep_or_stop(10, stop) is True
    assert time.monotonic() - t0 < 1
