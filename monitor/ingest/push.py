"""HTTP push source: ``POST /ingest`` on the service's aiohttp app.

The body is NDJSON (one event per line) or a JSON array of events.

- 202 ``{"accepted": n, "rejected": m, "reasons": [{"index", "reason", "detail"}, ...]}``:
  the good events are accepted, every bad one is dead-lettered with its
  reason (``index`` is the position in the array, or the line number from 0);
- 400 with the reasons when the body cannot be parsed at all (not a JSON
  array, no NDJSON line parses, empty); it is dead-lettered too, truncated;
- 413 when the body exceeds the app's ``client_max_size`` (``[http] max_body_bytes``);
- 401 without the right bearer token (the app's auth middleware, ``[http] token``);
- 503 with ``Retry-After`` while the bus is not acknowledging writes (brokers
  down, fewer in-sync replicas than ``min.insync.replicas``): the body is not
  taken, so the client keeps it and sends it again, instead of this process
  holding events it cannot make durable. (A full buffer while the bus is up
  makes the request wait: back-pressure.)

``?wait=true`` answers only once the bus has acknowledged every record of
the body (``"durable": true`` in the answer), for clients that must not
lose a batch when this process dies right after the 202.

Wiring: ``monitor.ingest.runner.add_push_endpoint(app, service)`` (what
``Service.app()`` does) or ``add_ingest_routes(app, publisher)`` before the
app starts; the records go through the bus's shared sink, started with the
app and flushed on clean-up, so request handlers never block the loop on the
bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from monitor.events import Rejected
from monitor.ingest.options import opt
from monitor.ingest.publisher import MAX_REPORTED_ERRORS, BatchResult, Publisher, dump
from monitor.ingest.sink import Sink, SinkClosed, release_sink, shared_sink
from monitor.server import json_error, json_response

log = logging.getLogger("fundflow.ingest.push")

PUBLISHER = web.AppKey("ingest_publisher", Publisher)
OWN_SINK = web.AppKey("ingest_own_sink", object)


@dataclass
class PushOptions:
    path: str = opt("/ingest", "URL path of the endpoint (keep it under /ingest: the bearer token covers /ingest*)")
    kind: str = opt("", "event kind of every event (empty: the kind field or the fields present decide)")
    wait_timeout_s: float = opt(30.0, "with ?wait=true: how long to wait for the bus before answering 504")

    def check(self, where: str = "push") -> None:
        if not self.path.startswith("/ingest"):
            raise ValueError(f"{where}.path must start with /ingest (the bearer token covers /ingest*)")


class _Waiter:
    """Resolves a future once ``n`` records are acknowledged."""

    def __init__(self) -> None:
        self.fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.n = 0
        self.sealed = False

    def add(self) -> Any:
        self.n += 1
        return self._one

    def _one(self) -> None:
        self.n -= 1
        if self.sealed and self.n == 0 and not self.fut.done():
            self.fut.set_result(None)

    def seal(self) -> None:
        self.sealed = True
        if self.n == 0 and not self.fut.done():
            self.fut.set_result(None)


def parse_body(body: bytes) -> tuple[list[tuple[int, Any, bytes | None]], list[dict[str, Any]], bool]:
    """(values with their index and raw line, line errors, parseable at all)."""
    text = body.strip()
    if not text:
        return [], [{"index": 0, "reason": "bad_json", "detail": "empty body"}], False
    if text.startswith(b"["):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return [], [{"index": 0, "reason": "bad_json", "detail": f"not a JSON array: {str(exc)[:120]}"}], False
        if not isinstance(value, list):
            return [], [{"index": 0, "reason": "bad_json", "detail": "not a JSON array"}], False
        return [(i, v, None) for i, v in enumerate(value)], [], True
    values: list[tuple[int, Any, bytes | None]] = []
    errors: list[dict[str, Any]] = []
    for i, line in enumerate(text.split(b"\n")):
        line = line.strip()
        if not line:
            continue
        try:
            values.append((i, orjson.loads(line), line))
        except orjson.JSONDecodeError as exc:
            errors.append({"index": i, "reason": "bad_json", "detail": str(exc)[:120], "raw": line})
    return values, errors, bool(values)


RETRY_AFTER_S = 2


def _unavailable(sink: Sink | None) -> str | None:
    """Why a body cannot be taken now (None: it can)."""
    if sink is None:
        return None
    if not sink.healthy:
        return f"the bus is not acknowledging writes ({sink.last_error or 'unavailable'}); retry later"
    return None


async def ingest(request: web.Request) -> web.Response:
    publisher = request.app[PUBLISHER]
    opts: PushOptions = request.app[OPTIONS]
    busy = _unavailable(publisher.sink)
    if busy is not None:
        with contextlib.suppress(web.HTTPRequestEntityTooLarge):
            await request.read()  # drain the body so the connection can be reused for the retry
        resp = json_error(503, busy)
        resp.headers["Retry-After"] = str(RETRY_AFTER_S)
        return resp
    limit = request.app._client_max_size  # noqa: SLF001 - the same limit aiohttp enforces on read()
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, f"body of {request.content_length} bytes exceeds {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return json_error(413, f"body exceeds {limit} bytes")
    values, line_errors, ok = parse_body(body)
    cap = publisher.validator.max_payload_bytes
    if not ok:
        detail = line_errors[0]["detail"] if line_errors else "unparseable"
        try:
            await publisher.areject(body[:cap], "bad_json", f"push body: {detail}")
        except SinkClosed:
            return json_error(503, "shutting down")
        reasons = [{k: v for k, v in e.items() if k != "raw"} for e in line_errors[:MAX_REPORTED_ERRORS]]
        return json_response({"error": {"status": 400, "message": "body is neither a JSON array nor NDJSON"},
                              "accepted": 0, "rejected": max(1, len(line_errors)), "reasons": reasons}, 400)
    wait = request.query.get("wait", "").lower() in ("1", "true", "yes")
    waiter = _Waiter() if wait else None
    result = BatchResult()
    kind = opts.kind or None
    try:
        for e in line_errors:
            result.add_error(e["index"], e["reason"], e["detail"])
            await publisher.areject(e["raw"][:cap], e["reason"], e["detail"], waiter.add() if waiter else None)
        for index, value, raw in values:
            raw = raw if raw is not None else dump(value)  # array elements: sized like lines
            try:
                ev = publisher.check_obj(value, raw, kind)
            except Rejected as exc:
                result.add_error(index, exc.reason, exc.detail)
                await publisher.areject(raw[:cap], exc.reason, exc.detail, waiter.add() if waiter else None)
                continue
            await publisher.emit(ev, waiter.add() if waiter else None)
            result.accepted += 1
    except SinkClosed:
        return json_error(503, "shutting down")
    doc: dict[str, Any] = {"accepted": result.accepted, "rejected": result.rejected,
                           "reasons": sorted(result.errors, key=lambda e: e["index"])}
    if waiter is not None:
        waiter.seal()
        try:
            await asyncio.wait_for(asyncio.shield(waiter.fut), opts.wait_timeout_s)
        except TimeoutError:
            doc["durable"] = False
            return json_response(doc, 504)
        doc["durable"] = True
    return json_response(doc, 202)


OPTIONS = web.AppKey("ingest_options", PushOptions)


def add_ingest_routes(app: web.Application, publisher: Publisher, options: PushOptions | None = None,
                      buffer_max_events: int = 100_000) -> None:
    """Add ``POST /ingest`` (or ``options.path``) to ``app``, for a plain publisher.

    Call before the app starts. The token check is the app's auth middleware
    (``make_app(..., token=...)`` protects every path starting with /ingest).
    Without a sink the publisher gets its bus's shared sink on start-up, so
    handlers never block the loop on the bus.
    """
    opts = options or PushOptions()
    app[PUBLISHER] = publisher
    app[OPTIONS] = opts
    app.router.add_post(opts.path, ingest)
    if publisher.sink is not None:
        return

    async def start_sink(app: web.Application) -> None:
        publisher.sink = await shared_sink(publisher.bus, publisher.stats, max_events=buffer_max_events)
        app[OWN_SINK] = publisher.sink

    async def stop_sink(app: web.Application) -> None:
        sink = app.get(OWN_SINK)
        if isinstance(sink, Sink):
            await release_sink(sink)
            publisher.sink = None

    app.on_startup.append(start_sink)
    app.on_cleanup.append(stop_sink)
