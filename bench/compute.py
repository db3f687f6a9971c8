"""Measurements 1 (compute path vs a bare orjson decode loop) and 5 (scrape vs static text).

Both run in this process on one core. The compute path is exactly what a Kafka consumer
does per record (``ConsumerRunner.apply_records``: decode, validate, dedupe, apply to the
engine, partition bookkeeping, lag histogram), fed with bus records built from the tape.
"""

from __future__ import annotations

import asyncio
import gc
import http.client
import threading
import time
from typing import Any

import orjson

from bench.common import best_of, median, percentile
from bench.tape import Rec
from monitor.bus import Record


def bus_records(recs: list[Rec], partitions: int = 6) -> list[Record]:
    from kafka.partitioner.default import murmur2

    parts: dict[bytes, int] = {}
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for topic, key, value, ts in recs:
        p = parts.get(key)
        if p is None:
            p = parts[key] = (murmur2(key) & 0x7FFFFFFF) % partitions
        off = offsets.get((topic, p), 0)
        offsets[(topic, p)] = off + 1
        out.append(Record(topic, p, off, key, value, ts))
    return out


def make_service() -> Any:
    """A Service on the in-memory bus (engine, validator, runner, registry as `fundflow consume` wires them)."""
    from monitor.bus.memory import MemoryBus
    from monitor.config import Config
    from monitor.service import Service

    cfg = Config()
    bus = MemoryBus(cfg.kafka.partitions)
    return Service(cfg, bus=bus, live_clock=False)


def run_compute(records: list[Record], repeat: int = 2) -> dict[str, Any]:
    values = [r.value for r in records]
    n = len(values)
    loads = orjson.loads

    def bare() -> float:
        t0 = time.perf_counter()
        for v in values:
            loads(v)
        return time.perf_counter() - t0

    bare_s = best_of(3 * repeat, bare)

    from monitor.events import KIND_OF_TOPIC

    svc = make_service()
    kinds = [KIND_OF_TOPIC[r.topic] for r in records]

    def validate_only() -> float:
        decode = svc.validator.decode
        t0 = time.perf_counter()
        for v, k in zip(values, kinds, strict=True):
            decode(v, k)
        return time.perf_counter() - t0

    validate_s = best_of(repeat, validate_only)

    best = float("inf")
    service = None
    for _ in range(repeat):
        svc = make_service()
        gc.collect()
        t0 = time.perf_counter()
        for i in range(0, n, 5000):  # the runner's poll batch
            svc.runner.apply_records(records[i:i + 5000])
        dt = time.perf_counter() - t0
        applied = sum(svc.engine.applied.values())
        if applied != n:
            raise RuntimeError(f"compute path applied {applied} of {n} events "
                               f"(rejected {dict(svc.stats.rejected)}, duplicates {dict(svc.engine.duplicates)})")
        if dt < best:
            best, service = dt, svc
    return {
        "events": n,
        "bare_decode_eps": n / bare_s,
        "decode_validate_eps": n / validate_s,
        "compute_eps": n / best,
        "ratio": (n / best) / (n / bare_s),
        "service": service,
    }


# -- scrape -------------------------------------------------------------------------------
class _Server:
    """Two aiohttp apps on free ports in a background thread: the real /metrics and a static text."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.ports: dict[str, int] = {}
        self.static_body = b""
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        from aiohttp import web
        from prometheus_client import CONTENT_TYPE_LATEST

        from harness.services import free_port
        from monitor.server import start_site

        self.static_body = self.svc.metrics.render()
        body = self.static_body

        async def static(request: web.Request) -> web.Response:
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        static_app = web.Application()
        static_app.router.add_get("/metrics", static)
        self.runners = []
        for name, app in (("metrics", self.svc.app()), ("static", static_app)):
            port = free_port()
            self.runners.append(await start_site(app, "127.0.0.1", port))
            self.ports[name] = port

    def __enter__(self) -> _Server:
        self.thread.start()
        self.ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for r in self.runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _scrape_times(port: int, n: int) -> tuple[list[float], int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, size = [], 0
    try:
        for _ in range(n + 1):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read()
            dt = time.perf_counter() - t0
            if resp.status != 200:
                raise RuntimeError(f"/metrics answered {resp.status}")
            times.append(dt)
            size = len(body)
    finally:
        conn.close()
    return times[1:], size  # the first one warms up


def run_scrape(svc: Any, n: int = 20) -> dict[str, Any]:
    etfs, stocks = len(svc.engine.etf), len(svc.engine.sb)
    with _Server(svc) as srv:
        dyn, size = _scrape_times(srv.ports["metrics"], n)
        static, static_size = _scrape_times(srv.ports["static"], n)
    series = sum(1 for line in srv.static_body.splitlines() if line and not line.startswith(b"#"))
    return {
        "etfs": etfs, "stocks": stocks, "bytes": size, "static_bytes": static_size, "series": series,
        "metrics_ms_median": median(dyn) * 1000, "metrics_ms_p95": percentile(dyn, 0.95) * 1000,
        "static_ms_median": median(static) * 1000,
        "ratio": median(dyn) / median(static),
    }
