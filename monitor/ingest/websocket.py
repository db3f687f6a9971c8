"""WebSocket source (aiohttp client): connect, subscribe, parse frames; reconnect and resubscribe.

A frame is one JSON event, a JSON array of events, or an object carrying a
list under ``events`` / ``data``. Control frames (an object whose ``type`` is
in ``ignore_types``: heartbeats, subscription acks) are skipped. The
subscription messages are sent again after every reconnect. Back-pressure:
the next frame is read only after the previous one's events were accepted by
the sink, so a full buffer stops the reading (and TCP pushes back).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from monitor.ingest.options import opt
from monitor.ingest.publisher import Publisher
from monitor.ingest.retry import Backoff
from monitor.ingest.source import FeedSource, with_bearer

log = logging.getLogger("fundflow.ingest.websocket")


@dataclass
class WebSocketOptions:
    url: str = opt("", "ws:// or wss:// URL (required)")
    subscribe: list[Any] = opt(None, "messages sent after each connect, in order: JSON text, or a table in the "
                               "config file (sent as JSON)", factory=list)
    kind: str = opt("", "event kind of every event (empty: the kind field or the fields present decide)")
    headers: dict[str, str] = opt(None, "extra handshake headers (NAME=VALUE)", factory=dict, flag="--header")
    token: str = opt("", "bearer token sent on the handshake (prefer FUNDFLOW_SOURCES__<NAME>__TOKEN)", secret=True)
    type_field: str = opt("type", "field naming the type of a control frame")
    ignore_types: list[str] = opt(None, "control frame types that carry no events",
                                  factory=lambda: ["heartbeat", "ping", "pong", "subscribed", "ack", "info", "welcome"],
                                  flag="--ignore-type")
    heartbeat_s: float = opt(20.0, "WebSocket ping interval; a missing pong drops the connection (0: off)")
    connect_timeout_s: float = opt(10.0, "timeout of the connect + handshake")
    idle_timeout_s: float = opt(0.0, "reconnect when no frame arrived for this long (0: never)")
    backoff_initial_s: float = opt(0.5, "first reconnect delay; doubles per failed attempt, with jitter")
    backoff_max_s: float = opt(30.0, "reconnect delay cap")

    def check(self, where: str = "websocket") -> None:
        if not self.url.startswith(("ws://", "wss://", "http://", "https://")):
            raise ValueError(f"{where}.url is required (ws:// or wss://)")


class WebSocketSource(FeedSource[WebSocketOptions]):
    type = "websocket"

    def __init__(self, opts: WebSocketOptions, publisher: Publisher) -> None:
        super().__init__(opts, publisher)
        self.frames = 0
        self.ignored = 0

    def _headers(self) -> dict[str, str]:
        return with_bearer(dict(self.opts.headers), self.opts.token)

    async def run(self, stop: asyncio.Event) -> None:
        o = self.opts

        def failed(exc: BaseException) -> bool:
            if not isinstance(exc, (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)):
                return False
            log.warning("%s: %s: %s", self.name, o.url, str(exc) or type(exc).__name__)
            return True

        async with aiohttp.ClientSession() as session:
            await self.connect_forever(stop, lambda backoff: self._connection(session, stop, backoff), failed)

    async def _connection(self, session: aiohttp.ClientSession, stop: asyncio.Event, backoff: Backoff) -> None:
        o = self.opts
        connect = session.ws_connect(o.url, headers=self._headers(), heartbeat=o.heartbeat_s or None,
                                     max_msg_size=64 * 1024 * 1024)
        ws = await asyncio.wait_for(connect, o.connect_timeout_s) if o.connect_timeout_s > 0 else await connect
        async with ws:
            for msg in o.subscribe:
                await ws.send_str(msg if isinstance(msg, str) else orjson.dumps(msg).decode())
            self.connections += 1
            self.mark_up(backoff)
            log.info("%s: connected to %s (%d subscription message(s))", self.name, o.url, len(o.subscribe))
            await self.read_until_stopped(self._read(ws), stop)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        o = self.opts
        kind = o.kind or None
        while True:
            if o.idle_timeout_s > 0:
                msg = await asyncio.wait_for(ws.receive(), o.idle_timeout_s)
            else:
                msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                self.frames += 1
                data = msg.data.encode() if isinstance(msg.data, str) else msg.data
                await self.handle_frame(data, kind)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise ConnectionError(f"server closed the connection ({ws.close_code})")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise ConnectionError(f"websocket error: {ws.exception()!r}")

    async def handle_frame(self, data: bytes, kind: str | None) -> None:
        publisher = self.publisher
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            await publisher.apublish_payload(data, kind)  # dead-letters it as bad_json
            return
        if isinstance(value, dict):
            if value.get(self.opts.type_field) in self.opts.ignore_types:
                self.ignored += 1
                return
            for key in ("events", "data"):
                inner = value.get(key)
                if isinstance(inner, list):
                    await publisher.apublish_values(inner, kind)
                    return
            await publisher.apublish_obj(value, data, kind)
            return
        if isinstance(value, list):
            await publisher.apublish_values(value, kind)
            return
        await publisher.apublish_obj(value, data, kind)
