"""WebSocket source against a local aiohttp server that drops the connection: reconnect and resubscribe."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from monitor.ingest.publisher import Publisher
from monitor.ingest.websocket import WebSocketOptions, WebSocketSource
from tests.ingest.conftest import FlakyBus, dead_letters, tick, trade


async def test_reconnect_and_resubscribe(publisher: Publisher, bus: FlakyBus) -> None:
    subscriptions: list[list[dict]] = []
    auth: list[str | None] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        auth.append(request.headers.get("Authorization"))
        conn = len(subscriptions)
        got: list[dict] = []
        subscriptions.append(got)
        msg = await ws.receive()
        assert msg.type == WSMsgType.TEXT
        got.append(orjson.loads(msg.data))
        await ws.send_str('{"type": "subscribed"}')
        await ws.send_str('{"type": "heartbeat"}')
        if conn == 0:
            await ws.send_bytes(orjson.dumps(trade(0)))
            await ws.send_str(orjson.dumps([trade(1), trade(2)]).decode())
            await ws.send_str("not json")
            await ws.close()  # the feed drops us
            return ws
        await ws.send_str(orjson.dumps({"events": [tick(1), tick(2)]}).decode())
        async for _ in ws:  # keep the connection open until the client leaves
            pass
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    async with TestServer(app) as server:
        opts = WebSocketOptions(url=str(server.make_url("/ws")).replace("http", "ws"),
                                subscribe=[{"op": "subscribe", "channels": ["trades", "southbound"]}],
                                token="tkn", backoff_initial_s=0.05, backoff_max_s=0.1)
        src = WebSocketSource(opts, publisher)
        stop = asyncio.Event()
        task = asyncio.create_task(src.run(stop))
        deadline = time.monotonic() + 5
        while len(bus.values("fundflow.southbound.flows")) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 3)
    assert subscriptions == [[{"op": "subscribe", "channels": ["trades", "southbound"]}]] * 2
    assert auth == ["Bearer tkn"] * 2
    assert src.connections == 2 and src.ignored == 4
    assert publisher.stats.reconnects["test"] == 1
    assert sorted(e["trade_id"] for e in bus.values("fundflow.etf.trades")) == ["t0", "t1", "t2"]
    assert [t["seq"] for t in bus.values("fundflow.southbound.flows")] == [1, 2]
    assert [(d["reason"], d["raw"]) for d in dead_letters(bus)] == [("bad_json", b"not json")]
    assert publisher.stats.rejected[("test", "bad_json")] == 1
