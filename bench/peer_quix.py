"""The peer for measurement 3: the same job written with Quix Streams (child process).

Job: per ETF, active net inflow (buy-initiated minus sell-initiated amount) over sliding
1-minute and 5-minute windows; per symbol, daily net buy (ETF net inflow per day and
southbound buy - sell per day). Message timestamps are event time (the producers set them).
Idiomatic Quix: JSON deserialiser, one StreamingDataFrame per topic, windowed aggregations
with RocksDB state (and Quix's default changelog topics).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

import orjson


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_quix")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--timeout", type=float, default=600)
    a = p.parse_args(argv)

    import quixstreams
    from quixstreams import Application

    seen = {"n": 0, "first": 0, "t0": 0.0, "c0": 0.0, "t1": 0.0, "c1": 0.0}

    def processed(topic: str, partition: int, offset: int) -> None:
        n = seen["n"] = seen["n"] + 1
        if n == 1:
            seen["t0"], seen["c0"] = time.perf_counter(), time.process_time()
        if n == a.expect:
            seen["t1"], seen["c1"] = time.perf_counter(), time.process_time()
            app.stop()

    app = Application(broker_address=a.bootstrap, consumer_group=a.group, auto_offset_reset="earliest",
                      state_dir=a.state_dir, loglevel="WARNING", on_message_processed=processed)

    # --- the job -----------------------------------------------------------------------
    trades = app.dataframe(app.topic("fundflow.etf.trades", value_deserializer="json"))
    signed = trades.apply(
        lambda t: t["amount"] if t.get("side") == "B" else -t["amount"] if t.get("side") == "S" else 0.0)
    signed.sliding_window(timedelta(minutes=1)).sum().current()
    signed.sliding_window(timedelta(minutes=5)).sum().current()
    signed.tumbling_window(timedelta(days=1)).sum().current()

    flows = app.dataframe(app.topic("fundflow.southbound.flows", value_deserializer="json"))
    flows.apply(lambda f: f["buy_hkd"] - f["sell_hkd"]).tumbling_window(timedelta(days=1)).sum().current()
    # -----------------------------------------------------------------------------------

    import threading

    watchdog = threading.Timer(a.timeout, app.stop)
    watchdog.daemon = True
    watchdog.start()
    app.run()
    watchdog.cancel()
    n = seen["n"]
    if n < a.expect:
        print(orjson.dumps({"error": f"quix processed {n} of {a.expect}"}).decode(), flush=True)
        return 1
    secs, cpu = seen["t1"] - seen["t0"], seen["c1"] - seen["c0"]
    print(orjson.dumps({"events": n, "seconds": secs, "cpu_seconds": cpu, "eps": (n - 1) / secs,
                        "eps_per_cpu": (n - 1) / cpu, "version": quixstreams.__version__}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
