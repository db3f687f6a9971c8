"""The benchmark tape: simulated trading days of many symbols as Kafka-ready records.

Events come from the project's own simulator (``Scenario.synthetic``), so they are valid,
realistic (tick rule, missing sides, Poisson clocks) and identical across runs.
``python -m bench.tape`` streams NDJSON to stdout with ``#day`` markers (the memory
benchmark reads it from a pipe so generating never inflates the measured process).

Like a tick-by-tick feed, trades carry both sides' order numbers (an aggressor order fills 2.5
trades on average, geometric), every ETF has an IOPV every 15 s and each southbound channel its
quota balance every minute; ``--no-order-ids``, ``--no-iopv`` and ``--no-quota`` leave them out
(a peer that cannot use them gets the tape it can: see ``bench.run``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from monitor.calendars import local_date
from monitor.events import TOPICS, quota_key
from monitor.simulator import Scenario, generate

# One "simulated day of 2,000 symbols": 2,000 ETFs trading every ~30 s on average
# (~960k trades) and 500 southbound stocks ticking every ~2 min per channel (~165k ticks).
TRADE_INTERVAL_S = 30.0
TICK_INTERVAL_S = 120.0


@dataclass(frozen=True)
class TapeSpec:
    etfs: int = 2000
    stocks: int = 500
    days: int = 1
    trade_interval_s: float = TRADE_INTERVAL_S
    tick_interval_s: float = TICK_INTERVAL_S
    seed: int = 9
    order_ids: bool = True  # trades carry buy_order_id / sell_order_id
    iopv: bool = True  # IOPV events, every 15 s per ETF
    quota: bool = True  # southbound quota events, every minute per channel

    def scenario(self) -> Scenario:
        return Scenario.synthetic(self.etfs, self.stocks, days=self.days, seed=self.seed,
                                  trade_interval_s=self.trade_interval_s, tick_interval_s=self.tick_interval_s,
                                  order_ids=self.order_ids, iopv=self.iopv, quota=self.quota)


Rec = tuple[str, bytes, bytes, int]  # topic, key, value, timestamp ms


def key_of(ev: dict[str, Any]) -> str:
    """The record key a producer gives the event: its symbol; a quota event's channel stream key."""
    sym = ev.get("symbol")
    return sym if sym is not None else quota_key(ev["channel"])


def records(spec: TapeSpec, kinds: tuple[str, ...] = ("trade", "southbound")) -> list[Rec]:
    """The events of the tape of the given kinds, in a list (the default: trades and ticks, what the
    peer's job reads; ``kinds`` may name "iopv", "southbound_quota" and the date-only kinds too)."""
    out: list[Rec] = []
    append = out.append
    dumps = orjson.dumps
    for ev in generate(spec.scenario()):
        kind = ev["kind"]
        if kind not in kinds:
            continue
        ts = ev.get("ts")
        append((TOPICS[kind], key_of(ev).encode(), dumps(ev), ts if isinstance(ts, int) else 0))
    return out


def day_of(ev: dict) -> str:
    ts = ev.get("ts")
    return local_date(ts).isoformat() if isinstance(ts, int) else ev["date"]


def stream_days(spec: TapeSpec, partitions: int = 6) -> Iterator[bytes]:
    """Lines ``topic TAB partition TAB json``, a ``#day DATE`` line after each day's last event."""
    from kafka.partitioner.default import murmur2

    current = None
    parts: dict[str, bytes] = {}
    for ev in generate(spec.scenario()):
        sym = key_of(ev)
        p = parts.get(sym)
        if p is None:
            p = parts[sym] = str((murmur2(sym.encode()) & 0x7FFFFFFF) % partitions).encode()
        if ev["kind"] in ("trade", "southbound"):
            d = day_of(ev)
            if current is not None and d != current:
                yield f"#day {current}\n".encode()
            current = d
        yield TOPICS[ev["kind"]].encode() + b"\t" + p + b"\t" + orjson.dumps(ev) + b"\n"
    if current is not None:
        yield f"#day {current}\n".encode()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tape")
    p.add_argument("--etfs", type=int, default=2000)
    p.add_argument("--stocks", type=int, default=500)
    p.add_argument("--days", type=int, default=1)
    p.add_argument("--trade-interval", type=float, default=TRADE_INTERVAL_S)
    p.add_argument("--tick-interval", type=float, default=TICK_INTERVAL_S)
    p.add_argument("--no-order-ids", dest="order_ids", action="store_false", help="trades without order ids")
    p.add_argument("--no-iopv", dest="iopv", action="store_false", help="no IOPV events")
    p.add_argument("--no-quota", dest="quota", action="store_false", help="no southbound quota events")
    a = p.parse_args(argv)
    out = sys.stdout.buffer
    buf: list[bytes] = []
    spec = TapeSpec(a.etfs, a.stocks, a.days, a.trade_interval, a.tick_interval, order_ids=a.order_ids, iopv=a.iopv,
                    quota=a.quota)
    for line in stream_days(spec):
        buf.append(line)
        if len(buf) >= 2000 or line.startswith(b"#"):
            out.write(b"".join(buf))
            buf.clear()
    out.write(b"".join(buf))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
