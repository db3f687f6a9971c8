"""The buffered sink between the sources and the bus.

Sources ``await sink.put(record)``; one drain task takes batches off a bounded
FIFO and hands them to the bus in a dedicated thread (kafka-python calls
block): produce every record of the batch, then ``flush()``, which raises when
any record was not acknowledged. A failed batch is produced again after a
capped, jittered backoff, for as long as the process lives, so nothing
accepted is ever dropped; a batch whose flush only timed out is flushed again
without producing its records twice (they are still in the producer).

Delivery is at least once: a batch retried after a partial failure can put a
record on the topic twice. Consumers count duplicates once (trade_id,
symbol+channel+seq), and per-key order survives because batches go out
strictly one after the other from a single thread.

Back-pressure: at most ``max_events`` records are accepted and not yet
acknowledged (``stats.buffered``); ``put`` waits while the buffer is full, so
a source stops reading instead of dropping.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from monitor.bus import Bus
from monitor.ingest.retry import Backoff
from monitor.stats import PipelineStats

log = logging.getLogger("fundflow.ingest.sink")


@dataclass(slots=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None
    on_done: Callable[[], None] | None = None  # called on the loop once the bus acknowledged the record


class SinkClosed(RuntimeError):
    """The sink no longer accepts records (shutting down)."""


class _FlushTimeout(Exception):
    """The batch is in the producer but not yet acknowledged: flush again, do not produce again."""


class Sink:
    def __init__(
        self,
        bus: Bus,
        stats: PipelineStats,
        max_events: int = 100_000,
        batch_max: int = 5_000,
        flush_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        self.bus = bus
        self.stats = stats
        self.max_events = max_events
        self.batch_max = max(1, min(batch_max, max_events))
        self.flush_timeout_s = flush_timeout_s
        self.backoff = Backoff(backoff_initial_s, max(backoff_initial_s, backoff_max_s))
        self._queue: collections.deque[OutRecord] = collections.deque()
        self._pending = 0  # queued + in flight
        self._space = asyncio.Condition()
        self._has_items = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        # observable state (tests, /readyz, logs)
        self.produced = 0  # records acknowledged by the bus
        self.failures = 0  # failed delivery attempts
        self.healthy = True  # False while the last attempt failed
        self.last_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> Sink:
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fundflow-sink")
            self._task = asyncio.create_task(self._drain(), name="fundflow-sink-drain")
        return self

    async def __aenter__(self) -> Sink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Records accepted and not yet acknowledged by the bus."""
        return self._pending

    @property
    def closed(self) -> bool:
        return self._closing

    async def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until every accepted record is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout)
            return True
        except TimeoutError:
            return False

    async def close(self, timeout: float | None = 60.0) -> bool:
        """Stop accepting, deliver what is buffered, stop the drain task.

        Returns True when everything was delivered; False when ``timeout`` ran
        out first (what was left is logged: it is lost with the process).
        """
        self._closing = True
        self._has_items.set()
        async with self._space:
            self._space.notify_all()  # wake producers blocked on a full buffer: they get SinkClosed
        ok = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                ok = False
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                log.error("sink closed with %d record(s) not delivered (%s)", self._pending, self.last_error)
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        return ok and self._pending == 0

    # -- accepting ------------------------------------------------------------------
    async def put(self, rec: OutRecord) -> None:
        """Accept one record, waiting while the buffer is full (back-pressure)."""
        if self._closing:
            raise SinkClosed("sink is closed")
        if self._pending >= self.max_events:
            async with self._space:
                while self._pending >= self.max_events:
                    if self._closing:
                        raise SinkClosed("sink is closed")
                    await self._space.wait()
        self._accept(rec)

    def try_put(self, rec: OutRecord) -> bool:
        """Accept without waiting; False when full or closed."""
        if self._closing or self._pending >= self.max_events:
            return False
        self._accept(rec)
        return True

    def _accept(self, rec: OutRecord) -> None:
        self._queue.append(rec)
        self._pending += 1
        self.stats.buffered += 1
        self._empty.clear()
        self._has_items.set()

    # -- draining -------------------------------------------------------------------
    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._has_items.clear()
                await self._has_items.wait()
                continue
            n = min(len(self._queue), self.batch_max)
            batch = [self._queue.popleft() for _ in range(n)]
            produce = True
            while True:
                try:
                    await loop.run_in_executor(self._executor, self._deliver, batch, produce)
                    break
                except _FlushTimeout:
                    produce = False
                    self._failed(f"flush of {len(batch)} record(s) timed out after {self.flush_timeout_s:g}s")
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every failure is retried
                    produce = True
                    self._failed(repr(exc)[:300])
                    await asyncio.sleep(self.backoff.next())
            if not self.healthy:
                log.info("bus reachable again: delivered a batch of %d after %d failed attempt(s)",
                         len(batch), self.backoff.failures)
            self.healthy = True
            self.stats.bus_available = True
            self.backoff.reset()
            self._delivered(batch)

    def _deliver(self, batch: list[OutRecord], produce: bool) -> None:
        """Runs in the sink thread: produce the batch (unless resuming a flush) and wait for acks."""
        bus = self.bus
        if produce:
            for rec in batch:
                bus.produce(rec.topic, rec.key, rec.value, timestamp_ms=rec.timestamp_ms)
        try:
            bus.flush(self.flush_timeout_s)
        except Exception as exc:
            if type(exc).__name__ == "KafkaTimeoutError":
                raise _FlushTimeout() from exc
            raise

    def _failed(self, what: str) -> None:
        self.failures += 1
        if "AccessDenied" in what or "AuthorizationFailed" in what or "SaslAuthentication" in what:
            if self.healthy or self.failures % 20 == 0:  # retrying cannot help until the ACLs change
                log.error("Kafka refused this client (%s); %d record(s) buffered, retrying",
                          what, self._pending, extra={"reason": "access_denied"})
        elif self.healthy or self.failures % 20 == 0:
            log.warning("bus not acknowledging (%s); %d record(s) buffered, retrying", what, self._pending,
                        extra={"reason": "unavailable", "buffered": self._pending})
        self.healthy = False
        self.stats.bus_available = False
        self.last_error = what

    def _delivered(self, batch: list[OutRecord]) -> None:
        n = len(batch)
        self._pending -= n
        self.stats.buffered -= n
        self.produced += n
        for rec in batch:
            if rec.on_done is not None:
                try:
                    rec.on_done()
                except Exception:  # noqa: BLE001 - a source's ack callback must not stop the sink
                    log.exception("on_done callback failed")
        if self._pending == 0:
            self._empty.set()
        asyncio.get_running_loop().create_task(self._notify_space())

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()


# -- one sink per bus ------------------------------------------------------------------
# KafkaBus.flush() reports the failures of *everything* produced through its producer,
# so two sinks (or a sink and the consumer's checkpoints) sharing one producer could
# take each other's errors and believe a failed batch was delivered. Every source of a
# process therefore shares the one sink of its bus.
_SHARED: dict[int, tuple[Sink, list[int]]] = {}


async def shared_sink(bus: Bus, stats: PipelineStats, **kwargs: Any) -> Sink:
    """The started sink of ``bus`` (created on first use); pair each call with :func:`release_sink`."""
    entry = _SHARED.get(id(bus))
    if entry is None or entry[0].closed:
        sink = Sink(bus, stats, **kwargs)
        await sink.start()
        entry = (sink, [0])
        _SHARED[id(bus)] = entry
    entry[1][0] += 1
    return entry[0]


async def release_sink(sink: Sink, timeout: float | None = 60.0) -> bool:
    """Drop one user of a shared sink; the last one closes it (delivering what is buffered)."""
    entry = _SHARED.get(id(sink.bus))
    if entry is not None and entry[0] is sink:
        entry[1][0] -= 1
        if entry[1][0] > 0:
            return True
        del _SHARED[id(sink.bus)]
    return await sink.close(timeout)
