"""MQTT source (aiomqtt): QoS 1, persistent session, acknowledgement after Kafka has the events.

The session is persistent (clean_session off, fixed client id), so messages
published while the ingestor is down wait at the broker. A message is
acknowledged (PUBACK) only once every record it produced has been acknowledged
by the bus (``ack = "produced"``, the default), so neither a Kafka outage nor
a crash of this process loses a QoS 1 message: unacknowledged messages are
delivered again on the next connection. The broker's in-flight window
(Mosquitto ``max_inflight_messages``) bounds how many unacknowledged messages
it sends, which is also the back-pressure: a full sink stops the reading, the
window fills, the broker queues.

aiomqtt does not expose paho's manual acknowledgement yet (aiomqtt issue
#345); the paho client underneath is used for it, and without it the source
falls back to paho's automatic acknowledgement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import aiomqtt

from monitor.config import Config
from monitor.ingest.options import apply_mapping, opt
from monitor.ingest.publisher import Publisher
from monitor.ingest.retry import Backoff
from monitor.ingest.source import FeedSource

log = logging.getLogger("fundflow.ingest.mqtt")


@dataclass
class MqttOptions:
    host: str = opt("127.0.0.1", "broker host")
    port: int = opt(1883, "broker port (8883 is usual with TLS)")
    topics: list[str] = opt(None, "topic filters to subscribe to",
                            factory=lambda: ["md/etf/trades/#", "md/etf/units/#", "md/etf/iopv/#", "md/southbound/#"],
                            flag="--topic")
    kinds: dict[str, str] = opt(None, "event kind per topic filter (FILTER=KIND) for payloads without a kind field; "
                                "otherwise the kind field or the fields present decide", factory=dict, flag="--kind")
    client_id: str = opt("fundflow-ingest", "fixed client id: the broker keeps the session (and queues QoS 1 "
                         "messages) under it while the ingestor is away; unique per ingestor")
    clean_session: bool = opt(False, "start a clean session (drops what the broker queued for this client id)")
    qos: int = opt(1, "subscription QoS (1: at least once)")
    ack: str = opt("produced", "when a message is acknowledged to the broker: 'produced' (after Kafka acknowledged "
                   "its events; survives a crash) or 'accepted' (once buffered in this process)")
    username: str = opt("", "username (empty: anonymous)")
    password: str = opt("", "password (prefer FUNDFLOW_MQTT__PASSWORD or FUNDFLOW_SOURCES__<NAME>__PASSWORD)",
                        secret=True)
    tls: bool = opt(False, "connect with TLS")
    tls_ca: str = opt("", "CA bundle file to verify the broker (empty: system CAs)")
    tls_certfile: str = opt("", "client certificate file (mutual TLS)")
    tls_keyfile: str = opt("", "client private key file (mutual TLS)")
    tls_insecure: bool = opt(False, "do not verify the broker's host name (testing only)")
    keepalive_s: int = opt(30, "MQTT keepalive in seconds")
    connect_timeout_s: float = opt(10.0, "timeout for connecting and subscribing")
    backoff_initial_s: float = opt(0.5, "first reconnect delay; doubles per failed attempt, with jitter")
    backoff_max_s: float = opt(30.0, "reconnect delay cap")

    @classmethod
    def from_config(cls, config: Config, table: dict[str, Any] | None = None,
                    where: str = "sources.mqtt") -> MqttOptions:
        """Defaults from the ``[mqtt]`` section, then the source's own table."""
        o = cls()
        base = dataclasses.asdict(config.mqtt)
        for k in ("host", "port", "topics", "client_id", "username", "password", "tls", "tls_ca", "qos",
                  "backoff_max_s"):
            if k in base:
                setattr(o, k, base[k])
        if table:
            apply_mapping(o, table, where, ignore=("type", "enabled"))
        return o

    def check(self, where: str = "mqtt") -> None:
        if self.ack not in ("produced", "accepted"):
            raise ValueError(f"{where}.ack must be 'produced' or 'accepted'")
        if self.qos not in (0, 1, 2):
            raise ValueError(f"{where}.qos must be 0, 1 or 2")
        if not self.topics:
            raise ValueError(f"{where}.topics: give at least one topic filter")
        if not self.clean_session and not self.client_id:
            raise ValueError(f"{where}.client_id is required for a persistent session")


