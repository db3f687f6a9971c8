"""Measurement 6, "market day": RSS of the consumer state after each simulated day (child process).

``python -m bench.memory`` reads the tape from stdin (``python -m bench.tape`` in another process,
so generating events never inflates the measured heap) and applies it with the same
``ConsumerRunner.apply_records`` a Kafka consumer uses. Like the runner it prunes every
``--prune-every`` events (its 1 s housekeeping) and checkpoints every ``--checkpoint-every`` events
(the records ``checkpoint_records`` encodes, acknowledged at once: no broker in this process),
and at each day's end. It keeps the compacted state topic's size (latest record per key) and prints
one JSON line per day: RSS, events, the bytes each structure holds per trade of that day, and the
state topic's size.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from typing import Any

import orjson

from bench.common import proc_rss_mb
from bench.compute import make_service
from consumers.engine import Engine
from monitor.bus import Record


def structure_bytes(engine: Engine, day: str) -> dict[str, Any]:
    """What the day's trade-dependent structures hold: intraday curve, dedupe keys, order totals, windows.

    Measured at the end of the day, before it closes: the open day's order totals are at their largest.
    """
    trades = curve = keys = orders = windows = 0
    for st in engine.etf.values():
        w = st.windows
        windows += w.secs.itemsize * len(w.secs) + w.cols.itemsize * len(w.cols) + w.vals.itemsize * len(w.vals)
        for d, etf_day in st.days.items():
            if d.isoformat() != day:
                continue
            curve += etf_day.secs.itemsize * len(etf_day.secs) + 8 * len(etf_day.amounts)
            curve += 8 * len(etf_day.nets) if etf_day.nets is not None else 0
            curve += len(etf_day.classes) if etf_day.classes is not None else 0
            keys += etf_day.trade_ids.nbytes if etf_day.trade_ids is not None else 0
            trades += len(etf_day.trade_ids) if etf_day.trade_ids is not None else 0
            orders += etf_day.orders.nbytes if etf_day.orders is not None else 0
    per = (lambda x: round(x / trades, 2)) if trades else (lambda x: None)
    return {"trades": trades, "curve_bytes_per_trade": per(curve), "dedupe_bytes_per_trade": per(keys),
            "order_totals_bytes_per_trade": per(orders), "windows_bytes": windows,
            "retained_bytes_per_trade": per(curve + keys)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.memory")
    ap.add_argument("--prune-every", type=int, default=50_000, help="events between prunes (the runner: every 1 s)")
    ap.add_argument("--checkpoint-every", type=int, default=250_000,
                    help="events between checkpoints (the runner: every 30 s of wall time)")
    a = ap.parse_args(argv)
    svc = make_service()
    runner, engine = svc.runner, svc.engine
    state: dict[bytes, int] = {}  # the compacted state topic: key -> size of its latest value

    def checkpoint() -> None:
        runner.prune()
        records, markers, done = runner.checkpoint_records()
        for _, key, value in records + markers:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = len(key) + len(value)
        done(True)

    gc.collect()
    out = sys.stdout
    out.write(orjson.dumps({"day": 0, "rss_mb": proc_rss_mb(), "events": 0}).decode() + "\n")
    out.flush()
    batch: list[Record] = []
    offsets: dict[tuple[str, int], int] = {}
    total = since_prune = since_cp = day = 0

    def apply() -> None:
        nonlocal total, since_prune, since_cp, batch
        runner.apply_records(batch)
        total += len(batch)
        since_prune += len(batch)
        since_cp += len(batch)
        batch = []
        if since_cp >= a.checkpoint_every:
            checkpoint()
            since_cp = since_prune = 0
        elif since_prune >= a.prune_every:
            runner.prune()
            since_prune = 0

    for line in sys.stdin.buffer:
        if line.startswith(b"#day"):
            apply()
            date = line.split()[1].decode()
            sizes = structure_bytes(engine, date)  # before the day's end compacts it
            t0 = time.perf_counter()
            page = svc.metrics.render()  # the /metrics page at the close, rendered in one go
            render_ms = (time.perf_counter() - t0) * 1000
            series = sum(1 for ln in page.splitlines() if ln and not ln.startswith(b"#"))
            del page
            checkpoint()
            since_cp = since_prune = 0
            gc.collect()
            day += 1
            out.write(orjson.dumps({"day": day, "date": date, "rss_mb": proc_rss_mb(), "events": total,
                                    "applied": sum(engine.applied.values()), **sizes,
                                    "state_topic_mb": sum(state.values()) / 1e6,
                                    "state_topic_records": len(state), "metrics_series": series,
                                    "metrics_render_ms": round(render_ms, 1)}).decode() + "\n")
            out.flush()
            continue
        topic_b, part_b, value = line.rstrip(b"\n").split(b"\t", 2)
        topic, part = topic_b.decode(), int(part_b)
        off = offsets.get((topic, part), 0)
        offsets[(topic, part)] = off + 1
        batch.append(Record(topic, part, off, None, value, 0))
        if len(batch) >= 5000:
            apply()
    rejected = sum(svc.stats.rejected.values())
    if rejected:
        sys.stderr.write(f"memory bench: {rejected} events rejected: {dict(svc.stats.rejected)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
