"""HTTP poll against a local aiohttp server that fails, times out and changes its ETag."""

from __future__ import annotations

import asyncio
import time
from itertools import pairwise

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.ingest.http_poll import HttpPollOptions, HttpPollSource
from monitor.ingest.publisher import Publisher
from tests.ingest.conftest import TS_HK, FlakyBus, dead_letters, trade


class Feed:
    """Answers per request from a script: 'error', 'slow', or a document version."""

    def __init__(self, script: list[str], docs: dict[str, object]) -> None:
        self.script = script
        self.docs = docs
        self.requests: list[tuple[float, str, str | None]] = []  # (time, what, If-None-Match)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        step = self.script.pop(0) if self.script else "idle"
        inm = request.headers.get("If-None-Match")
        self.requests.append((time.monotonic(), step, inm))
        if step == "error":
            return web.Response(status=500, text="upstream broke")
        if step == "slow":
            await asyncio.sleep(1.0)
            return web.Response(status=200, text="[]")
        if step == "idle":
            step = list(self.docs)[-1]
        etag = f'"{step}"'
        if inm == etag:
            return web.Response(status=304)
        return web.Response(body=orjson.dumps(self.docs[step]), content_type="application/json",
                            headers={"ETag": etag})


async def run_until(src: HttpPollSource, cond, timeout: float = 8.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(src.run(stop))
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 3)
    assert cond()


async def test_errors_timeouts_etag_no_duplicates(publisher: Publisher, bus: FlakyBus) -> None:
    docs = {"v1": [trade(0), trade(1)], "v2": {"events": [trade(1), trade(2), {"kind": "trade", "bad": 1}]}}
    feed = Feed(["error", "error", "v1", "v1", "slow", "v2"], docs)
    app = web.Application()
    app.router.add_get("/feed", feed.handle)
    async with TestServer(app) as server:
        opts = HttpPollOptions(url=str(server.make_url("/feed")), interval_s=0.05, timeout_s=0.3,
                               backoff_initial_s=0.1, backoff_max_s=0.4)
        src = HttpPollSource(opts, publisher)
        await run_until(src, lambda: len(feed.requests) >= 8)
    assert await publisher.sink.wait_empty(5)
    # the right events, each once, although v2 repeats t1 and the server sent v1 twice
    assert sorted(e["trade_id"] for e in bus.values("fundflow.etf.trades")) == ["t0", "t1", "t2"]
    assert [d["reason"] for d in dead_letters(bus)] == ["missing_field"]
    steps = [(what, inm) for _, what, inm in feed.requests]
    assert steps[:6] == [("error", None), ("error", None), ("v1", None), ("v1", '"v1"'), ("slow", '"v1"'),
                         ("v2", '"v1"')]
    assert steps[6][1] == '"v2"' and src.not_modified >= 2
    # backoff observed: the retry after the 2nd failure waited longer than the normal interval
    gaps = [b[0] - a[0] for a, b in pairwise(feed.requests)]
    assert 0.05 <= gaps[0] <= 0.2 and 0.1 <= gaps[1] <= 0.35
    assert gaps[4] >= 0.3 + 0.05  # a 0.3 s timeout, then a backoff delay
    assert src.failures == 3 and publisher.stats.reconnects["test"] == 3
    assert publisher.stats.connected["test"] is False  # stopped


async def test_southbound_snapshot_adapter(publisher: Publisher, bus: FlakyBus) -> None:
    def snap(buy: float) -> dict:
        return {"ts": TS_HK, "channel": "SZ", "stocks": [{"symbol": "9988", "buy_hkd": buy, "sell_hkd": 5.0}]}

    docs = {"a": snap(100.0), "b": snap(160.0)}
    feed = Feed(["a", "b"], docs)
    app = web.Application()
    app.router.add_get("/sb", feed.handle)
    async with TestServer(app) as server:
        opts = HttpPollOptions(url=str(server.make_url("/sb")), adapter="southbound_snapshot", interval_s=0.05)
        src = HttpPollSource(opts, publisher)
        await run_until(src, lambda: len(feed.requests) >= 4)
    assert await publisher.sink.wait_empty(5)
    ticks = bus.values("fundflow.southbound.flows")
    assert [(t["symbol"], t["channel"], t["seq"]) for t in ticks] == [("09988.HK", "SZ", 1), ("09988.HK", "SZ", 2)]
    assert [(t["buy_hkd"], t["sell_hkd"]) for t in ticks] == [(100.0, 5.0), (60.0, 0.0)]
