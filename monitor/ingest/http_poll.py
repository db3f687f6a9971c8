"""HTTP poll source (aiohttp client): GET a JSON endpoint on an interval.

Conditional requests (``If-None-Match`` with the last ETag, ``If-Modified-Since``
with the last ``Last-Modified``) make an unchanged document a cheap 304. A
failure (connection error, timeout, 5xx, 429, an unexpected status) is retried
after a capped, jittered exponential backoff instead of the normal interval;
the validators of a document are remembered only once its events are handed
on, so a document is never skipped. Events already published by an earlier
poll (the same trade_id, the same stock/channel/seq, ...) are dropped, so an
endpoint that returns the last N events each time does not duplicate them.

Back-pressure: the next poll starts only after the previous document's events
were accepted by the sink, so a full buffer pauses the polling.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from monitor.events import Rejected
from monitor.ingest.adapters import SnapshotTracker, dedupe_key, events_from_document
from monitor.ingest.options import opt
from monitor.ingest.publisher import Publisher
from monitor.ingest.retry import sleep_or_stop
from monitor.ingest.source import FeedSource, with_bearer

log = logging.getLogger("fundflow.ingest.http_poll")

ADAPTERS = ("events", "southbound_snapshot")


@dataclass
class HttpPollOptions:
    url: str = opt("", "URL of the JSON document to poll (required)")
    adapter: str = opt("events", "how the document maps to events: 'events' (an array of events, or an object "
                       "with one under events/data/items) or 'southbound_snapshot' (cumulative per-stock "
                       "southbound buy/sell turning into incremental ticks)")
    kind: str = opt("", "event kind of every element for the 'events' adapter (empty: the kind field or the "
                    "fields present decide)")
    interval_s: float = opt(5.0, "seconds between polls while the endpoint answers")
    timeout_s: float = opt(10.0, "total timeout of one request")
    backoff_initial_s: float = opt(1.0, "first retry delay after a failed poll; doubles per failure, with jitter")
    backoff_max_s: float = opt(60.0, "retry delay cap")
    headers: dict[str, str] = opt(None, "extra request headers (NAME=VALUE)", factory=dict, flag="--header")
    token: str = opt("", "bearer token sent as 'Authorization: Bearer ...' (prefer "
                     "FUNDFLOW_SOURCES__<NAME>__TOKEN)", secret=True)
    conditional: bool = opt(True, "send If-None-Match / If-Modified-Since from the last response")
    dedupe_window: int = opt(200_000, "how many recent event identities are remembered to drop repeats")
    channel: str = opt("", "southbound_snapshot: channel (SH/SZ) for rows and documents that carry none")
    rows_field: str = opt("stocks", "southbound_snapshot: field holding the list of per-stock rows")
    symbol_field: str = opt("symbol", "southbound_snapshot: field of the stock code (9988, 09988, 09988.HK)")
    buy_field: str = opt("buy_hkd", "southbound_snapshot: field of the cumulative buy turnover (HKD)")
    sell_field: str = opt("sell_hkd", "southbound_snapshot: field of the cumulative sell turnover (HKD)")
    ts_field: str = opt("ts", "southbound_snapshot: field of the snapshot time (row or document; default: now)")
    state_file: str = opt("", "southbound_snapshot: file keeping the last cumulatives, so a restart mid-day "
                          "does not count the day twice (empty: memory only)")

    def check(self, where: str = "http-poll") -> None:
        if not self.url:
            raise ValueError(f"{where}.url is required")
        if self.adapter not in ADAPTERS:
            raise ValueError(f"{where}.adapter must be one of {', '.join(ADAPTERS)}")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ValueError(f"{where}: interval_s and timeout_s must be > 0")


class PollFailed(Exception):
    pass


class HttpPollSource(FeedSource[HttpPollOptions]):
    type = "http-poll"

    def __init__(self, opts: HttpPollOptions, publisher: Publisher) -> None:
        super().__init__(opts, publisher)
        self.etag: str | None = None
        self.last_modified: str | None = None
        self.polls = 0
        self.not_modified = 0
        self.failures = 0
        self.duplicates = 0
        self._seen: collections.OrderedDict[Any, None] = collections.OrderedDict()
        self.tracker: SnapshotTracker | None = None
        if opts.adapter == "southbound_snapshot":
            self.tracker = SnapshotTracker(
                rows_field=opts.rows_field, symbol_field=opts.symbol_field, buy_field=opts.buy_field,
                sell_field=opts.sell_field, ts_field=opts.ts_field, default_channel=opts.channel,
                state_file=opts.state_file)

    def _headers(self) -> dict[str, str]:
        h = with_bearer({"Accept": "application/json", **self.opts.headers}, self.opts.token)
        if self.opts.conditional:
            if self.etag:
                h["If-None-Match"] = self.etag
            if self.last_modified:
                h["If-Modified-Since"] = self.last_modified
        return h

    async def run(self, stop: asyncio.Event) -> None:
        o = self.opts
        backoff = self.new_backoff()
        timeout = aiohttp.ClientTimeout(total=o.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                try:
                    await self.poll_once(session)
                except (TimeoutError, PollFailed, aiohttp.ClientError) as exc:
                    self.failures += 1
                    self.mark_down()
                    self.stats.reconnects[self.name] += 1
                    delay = backoff.next()
                    log.warning("%s: poll of %s failed (%s); retrying in %.1fs", self.name, o.url,
                                _describe(exc), delay)
                else:
                    if backoff.failures:
                        log.info("%s: %s answers again", self.name, o.url)
                    self.mark_up(backoff)
                    delay = o.interval_s
                if await sleep_or_stop(delay, stop):
                    break
        self.mark_down()

    async def poll_once(self, session: aiohttp.ClientSession) -> int:
        """One request; returns the number of events handed on (raises PollFailed and client errors)."""
        self.polls += 1
        async with session.get(self.opts.url, headers=self._headers()) as resp:
            if resp.status == 304:
                self.not_modified += 1
                return 0
            if resp.status != 200:
                text = (await resp.text(errors="replace"))[:200]
                raise PollFailed(f"HTTP {resp.status}: {text}")
            body = await resp.read()
            etag = resp.headers.get("ETag")
            last_modified = resp.headers.get("Last-Modified")
        n = await self._handle(body)
        # only now: a document whose events were not handed on is fetched again
        self.etag, self.last_modified = etag, last_modified
        return n

    async def _handle(self, body: bytes) -> int:
        publisher = self.publisher
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            await publisher.areject(body[: publisher.validator.max_payload_bytes], "bad_json", str(exc)[:120])
            return 0
        if self.tracker is not None:
            try:
                values, bad = self.tracker.ticks(doc, int(time.time() * 1000))
            except Rejected as exc:
                await publisher.areject(body[: publisher.validator.max_payload_bytes], exc.reason, exc.detail)
                return 0
            for row, problem in bad:
                await publisher.areject(orjson.dumps(row), problem.reason, problem.detail)
            kind: str | None = "southbound"
        else:
            values = events_from_document(doc)
            kind = self.opts.kind or None
        result = await publisher.apublish_values(values, kind, keep=self._first_time)
        if self.tracker is not None:
            self.tracker.save()
        return result.accepted

    def _first_time(self, ev: Any) -> bool:
        key = dedupe_key(ev)
        seen = self._seen
        if key in seen:
            seen.move_to_end(key)
            self.duplicates += 1
            return False
        seen[key] = None
        if len(seen) > self.opts.dedupe_window:
            seen.popitem(last=False)
        return True


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    return str(exc) or type(exc).__name__
