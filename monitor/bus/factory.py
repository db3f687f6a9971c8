"""Picks the bus implementation a config names."""

from __future__ import annotations

from monitor.bus import Bus
from monitor.bus.kafka import KafkaBus
from monitor.bus.memory import MemoryBus
from monitor.config import Config


def make_bus(config: Config) -> Bus:
    """The bus named by config: ``memory`` or Kafka (kafka-python, or confluent-kafka)."""
    if config.kafka.backend == "memory":
        return MemoryBus(partitions=config.kafka.partitions)
    if config.kafka.backend == "confluent":
        # confluent-kafka is the optional extra ``fast``: imported only when chosen
        from monitor.bus.confluent import ConfluentBus

        return ConfluentBus(config.kafka)
    return KafkaBus(config.kafka)
