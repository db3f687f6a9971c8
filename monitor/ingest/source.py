"""What the feed sources (MQTT, WebSocket, HTTP poll) share: options with a reconnect backoff,
the publisher and its counters, and the connect / read / reconnect loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from monitor.ingest.publisher import Publisher
from monitor.ingest.retry import Backoff, reconnect_forever


class Source(Protocol):
    """Anything the ingest runner can run: a name (the ``source`` label) and a run loop."""

    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


class ReconnectOptions(Protocol):
    """The options every feed source has: its reconnect (or retry) backoff."""

    backoff_initial_s: float
    backoff_max_s: float


OptionsT = TypeVar("OptionsT", bound=ReconnectOptions)


class FeedSource(Generic[OptionsT]):
    """Base of the sources that read a remote feed and reconnect to it.

    ``name`` is the publisher's source (the ``source`` label of the metrics);
    ``stats.connected[name]`` tells whether the feed is up and
    ``stats.reconnects[name]`` counts the attempts after the first.
    """

    type: ClassVar[str]

    def __init__(self, opts: OptionsT, publisher: Publisher) -> None:
        self.opts = opts
        self.publisher = publisher
        self.name = publisher.source
        self.stats = publisher.stats
        self.connections = 0

    def new_backoff(self) -> Backoff:
        o = self.opts
        return Backoff(o.backoff_initial_s, max(o.backoff_initial_s, o.backoff_max_s))

    def mark_up(self, backoff: Backoff) -> None:
        """The feed answers: show it connected and start the backoff over."""
        self.stats.connected[self.name] = True
        backoff.reset()

    def mark_down(self) -> None:
        self.stats.connected[self.name] = False

    async def connect_forever(self, stop: asyncio.Event, connect: Callable[[Backoff], Awaitable[None]],
                              failed: Callable[[BaseException], bool]) -> None:
        """One connection after another until ``stop`` (see :func:`~monitor.ingest.retry.reconnect_forever`)."""
        backoff = self.new_backoff()
        await reconnect_forever(self.name, self.stats, backoff, stop, lambda: connect(backoff), failed)

    @staticmethod
    async def read_until_stopped(reader: Coroutine[Any, Any, None], stop: asyncio.Event) -> None:
        """Run ``reader`` until it returns or ``stop`` is set; what it raised is raised here (a reconnect)."""
        task = asyncio.create_task(reader)
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
        if task.done() and not task.cancelled():
            exc = task.exception()
            if exc is not None:
                raise exc


def with_bearer(headers: dict[str, str], token: str) -> dict[str, str]:
    """``headers`` plus ``Authorization: Bearer <token>`` when there is a token."""
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
