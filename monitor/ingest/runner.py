"""Builds sources from config and flags, and runs them until SIGTERM/SIGINT;
adds a service's ``POST /ingest`` (the push source) to its app.

A source is a ``[sources.NAME]`` table with ``type = "mqtt" | "http-poll" |
"websocket" | "replay" | "push"`` (``enabled = false`` skips it). The name is
the ``source`` label of its metrics. Every source of a process hands its
records to the one sink of the service's ingest bus (see ``wiring``).

Shutdown order, so nothing accepted is lost: stop reading (the sources
return; MQTT keeps its connection until its messages' records are
acknowledged), then close the sink (delivers the buffer), then the producer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from monitor.bus import INGEST_TOPICS, AccessDenied
from monitor.config import Config
from monitor.ingest import push, wiring
from monitor.ingest.http_poll import HttpPollOptions, HttpPollSource
from monitor.ingest.mqtt import MqttOptions, MqttSource
from monitor.ingest.options import apply_args, apply_mapping, env_overrides, redacted
from monitor.ingest.publisher import Publisher
from monitor.ingest.push import PushOptions
from monitor.ingest.replay import ReplayOptions, ReplaySource
from monitor.ingest.retry import Backoff, sleep_or_stop
from monitor.ingest.sink import Sink
from monitor.ingest.source import Source
from monitor.ingest.websocket import WebSocketOptions, WebSocketSource

if TYPE_CHECKING:
    from monitor.service import Service

log = logging.getLogger("fundflow.ingest")


OPTIONS: dict[str, type] = {
    "mqtt": MqttOptions,
    "http-poll": HttpPollOptions,
    "websocket": WebSocketOptions,
    "replay": ReplayOptions,
    "push": PushOptions,
}
SOURCES: dict[str, Callable[[Any, Publisher], Source]] = {
    "mqtt": MqttSource,
    "http-poll": HttpPollSource,
    "websocket": WebSocketSource,
    "replay": ReplaySource,
}


def source_options(type_: str, name: str, cfg: Config, args: argparse.Namespace | None = None,
                   env: dict[str, str] | None = None) -> Any:
    """Options of source ``name``: defaults < [mqtt] (MQTT) < [sources.NAME] < environment < flags."""
    if type_ not in OPTIONS:
        raise ValueError(f"unknown source type {type_!r} (known: {', '.join(OPTIONS)})")
    where = f"sources.{name}"
    table = dict(cfg.sources.get(name) or {})
    if type_ == "mqtt":
        o = MqttOptions.from_config(cfg, table, where)
    else:
        o = apply_mapping(OPTIONS[type_](), table, where, ignore=("type", "enabled"))
    apply_mapping(o, env_overrides(name, env), f"FUNDFLOW_SOURCES__{name.upper()}", ignore=("type", "enabled"))
    if args is not None:
        apply_args(o, args)
    o.check(where)
    return o


def configured_sources(cfg: Config) -> list[tuple[str, str]]:
    """(name, type) of every enabled ``[sources.NAME]`` table."""
    out = []
    for name, table in cfg.sources.items():
        if not isinstance(table, dict):
            raise ValueError(f"[sources.{name}] must be a table")
        type_ = str(table.get("type", name))
        if type_ not in OPTIONS:
            raise ValueError(f"[sources.{name}] type must be one of {', '.join(OPTIONS)}, got {type_!r}")
        if table.get("enabled", True) in (False, "false", "0", 0):
            continue
        out.append((name, type_))
    return out


async def ensure_topics(bus: Any, stop: asyncio.Event) -> None:
    """Create the topics, retrying in the background while Kafka is unreachable (the sink buffers)."""
    backoff = Backoff(1.0, 30.0)
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            # only what an ingestor writes: under ACLs it may not even see the state topic
            await loop.run_in_executor(None, bus.ensure_topics, INGEST_TOPICS)
            return
        except AccessDenied as exc:  # an operator may fix the ACLs: said loudly, retried slowly
            delay = backoff.next()
            log.error("%s; retrying in %.1fs", exc, delay)
        except Exception as exc:  # noqa: BLE001 - retried
            delay = backoff.next()
            log.warning("cannot create topics yet (%s); retrying in %.1fs", str(exc)[:200], delay)
            if await sleep_or_stop(delay, stop):
                return


class IngestProcess:
    """The ingest side of one process: the shared sink and the running sources."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.sink: Sink | None = None
        self.sources: list[Source] = []

    async def start(self) -> IngestProcess:
        self.sink = await wiring.open_sink(self.svc)
        return self

    def add(self, type_: str, name: str, opts: Any, **kw: Any) -> Source:
        publisher = wiring.publisher(self.svc, name, self.sink)
        source = SOURCES[type_](opts, publisher, **kw)
        self.sources.append(source)
        log.info("source %s (%s): %s", name, type_, redacted(opts))
        return source

    async def run(self, stop: asyncio.Event, exit_when_done: bool = False) -> None:
        """Run every source until ``stop`` (or, with ``exit_when_done``, until all of them return)."""
        tasks = [asyncio.create_task(s.run(stop), name=f"source-{s.name}") for s in self.sources]
        stopper = asyncio.create_task(stop.wait())
        pending = set(tasks)
        try:
            while pending:
                done, _ = await asyncio.wait(pending | {stopper}, return_when=asyncio.FIRST_COMPLETED)
                for t in done - {stopper}:
                    pending.discard(t)
                    if not t.cancelled() and t.exception() is not None:
                        log.error("source %s failed", t.get_name(), exc_info=t.exception())
                if stopper in done or (exit_when_done and not pending):
                    break
                if not exit_when_done and not pending:
                    await stop.wait()
                    break
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            stopper.cancel()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    def ready(self) -> bool:
        """Ready while the bus acknowledges what the sources hand it (``/readyz`` of ``fundflow ingest``)."""
        return self.sink is not None and self.sink.healthy and not self.sink.closed

    async def close(self, timeout: float = 60.0) -> bool:
        """Deliver what is buffered and close the producer; False when records were left."""
        if self.sink is None:
            return True
        sink, self.sink = self.sink, None
        return await wiring.close_sink(self.svc, sink, timeout)


def add_push_endpoint(app: web.Application, svc: Service) -> None:
    """``POST /ingest`` on a service's app (``fundflow demo``, ``consume``, ``run``, ``ingest``).

    Options come from the first ``[sources.NAME]`` table with ``type = "push"``
    (its name becomes the ``source`` label; default ``push``); records go
    through the service's shared ingest sink.
    """
    name = next((n for n, t in svc.config.sources.items() if isinstance(t, dict) and t.get("type") == "push"), "push")
    opts = source_options("push", name, svc.config)
    publisher = wiring.publisher(svc, name, None)
    app[push.PUBLISHER] = publisher
    app[push.OPTIONS] = opts
    app.router.add_post(opts.path, push.ingest)

    async def start_sink(app: web.Application) -> None:
        publisher.sink = await wiring.open_sink(svc)
        app[push.OWN_SINK] = publisher.sink

    async def stop_sink(app: web.Application) -> None:
        sink = app.get(push.OWN_SINK)
        if isinstance(sink, Sink):
            await wiring.close_sink(svc, sink)
            publisher.sink = None

    app.on_startup.append(start_sink)
    app.on_cleanup.append(stop_sink)