class MqttSource(FeedSource[MqttOptions]):
    type = "mqtt"

    def __init__(self, opts: MqttOptions, publisher: Publisher) -> None:
        super().__init__(opts, publisher)
        self.generation = 0  # connection number: acks of an older connection are dropped
        self.messages = 0

    def _tls(self) -> ssl.SSLContext | None:
        o = self.opts
        if not o.tls:
            return None
        ctx = ssl.create_default_context(cafile=o.tls_ca or None)
        if o.tls_certfile:
            ctx.load_cert_chain(o.tls_certfile, o.tls_keyfile or None)
        if o.tls_insecure:
            ctx.check_hostname = False
        return ctx

    def _client(self) -> aiomqtt.Client:
        o = self.opts
        return aiomqtt.Client(
            o.host, o.port, identifier=o.client_id, clean_session=o.clean_session,
            username=o.username or None, password=o.password or None, keepalive=o.keepalive_s,
            timeout=o.connect_timeout_s, tls_context=self._tls(), logger=log,
        )

    def _kind_for(self, topic: aiomqtt.Topic) -> str | None:
        for flt, kind in self.opts.kinds.items():
            if topic.matches(flt):
                return kind
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, subscribe, read until ``stop``; reconnect with capped backoff and jitter."""
        o = self.opts

        def failed(exc: BaseException) -> bool:
            if isinstance(exc, aiomqtt.MqttError):
                log.warning("%s: MQTT %s:%d: %s", self.name, o.host, o.port, exc)
            elif isinstance(exc, ssl.SSLError):
                log.error("%s: TLS to %s:%d failed: %s", self.name, o.host, o.port, exc)
            else:
                return False
            return True

        await self.connect_forever(stop, lambda backoff: self._session(stop, backoff), failed)

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        o = self.opts
        client = self._client()
        paho = getattr(client, "_client", None)
        manual = o.qos > 0 and o.ack == "produced" and paho is not None and hasattr(paho, "manual_ack_set")
        if manual and paho is not None:
            paho.manual_ack_set(True)
        async with client:
            self.generation += 1
            self.connections += 1
            gen = self.generation
            await client.subscribe([(t, o.qos) for t in o.topics], timeout=o.connect_timeout_s)
            self.mark_up(backoff)
            log.info("%s: connected to %s:%d as %s, subscribed to %s", self.name, o.host, o.port, o.client_id,
                     ", ".join(o.topics))
            await self.read_until_stopped(self._read(client, paho if manual else None, gen), stop)
            # stopping: keep the connection until what was read is in Kafka, so it gets acknowledged
            sink = self.publisher.sink
            if manual and sink is not None and sink.pending:
                if not await sink.wait_empty(timeout=30):
                    log.warning("%s: disconnecting with %d record(s) unacknowledged; the broker will deliver "
                                "their messages again", self.name, sink.pending)

    async def _read(self, client: aiomqtt.Client, paho: Any, gen: int) -> None:
        publisher = self.publisher
        async for msg in client.messages:
            self.messages += 1
            kind = self._kind_for(msg.topic) if self.opts.kinds else None
            on_done = None
            if paho is not None and msg.qos > 0:
                on_done = self._acker(paho, msg.mid, msg.qos, gen)
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
            await publisher.apublish_payload(payload, kind, on_done)

    def _acker(self, paho: Any, mid: int, qos: int, gen: int) -> Any:
        def ack() -> None:
            if gen == self.generation and self.stats.connected.get(self.name):
                paho.ack(mid, qos)

        return ack
