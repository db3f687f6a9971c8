"""Wires one process: calendars, validator, engine, bus, consumer runner, metrics, HTTP app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from consumers.engine import Engine
from consumers.orders import OrderClasses
from consumers.runner import ConsumerRunner
from monitor import documents
from monitor.alerting import AlertEvaluator
from monitor.bus import Bus
from monitor.bus.factory import make_bus
from monitor.calendars import MARKETS, Calendars, default_calendars, iso, parse_closures
from monitor.config import Config, load_holdings, load_sectors
from monitor.events import Validator
from monitor.ingest.publisher import Publisher
from monitor.ingest.runner import add_push_endpoint
from monitor.metrics import Exposition, wall_ms
from monitor.server import make_app
from monitor.stats import PipelineStats


class Service:
    FEED_GAPS_LISTED = 20  # open gaps listed in the status, newest first

    def __init__(self, config: Config, bus: Bus | None = None, live_clock: bool | None = None,
                 simulated_market: bool = False) -> None:
        """``simulated_market``: market open/closed follows the stream clock (the demo's simulated day)."""
        self.config = config
        c = config.compute
        self.calendars = Calendars(parse_closures(c.closures)) if c.closures else default_calendars()
        self.validator = Validator(self.calendars, c.session_margin_minutes, c.max_payload_bytes)
        self.engine = Engine(self.calendars, c.grace_seconds, c.live_clock if live_clock is None else live_clock,
                             max_late_sessions=c.max_late_sessions,
                             order_classes=OrderClasses.of_cny(config.flows.order_class_bounds))
        self.engine.holdings = load_holdings(config)
        self.engine.sectors = load_sectors(config)
        self.stats = PipelineStats()
        self.bus = bus if bus is not None else make_bus(config)
        self.runner = ConsumerRunner(self.bus, self.engine, self.validator, config.kafka.group_id, stats=self.stats,
                                     checkpoint_interval_s=config.kafka.checkpoint_interval_s)
        self.market_clock_ms: Callable[[], int] = (lambda: self.engine.now_ms() or 0) if simulated_market else wall_ms
        self.metrics = Exposition(self.engine, self.stats, self.market_clock_ms)
        # /readyz of a process that does not consume (``fundflow ingest``): its own notion of ready
        self.readiness: Callable[[], bool] | None = None
        # the demo's simulated clock runs minutes a second (and its symbols are few): evaluate often there
        self.alerts = AlertEvaluator(config.alerts, interval_s=5.0 if simulated_market else 30.0)

    def publisher(self, source: str) -> Publisher:
        return Publisher(self.bus, self.validator, self.stats, source)

    def on_batch(self) -> None:
        """After each poll of the consumer: keeps the alerts' pending-since times current."""
        self.alerts.states(self.engine, self.market_clock_ms())

    def ready(self) -> bool:
        if self.readiness is not None:
            return self.readiness()
        return self.runner.connected and self.runner.ready

    def status(self) -> dict[str, Any]:
        """Counters and the alerts pending or firing, for the board header (rates are taken by the client)."""
        engine, stats = self.engine, self.stats
        now_ms = self.market_clock_ms()
        as_of = engine.now_ms()
        return {
            "as_of": iso(as_of) if as_of is not None else None,
            "ready": self.ready(),
            "market_open": {m: engine.cal[m].is_open(now_ms) for m in MARKETS},
            "events": {"ingested": sum(stats.ingested.values()), "applied": sum(engine.applied.values()),
                       "rejected": sum(stats.rejected.values()), "duplicates": sum(engine.duplicates.values()),
                       "late": sum(engine.late.values()), "replayed": stats.replayed},
            "consumer_lag_messages": sum(stats.consumer_lag.values()),
            "feed_gaps": self._feed_gaps(as_of),
            "alerts": documents.alerts(self.alerts.states(engine, now_ms)),
        }

    def _feed_gaps(self, now_ms: int | None) -> dict[str, Any]:
        """Missing feed seqs per kind (as fundflow_feed_gaps_total) and where the latest still-open ones are."""
        gaps = self.engine.gaps
        gaps.evaluate(now_ms)
        pending = gaps.pending()
        open_ = []
        for row in gaps.open_gaps(self.FEED_GAPS_LISTED):
            opened = row.pop("opened_ms")
            open_.append({**row, "opened_at": iso(opened)})
        return {"gaps": dict(gaps.gaps), "late_fills": dict(gaps.late_fills), "pending": dict(pending),
                "open": open_}

    def app(self) -> web.Application:
        """The HTTP app: metrics, health, API, board, and ``POST /ingest`` (HTTP push into the bus)."""
        app = make_app(self.engine, self.metrics, self.ready, self.status, self.config.http.token,
                       self.config.http.max_body_bytes)
        add_push_endpoint(app, self)
        return app
