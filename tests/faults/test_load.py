"""Load: 200 concurrent clients scrape /metrics and call /api/v1 while 5,000 events/s are ingested.

``fundflow ingest push`` takes the events (NDJSON bodies, 500 per 100 ms); ``fundflow consume`` applies
them and serves the 200 clients. No response may be an error (non-2xx, reset, timeout); the p99 scrape
latency is printed. 30 s under CI (as issue 10 says); 10 s otherwise, or FUNDFLOW_FAULT_LOAD_SECONDS.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter

import aiohttp
import orjson

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.metrics import sample_sum
from harness.services import wait_until
from tests.faults import badinput
from tests.faults.pipeline import clean_run, wait_drained

CLIENTS = 200
RATE = 5_000  # events per second
BODY = 500  # events per POST
SECONDS = float(os.environ.get("FUNDFLOW_FAULT_LOAD_SECONDS") or (30 if os.environ.get("CI") else 10))
PATHS = ["/metrics", "/api/v1/symbols", "/api/v1/symbols/513770.SH", "/api/v1/flows?market=SH&window=1d",
         "/api/v1/streaks?min_days=0", "/api/v1/status", "/metrics"]


def event(i: int) -> dict:
    ev = badinput.good_trade(i, "load")
    ev["ts"] = badinput.OPEN + (i * 80) % 19_000_000  # inside the 2025-09-12 session and its margins
    return ev


def test_200_clients_while_ingesting_5000_events_per_second(kafka_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    consumer = ConsumerProc(kb.bootstrap, "load", tmp_path / "consumer.log").start()
    push = IngestProc("push", kb.bootstrap, tmp_path / "push.log").start()
    try:
        consumer.wait_ready(90)
        push.wait_http()
        total = int(RATE * SECONDS)
        events = [event(i) for i in range(total)]
        bodies = [b"\n".join(orjson.dumps(e) for e in events[i:i + BODY]) for i in range(0, total, BODY)]
        # the first body before the clients start, so every symbol they ask for exists (no 404)
        assert http("POST", push.url + "/ingest?wait=true", bodies[0])[0] == 202
        wait_until(lambda: len(consumer.json("/api/v1/symbols")["symbols"]) == len(badinput.ETFS), 60, "symbols known")
        result = asyncio.run(_run(consumer.url, push.url, bodies[1:]))
        lat = sorted(result["metrics_latency"])
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
        rate = (total - BODY) / result["ingest_seconds"]
        print(f"\nload: {CLIENTS} clients for {SECONDS:g}s: {result['requests']:,} requests, {len(lat):,} scrapes, "
              f"scrape latency p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms max {lat[-1] * 1000:.0f} ms; "
              f"ingested {total:,} events at {rate:,.0f}/s; errors {dict(result['errors'])}")
        assert not result["errors"], result["errors"]
        assert result["ingest_status"] == {202: len(bodies) - 1}
        assert rate >= 0.9 * RATE, f"ingest only reached {rate:,.0f} events/s"
        wait_until(lambda: sample_sum(push.metrics(), "fundflow_ingest_buffered_events") == 0, 60, "push buffer empty")
        status = wait_drained(consumer, total, 120)
        assert status["events"]["applied"] == total and status["events"]["duplicates"] == 0
        assert consumer.documents() == clean_run(events)["documents"]
        assert consumer.alive() and push.alive()
        assert push.stop() == 0 and consumer.stop() == 0
    finally:  # a failed assertion must not leave the processes running
        push.stop()
        consumer.stop()
    ledger.add("load (200 clients)", in_=total, applied=total,
               note=f"{result['requests']:,} requests, 0 errors, scrape p99 {p99 * 1000:.0f} ms")
    ledger.note(f"load: scrape latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms over {len(lat):,} scrapes "
                f"by {CLIENTS} clients in {SECONDS:g}s while ingesting {rate:,.0f} events/s")


async def _run(api: str, ingest: str, bodies: list[bytes]) -> dict:
    errors: Counter[str] = Counter()
    metrics_latency: list[float] = []
    requests = 0
    ingest_status: Counter[int] = Counter()
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False),
                                     timeout=timeout) as session:

        async def client(n: int) -> None:
            nonlocal requests
            i = n
            while not stop.is_set():
                path = PATHS[i % len(PATHS)]
                i += 1
                t0 = time.perf_counter()
                try:
                    async with session.get(api + path) as resp:
                        await resp.read()
                        if resp.status != 200:
                            errors[f"{path} {resp.status}"] += 1
                except Exception as exc:  # noqa: BLE001 - every failure is an error response
                    errors[f"{path} {type(exc).__name__}"] += 1
                    continue
                requests += 1
                if path == "/metrics":
                    metrics_latency.append(time.perf_counter() - t0)

        async def feed() -> float:
            t0 = time.perf_counter()
            interval = BODY / RATE
            for k, body in enumerate(bodies):
                delay = t0 + k * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                async with session.post(ingest + "/ingest", data=body) as resp:
                    await resp.read()
                    ingest_status[resp.status] += 1
            return time.perf_counter() - t0

        clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
        ingest_seconds = await feed()
        stop.set()
        await asyncio.gather(*clients)
    return {"errors": errors, "metrics_latency": metrics_latency, "requests": requests,
            "ingest_status": dict(ingest_status), "ingest_seconds": max(ingest_seconds, SECONDS)}
