"""Helpers for the real-broker ingest tests: an in-process ingest stack, a QoS 1 publisher, a topic reader."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import paho.mqtt.client as mqtt

from monitor.bus.kafka import KafkaBus
from monitor.config import KafkaConfig
from monitor.ingest.mqtt import MqttOptions, MqttSource
from monitor.ingest.publisher import Publisher
from monitor.ingest.sink import Sink
from monitor.stats import PipelineStats
from tests.ingest.conftest import validator


class Stack:
    """KafkaBus + Sink + Publisher, as `fundflow ingest` wires them."""

    def __init__(self, bootstrap: str, source: str = "mqtt", max_events: int = 100_000,
                 flush_timeout_s: float = 10.0) -> None:
        self.bus = KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, linger_ms=5))
        self.stats = PipelineStats()
        self.sink = Sink(self.bus, self.stats, max_events=max_events, flush_timeout_s=flush_timeout_s,
                         backoff_initial_s=0.1, backoff_max_s=0.5)
        self.publisher = Publisher(self.bus, validator(), self.stats, source, self.sink)

    async def __aenter__(self) -> Stack:
        await asyncio.get_running_loop().run_in_executor(None, self.bus.ensure_topics)
        await self.sink.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sink.close(timeout=30)
        await asyncio.get_running_loop().run_in_executor(None, self.bus.close)


class Running:
    """A source task that can be stopped and awaited."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(source.run(self.stop))

    async def close(self, timeout: float = 30) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, timeout)


def mqtt_source(stack: Stack, broker: Any, topics: list[str], client_id: str, **kw: Any) -> MqttSource:
    opts = MqttOptions(host=broker.host, port=broker.port, topics=topics, client_id=client_id,
                       backoff_initial_s=0.1, backoff_max_s=0.5, connect_timeout_s=5, **kw)
    opts.check()
    return MqttSource(opts, stack.publisher)


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class QosPublisher:
    """A paho publisher with a persistent session: QoS 1 messages published while the broker is down
    are queued by paho and sent on reconnect."""

    def __init__(self, broker: Any, **auth: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}",
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(0.1, 0.5)
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "publisher did not connect"
        self.infos: list[Any] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.infos.append(self.client.publish(topic, payload, qos=1))

    def wait(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for info in self.infos:
            info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
            assert info.is_published(), "a QoS 1 publish was not acknowledged by the broker"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def read_topic(bootstrap: str, topic: str, keep: Callable[[dict], bool], expected: int,
               timeout: float = 30.0) -> list[Any]:
    """Records of ``topic`` (all partitions, from the beginning) whose JSON value passes ``keep``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        ends = consumer.end_offsets(tps)
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300, max_records=20_000).values():
                out.extend(r for r in batch if keep(orjson.loads(r.value)))
            if len(out) >= expected and all(consumer.position(tp) >= ends[tp] for tp in tps):
                ends = consumer.end_offsets(tps)  # anything produced since
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
        return out
    finally:
        consumer.close()
