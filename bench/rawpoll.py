"""The limit for measurement 2: a bare kafka-python poll loop that only counts records (child process).

Same consumer settings as fundflow's Kafka bus (fetch sizes, max_poll_records), a fresh
group, subscribed to the same topics. Timing runs from the first records to the last, so
group join and connection set-up are left out, as they are for `fundflow consume`.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.rawpoll")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--topics", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--decode", action="store_true", help="also orjson-decode every value")
    p.add_argument("--timeout", type=float, default=300)
    a = p.parse_args(argv)
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=a.bootstrap, group_id=a.group, enable_auto_commit=False,
                      auto_offset_reset="earliest", max_poll_records=5000, fetch_max_bytes=52_428_800,
                      max_partition_fetch_bytes=4_194_304, client_id="bench-raw")
    c.subscribe(a.topics.split(","))
    loads = orjson.loads
    n = first_n = 0
    t0 = c0 = 0.0
    deadline = time.monotonic() + a.timeout
    while n < a.expect:
        if time.monotonic() > deadline:
            print(orjson.dumps({"error": f"timeout after {n} of {a.expect}"}).decode(), flush=True)
            return 1
        batches = c.poll(timeout_ms=100, max_records=5000)
        got = 0
        for recs in batches.values():
            got += len(recs)
            if a.decode:
                for r in recs:
                    loads(r.value)
        if got and not n:
            t0, c0, first_n = time.perf_counter(), time.process_time(), got
        n += got
    t1, c1 = time.perf_counter(), time.process_time()
    c.close(autocommit=False)
    secs, cpu = t1 - t0, c1 - c0
    print(orjson.dumps({"events": n, "measured_events": n - first_n, "seconds": secs, "cpu_seconds": cpu,
                        "eps": (n - first_n) / secs, "eps_per_cpu": (n - first_n) / cpu}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
