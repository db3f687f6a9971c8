"""Measurement 4's load: ETF trades at a steady rate through fundflow's own Kafka producer (child process).

Event time is tied to the wall clock (``ts = start_ms + elapsed``), so whoever reads the
stream clock in /metrics knows when the newest visible event was produced. Prints one JSON
line with the anchor (wall0, ts0) before sending, and one with counts at the end.
"""

from __future__ import annotations

import argparse
import sys
import time

import orjson


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency_producer")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--etfs", type=int, default=2000)
    p.add_argument("--start-ms", type=int, required=True, help="event time of the first event (a session open)")
    a = p.parse_args(argv)

    from monitor.bus.kafka import KafkaBus
    from monitor.config import KafkaConfig
    from monitor.events import TOPICS

    bus = KafkaBus(KafkaConfig(bootstrap_servers=a.bootstrap))
    topic = TOPICS["trade"]
    symbols = [f"5{i // 2:05d}.SH" if i % 2 == 0 else f"1{i // 2:05d}.SZ" for i in range(a.etfs)]
    keys = [s.encode() for s in symbols]
    bus.producer  # noqa: B018 - connect before the clock starts
    tick = 0.005
    per_tick = a.rate * tick
    dumps = orjson.dumps
    wall0 = time.time()
    ts0 = a.start_ms
    print(orjson.dumps({"wall0": wall0, "ts0": ts0}).decode(), flush=True)
    sent = 0
    owed = 0.0
    i = 0
    price = 1.0
    end = wall0 + a.seconds
    next_t = wall0
    while True:
        now = time.time()
        if now >= end:
            break
        owed += per_tick
        k = int(owed)
        owed -= k
        for _ in range(k):
            now = time.time()
            ts = ts0 + int((now - wall0) * 1000)
            j = i % a.etfs
            i += 1
            price = 1.0 + (i % 7) / 1000
            ev = {"kind": "trade", "symbol": symbols[j], "ts": ts, "price": price, "volume": 100,
                  "amount": round(price * 100, 2), "side": "B" if i % 2 else "S", "trade_id": f"lat-{i}"}
            bus.produce(topic, keys[j], dumps(ev), timestamp_ms=ts)
        sent += k
        next_t += tick
        delay = next_t - time.time()
        if delay > 0:
            time.sleep(delay)
    bus.flush(30)
    elapsed = time.time() - wall0
    print(orjson.dumps({"sent": sent, "seconds": elapsed, "rate": sent / elapsed}).decode(), flush=True)
    bus.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
