"""Capped exponential backoff with full jitter, a sleep that a stop event cuts short, and the
reconnect loop every streaming source shares."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from monitor.stats import PipelineStats

log = logging.getLogger("fundflow.ingest")


class Backoff:
    """Delays for consecutive failures: ``initial * 2**n`` capped at ``maximum``, with jitter.

    ``jitter`` is the fraction of the delay that is randomised (0.5: a delay is drawn
    from [d/2, d]), so a fleet of ingestors does not reconnect in lock step.
    """

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, jitter: float = 0.5,
                 rand: random.Random | None = None) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.jitter = min(max(jitter, 0.0), 1.0)
        self.failures = 0
        self._rand = rand or random.Random()

    def peek(self) -> float:
        """The capped delay before jitter for the current failure count."""
        return min(self.maximum, self.initial * (2 ** max(0, self.failures - 1)))

    def next(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        cap = self.peek()
        return cap * (1 - self.jitter * self._rand.random())

    def reset(self) -> None:
        self.failures = 0


async def sleep_or_stop(delay: float, stop: asyncio.Event | None) -> bool:
    """Sleep ``delay`` seconds; return True early (and at once) when ``stop`` is set."""
    if stop is None:
        await asyncio.sleep(delay)
        return False
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), delay)
        return True
    except TimeoutError:
        return False


async def reconnect_forever(name: str, stats: PipelineStats, backoff: Backoff, stop: asyncio.Event,
                            connect: Callable[[], Awaitable[None]],
                            failed: Callable[[BaseException], bool]) -> None:
    """Run one connection after another until ``stop``: count reconnects, back off between them.

    ``connect`` returns when the connection ends; ``failed`` logs an exception it raised and says
    whether it is a connection failure to retry (False: re-raise it).
    """
    first = True
    while not stop.is_set():
        if not first:
            stats.reconnects[name] += 1
        first = False
        try:
            await connect()
        except Exception as exc:  # noqa: BLE001 - ``failed`` decides, anything else propagates
            if not failed(exc):
                raise
        finally:
            stats.connected[name] = False
        if stop.is_set():
            break
        delay = backoff.next()
        log.info("%s: reconnecting in %.1fs (attempt %d)", name, delay, backoff.failures)
        if await sleep_or_stop(delay, stop):
            break
