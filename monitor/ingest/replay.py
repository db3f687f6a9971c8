"""Replay source: NDJSON / CSV tapes into the bus at a speed factor of event time.

``speed`` 1 reproduces the tape's own pacing (the gap between two events'
``ts`` becomes the same wall-clock gap), 10 runs ten times faster, ``max``
(or 0) sends as fast as the sink takes them. Date-only events (units, daily
southbound) carry no time of day and go out at once. An event earlier than
the one before it is not waited for. ``max_gap_s`` compresses long pauses
(a night, a weekend) so a multi-day tape at 1x does not sleep through them.

Every line is validated like any other input: a bad line is dead-lettered
with its reason and counted, and the replay goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from monitor.events import Rejected
from monitor.ingest.files import count_records, read_tape
from monitor.ingest.options import opt
from monitor.ingest.publisher import Publisher
from monitor.ingest.retry import sleep_or_stop

log = logging.getLogger("fundflow.ingest.replay")


def parse_speed(value: Any) -> float:
    """``"max"``, ``"10x"``, ``10``, ``"0.5"`` -> factor; 0 means as fast as possible."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        speed = float(value)
    else:
        text = str(value).strip().lower()
        if text in ("max", "inf", "unlimited", ""):
            return 0.0
        speed = float(text[:-1] if text.endswith("x") else text)
    if speed < 0:
        raise ValueError("speed must be >= 0 (0 or 'max': as fast as possible)")
    return speed


@dataclass
class ReplayOptions:
    files: list[str] = opt(None, "NDJSON (one event per line, with kind) or CSV (one kind per file, header row) "
                           "tapes, replayed in the order given", factory=list, flag="--file")
    speed: str = opt("1", "speed factor over the tape's event time: 1 (real time), 10, ... or 'max'")
    kind: str = opt("", "event kind of every line (CSV tapes without a kind column need it; empty: the kind "
                    "field or the fields present decide)")
    max_gap_s: float = opt(0.0, "wall-clock cap on one pause between events, in seconds (0: keep the pauses)")
    loop: bool = opt(False, "start the tapes again when they end (a demo feed), until stopped")

    def check(self, where: str = "replay") -> None:
        if not self.files:
            raise ValueError(f"{where}.files: give at least one tape")
        parse_speed(self.speed)
        if self.max_gap_s < 0:
            raise ValueError(f"{where}.max_gap_s must be >= 0")


class ReplaySource:
    type = "replay"

    def __init__(self, opts: ReplayOptions, publisher: Publisher,
                 progress: Callable[[int], None] | None = None) -> None:
        self.opts = opts
        self.publisher = publisher
        self.name = publisher.source
        self.stats = publisher.stats
        self.speed = parse_speed(opts.speed)
        self.progress = progress
        self.sent = 0  # records handed on (events and dead letters)
        self.finished = False

    def total(self) -> int:
        return sum(count_records(p) for p in self.opts.files)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        self.stats.connected[self.name] = True
        try:
            while not stop.is_set():
                anchor: tuple[int, float] | None = None  # (event ms, loop time) of the pacing origin
                last_ts: int | None = None
                for path in self.opts.files:
                    for obj, raw in read_tape(path):
                        if stop.is_set():
                            return
                        ev = await self._one(obj, raw)
                        ts = getattr(ev, "ts_ms", None) if ev is not None else None
                        if ts is not None and self.speed > 0:
                            if anchor is None:
                                anchor = (ts, loop.time())
                            elif last_ts is not None and ts > last_ts:
                                gap = (ts - last_ts) / 1000 / self.speed
                                if self.opts.max_gap_s and gap > self.opts.max_gap_s:
                                    # shift the origin so the pause counts as max_gap_s
                                    anchor = (anchor[0], anchor[1] - (gap - self.opts.max_gap_s))
                            if last_ts is None or ts >= last_ts:
                                delay = anchor[1] + (ts - anchor[0]) / 1000 / self.speed - loop.time()
                                if delay > 0 and await sleep_or_stop(delay, stop):
                                    return
                                last_ts = ts
                        await self._send(ev, obj, raw)
                if not self.opts.loop:
                    break
            self.finished = True
            log.info("%s: replayed %d record(s) from %d tape(s)", self.name, self.sent, len(self.opts.files))
        finally:
            self.stats.connected[self.name] = False

    async def _one(self, obj: Any, raw: bytes) -> Any:
        """Validate a line (None when it is rejected: it goes out at once)."""
        if obj is None:
            return None
        try:
            return self.publisher.check_obj(obj, raw, self.opts.kind or None)
        except Rejected:
            return None

    async def _send(self, ev: Any, obj: Any, raw: bytes) -> None:
        publisher = self.publisher
        if ev is not None:
            await publisher.emit(ev)
        elif obj is None:
            await publisher.apublish_raw(raw, self.opts.kind or None)  # dead-letters the undecodable line
        else:
            await publisher.apublish_obj(obj, raw, self.opts.kind or None)  # dead-letters it with its reason
        self.sent += 1
        if self.progress is not None:
            self.progress(1)
