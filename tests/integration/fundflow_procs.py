"""Helpers for integration tests: produce simulated tapes to Kafka like an ingestor does, compare /metrics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.bus.kafka import KafkaBus
from monitor.calendars import default_calendars
from monitor.config import KafkaConfig
from monitor.events import Validator
from monitor.ingest.publisher import Publisher
from monitor.stats import PipelineStats


def produce(bootstrap: str, events: Iterable[Any], partitions: int = 6, raw: Iterable[tuple[str, bytes]] = ()) -> PipelineStats:
    """Validate and produce events (dicts) like an ingestor does; ``raw`` goes straight to topics (poison)."""
    cfg = KafkaConfig(bootstrap_servers=bootstrap, partitions=partitions)
    bus = KafkaBus(cfg)
    bus.ensure_topics()
    stats = PipelineStats()
    pub = Publisher(bus, Validator(default_calendars()), stats, "test")
    for obj in events:
        pub.publish_obj(obj)
    for topic, value in raw:
        bus.produce(topic, b"poison", value)
    bus.flush()
    bus.close()
    return stats


def business_lines(metrics_text: str) -> list[str]:
    """The business series of a /metrics page (pipeline counters differ between runs)."""
    keep = ("fundflow_etf_", "fundflow_southbound_")
    return sorted(line for line in metrics_text.splitlines() if line.startswith(keep))
