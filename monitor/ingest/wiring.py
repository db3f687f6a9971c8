"""The ingest side of a :class:`~monitor.service.Service`: its bus and its one shared sink.

On Kafka the ingest side gets a producer of its own (a second ``KafkaBus``),
because ``KafkaBus.flush()`` reports the failures of everything produced
through its producer: sharing the consumer's producer would let the sink and
the consumer's checkpoint flush take each other's errors. The in-memory bus
never fails a flush, so the demo shares it.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING

from monitor.bus import Bus
from monitor.bus.factory import make_bus
from monitor.bus.kafka import KafkaBus
from monitor.ingest.publisher import Publisher
from monitor.ingest.sink import Sink, release_sink, shared_sink

if TYPE_CHECKING:
    from monitor.service import Service

log = logging.getLogger("fundflow.ingest")

_BUSES: weakref.WeakKeyDictionary[Service, Bus] = weakref.WeakKeyDictionary()


def ingest_bus(svc: Service) -> Bus:
    """The bus the ingestors of ``svc`` produce to (created once per service)."""
    bus = _BUSES.get(svc)
    if bus is None:
        bus = make_bus(svc.config) if isinstance(svc.bus, KafkaBus) else svc.bus
        _BUSES[svc] = bus
    return bus


async def open_sink(svc: Service) -> Sink:
    """The started shared sink of the service's ingest bus; pair with :func:`close_sink`."""
    return await shared_sink(ingest_bus(svc), svc.stats, max_events=svc.config.kafka.buffer_max_events)


async def close_sink(svc: Service, sink: Sink, timeout: float = 60.0) -> bool:
    """Release the sink; the last user delivers what is buffered and closes a producer of our own."""
    ok = await release_sink(sink, timeout)
    bus = _BUSES.get(svc)
    if sink.closed and bus is not None and bus is not svc.bus:
        _BUSES.pop(svc, None)
        await asyncio.get_running_loop().run_in_executor(None, bus.close)
    if not ok:
        log.error("ingest sink closed with records not delivered")
    return ok


def publisher(svc: Service, source: str, sink: Sink | None) -> Publisher:
    """A publisher for ``source`` that hands records to ``sink`` (the sources' async path)."""
    return Publisher(ingest_bus(svc), svc.validator, svc.stats, source, sink)
