"""POST /ingest on the service app: 202 with counts, 400 with reasons, 413, 401; dead letters counted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from harness.metrics import sample_value
from monitor.bus.memory import MemoryBus
from monitor.config import Config
from monitor.events import TOPICS
from monitor.service import Service
from tests.ingest.conftest import dead_letters, tick, trade


def make_service(token: str = "", max_body: int = 64 * 1024) -> Service:
    cfg = Config()
    cfg.http.token = token
    cfg.http.max_body_bytes = max_body
    bus = MemoryBus(3)
    bus.ensure_topics()
    return Service(cfg, bus=bus)


@pytest.fixture
async def svc_client():
    svc = make_service()
    client = TestClient(TestServer(svc.app()))
    await client.start_server()
    yield svc, client
    await client.close()


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout * 100)):
        if cond():
            return
        await asyncio.sleep(0.01)
    assert cond()


def topic_values(svc: Service, kind: str) -> list[dict]:
    return [orjson.loads(r.value) for r in svc.bus.read_partitions(TOPICS[kind], range(svc.bus.partitions))]


async def test_good_batch_json_array_and_ndjson(svc_client) -> None:
    svc, client = svc_client
    resp = await client.post("/ingest?wait=true", data=orjson.dumps([trade(i) for i in range(5)]))
    assert resp.status == 202
    assert await resp.json() == {"accepted": 5, "rejected": 0, "reasons": [], "durable": True}
    body = b"\n".join(orjson.dumps(tick(s)) for s in (1, 2, 3)) + b"\n"
    resp = await client.post("/ingest?wait=1", data=body, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status == 202 and (await resp.json())["accepted"] == 3
    assert sorted(e["trade_id"] for e in topic_values(svc, "trade")) == [f"t{i}" for i in range(5)]
    assert len(topic_values(svc, "southbound")) == 3
    assert svc.stats.ingested[("push", "trade")] == 5


async def test_half_bad_batch_dead_letters_each_bad_one(svc_client) -> None:
    svc, client = svc_client
    bad_price = dict(trade(1), price="x")
    no_symbol = {k: v for k, v in trade(2).items() if k != "symbol"}
    lines = [orjson.dumps(trade(0)), orjson.dumps(bad_price), b"{not json", orjson.dumps(no_symbol),
             orjson.dumps(trade(4))]
    resp = await client.post("/ingest?wait=true", data=b"\n".join(lines))
    assert resp.status == 202
    doc = await resp.json()
    assert (doc["accepted"], doc["rejected"]) == (2, 3)
    assert [(r["index"], r["reason"]) for r in doc["reasons"]] == [(1, "wrong_type"), (2, "bad_json"),
                                                                  (3, "missing_field")]
    assert all(r["detail"] for r in doc["reasons"])
    letters = dead_letters(svc.bus)
    assert sorted(d["reason"] for d in letters) == ["bad_json", "missing_field", "wrong_type"]
    assert {d["source"] for d in letters} == {"push"}
    assert b"{not json" in [d["raw"] for d in letters]  # the original bytes
    assert svc.stats.rejected[("push", "wrong_type")] == 1
    text = svc.metrics.render().decode()
    assert sample_value(text, "fundflow_events_rejected_total", {"reason": "bad_json", "source": "push"}) == 1
    assert sample_value(text, "fundflow_events_ingested_total", {"kind": "trade", "source": "push"}) == 2


async def test_garbage_is_400_with_reasons_and_dead_lettered(svc_client) -> None:
    svc, client = svc_client
    for body in (b"\x00\xffgarbage", b"[1, 2", b"   "):
        resp = await client.post("/ingest", data=body)
        assert resp.status == 400
        doc = await resp.json()
        assert doc["accepted"] == 0 and doc["reasons"][0]["reason"] == "bad_json" and doc["reasons"][0]["detail"]
    await wait_for(lambda: len(dead_letters(svc.bus)) == 3)  # the sink drains in the background
    assert svc.stats.rejected[("push", "bad_json")] == 3


async def test_too_large_is_413() -> None:
    svc = make_service(max_body=1024)
    async with TestClient(TestServer(svc.app())) as client:
        resp = await client.post("/ingest", data=b"[" + b" " * 4096 + b"]")
        assert resp.status == 413
        assert (await resp.json())["error"]["status"] == 413
        resp = await client.post("/ingest", data=orjson.dumps([trade(0)]))
        assert resp.status == 202


async def test_token_required() -> None:
    svc = make_service(token="s3cret")
    async with TestClient(TestServer(svc.app())) as client:
        body = orjson.dumps([trade(0)])
        assert (await client.post("/ingest", data=body)).status == 401
        wrong = await client.post("/ingest", data=body, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
        ok = await client.post("/ingest?wait=true", data=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 202 and (await ok.json())["accepted"] == 1
    assert len(topic_values(svc, "trade")) == 1
