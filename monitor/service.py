"""Wires one process: calendars, validator, engine, bus, consumer runner, metrics, HTTP app."""

from __future__ import annotations

from aiohttp import web

from consumers.engine import Engine
from consumers.runner import ConsumerRunner
from monitor.bus import Bus, make_bus
from monitor.calendars import Calendars, default_calendars, parse_closures
from monitor.config import Config
from monitor.events import Validator
from monitor.ingest.publisher import Publisher
from monitor.metrics import make_registry
from monitor.server import make_app
from monitor.stats import PipelineStats


class Service:
    def __init__(self, config: Config, bus: Bus | None = None, live_clock: bool | None = None) -> None:
        self.config = config
        c = config.compute
        self.calendars = Calendars(parse_closures(c.closures)) if c.closures else default_calendars()
        self.validator = Validator(self.calendars, c.session_margin_minutes, c.max_payload_bytes)
        self.engine = Engine(self.calendars, c.grace_seconds, c.live_clock if live_clock is None else live_clock)
        self.stats = PipelineStats()
        self.bus = bus if bus is not None else make_bus(config)
        self.runner = ConsumerRunner(self.bus, self.engine, self.validator, config.kafka.group_id, stats=self.stats,
                                     session_margin_ms=c.session_margin_minutes * 60_000)
        self.registry = make_registry(self.engine, self.stats)

    def publisher(self, source: str) -> Publisher:
        return Publisher(self.bus, self.validator, self.stats, source)

    def ready(self) -> bool:
        return self.runner.connected and self.runner.ready

    def app(self) -> web.Application:
        return make_app(self.engine, self.registry, self.ready, self.config.http.token, self.config.http.max_body_bytes)
