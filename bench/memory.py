"""Measurement 6: RSS of the consumer state after each simulated day (child process).

``python -m bench.memory`` reads the tape from stdin (``python -m bench.tape`` in another
process, so generating events never inflates the measured heap), applies it with the same
``ConsumerRunner.apply_records`` a Kafka consumer uses, checkpoints (closed-day export and
``Engine.prune``) every 50,000 events and at each day's end like the runner's checkpoint
timer does, and prints one JSON line per day: ``{"day": n, "date": ..., "rss_mb": ...}``.
"""

from __future__ import annotations

import gc
import os
import sys

import orjson

from bench.common import proc_rss_mb
from bench.compute import make_service
from monitor.bus import Record


def main() -> int:
    svc = make_service()
    runner, engine = svc.runner, svc.engine

    # Experiment for bench/PROPOSED_HOTPATH.md (not part of the measurement): keep the trade_id / seq
    # dedupe sets only for the last N sessions, as a patched Engine.prune would.
    dedupe_sessions = int(os.environ.get("BENCH_DEDUPE_SESSIONS", "0"))

    def drop_old_dedupe() -> None:
        now = engine.now_ms()
        for sym, st in engine.etf.items():
            cal = engine.cal.for_symbol(sym)
            cur = engine.current_day(cal, now)
            keep = cal.last_n(cur, dedupe_sessions) if cur else ()
            for d, day in st.days.items():
                if keep and d < keep[0] and day.trade_ids:
                    day.trade_ids = set()
        sb_cal = engine.cal["SB"]
        cur = engine.current_day(sb_cal, now)
        keep = sb_cal.last_n(cur, dedupe_sessions) if cur else ()
        for st in engine.sb.values():
            for d, day in st.days.items():
                if keep and d < keep[0] and day.seqs:
                    day.seqs = set()

    def checkpoint() -> None:
        # what the runner would persist: takes closed days out of `modified`
        runner._snapshot_payloads()  # noqa: SLF001 - the bench checkpoints as the runner does, without a broker
        engine.prune()
        if dedupe_sessions:
            drop_old_dedupe()

    gc.collect()
    out = sys.stdout
    out.write(orjson.dumps({"day": 0, "rss_mb": proc_rss_mb(), "events": 0}).decode() + "\n")
    out.flush()
    batch: list[Record] = []
    offsets: dict[tuple[str, int], int] = {}
    total = since_cp = day = 0
    for line in sys.stdin.buffer:
        if line.startswith(b"#day"):
            runner.apply_records(batch)
            total += len(batch)
            batch = []
            checkpoint()
            since_cp = 0
            gc.collect()
            day += 1
            out.write(orjson.dumps({"day": day, "date": line.split()[1].decode(), "rss_mb": proc_rss_mb(),
                                    "events": total, "applied": sum(engine.applied.values())}).decode() + "\n")
            out.flush()
            continue
        topic_b, part_b, value = line.rstrip(b"\n").split(b"\t", 2)
        topic, part = topic_b.decode(), int(part_b)
        off = offsets.get((topic, part), 0)
        offsets[(topic, part)] = off + 1
        batch.append(Record(topic, part, off, None, value, 0))
        if len(batch) >= 5000:
            runner.apply_records(batch)
            total += len(batch)
            since_cp += len(batch)
            batch = []
            if since_cp >= 50_000:
                checkpoint()
                since_cp = 0
    rejected = sum(svc.stats.rejected.values())
    if rejected:
        sys.stderr.write(f"memory bench: {rejected} events rejected: {dict(svc.stats.rejected)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
