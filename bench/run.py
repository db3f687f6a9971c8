"""`python -m bench [--quick] [--json PATH]`: every measurement, as ratios measured in the same run.

Exit status: 0 when every measurement produced a number (targets missed are printed as MISSED,
never a failure: CI machines are noisy); 1 when a benchmark crashed or counted wrong.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import REPO, env

# The market day (measurements 6 and 7): the whole mainland ETF market and the southbound-eligible
# stocks on a heavy day, 1,200 ETFs trading every ~2.5 s and 550 stocks ticking every minute per
# channel: 7.28M events a day, 8.44M with the IOPVs (every 15 s per ETF) and quota balances (every
# minute per channel) of a tick-by-tick feed. Quick mode scales the symbols down by 20, not the rates.
FULL = {"etfs": 2000, "stocks": 500, "mem_days": 5, "mem_etfs": 1200, "mem_stocks": 550,
        "latency_s": 60.0, "warmup_s": 5.0, "scrape_every": 2.0, "repeat": 2, "scrapes": 20, "quix_events": 100_000,
        "recovery_live_s": 60.0}
QUICK = {"etfs": 200, "stocks": 50, "mem_days": 3, "mem_etfs": 60, "mem_stocks": 28,
         "latency_s": 10.0, "warmup_s": 2.0, "scrape_every": 0.5, "repeat": 1, "scrapes": 5, "quix_events": 15_000,
         "recovery_live_s": 10.0}
MEM_TRADE_INTERVAL_S, MEM_TICK_INTERVAL_S = 2.5, 60.0
RSS_LIMIT_MB = 512.0  # deploy/k8s/consume.yaml's memory limit is set from this budget
RECOVERY_LIMIT_S = 30.0
COMPUTE_TARGET = 0.12
LATENCY_DAY = dt.date(2025, 9, 15)  # the session after the tape's day


class Table:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, name: str, value: str, against: str, ratio: float | None, target: str, met: bool | None) -> None:
        self.rows.append({"measurement": name, "value": value, "against": against, "ratio": ratio, "target": target,
                          "status": "n/a" if met is None else ("met" if met else "MISSED")})

    def render(self) -> str:
        head = ("measurement", "fundflow", "limit / peer", "ratio", "target", "status")
        lines = [[r["measurement"], r["value"], r["against"], "-" if r["ratio"] is None else f"{r['ratio']:.3g}x",
                  r["target"], r["status"]] for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=True)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*map(str, ln)) for ln in lines]
        return "\n".join(out)


def _k(x: float) -> str:
    return f"{x / 1000:,.1f}k ev/s" if x < 1e6 else f"{x / 1e6:,.2f}M ev/s"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus"}
    for pkg in ("kafka-python", "orjson", "prometheus-client", "aiohttp", "quixstreams", "confluent-kafka", "crc32c"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    from harness.services import DEFAULT_KAFKA_VERSION

    out["kafka"] = __import__("os").environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    return out


def memory(p: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    gen = subprocess.Popen([sys.executable, "-m", "bench.tape", "--etfs", str(p["mem_etfs"]), "--stocks",
                            str(p["mem_stocks"]), "--days", str(p["mem_days"]), "--trade-interval",
                            str(MEM_TRADE_INTERVAL_S), "--tick-interval", str(MEM_TICK_INTERVAL_S)],
                           cwd=REPO, env=env(), stdout=subprocess.PIPE)
    mem = subprocess.Popen([sys.executable, "-m", "bench.memory"], cwd=REPO, env=env(), stdin=gen.stdout,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert gen.stdout is not None and mem.stdout is not None
    gen.stdout.close()
    days = []
    for line in mem.stdout:
        d = orjson.loads(line)
        days.append(d)
        if d["day"]:
            log(f"  market day {d['day']:>2} {d['date']}  {d['events']:>11,} events  RSS {d['rss_mb']:.0f} MB  "
                f"{d['retained_bytes_per_trade']} B/trade retained  state topic {d['state_topic_mb']:.1f} MB")
    err = mem.stderr.read().decode() if mem.stderr else ""
    if mem.wait() != 0 or gen.wait() != 0 or len(days) != p["mem_days"] + 1:
        raise RuntimeError(f"memory benchmark failed: {err[-3000:]}")
    return {"days": days, "events_per_day": days[-1]["events"] / p["mem_days"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes, < 2 minutes (CI smoke test)")
    ap.add_argument("--json", default=None, help="write results here (default bench/results[-quick].json)")
    ap.add_argument("--skip", default="", help="comma list of: compute,memory,kafka,quix,latency,recovery")
    ap.add_argument("--keep-logs", action="store_true", help="keep the broker and consumer logs")
    if argv and argv[0] == "--":  # `fundflow bench -- --quick`
        argv = argv[1:]
    a = ap.parse_args(argv)
    p = QUICK if a.quick else FULL
    skip = set(filter(None, a.skip.split(",")))
    started = time.monotonic()
    out_path = Path(a.json) if a.json else REPO / "bench" / ("results-quick.json" if a.quick else "results.json")

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    table = Table()
    results: dict[str, Any] = {"mode": "quick" if a.quick else "full", "params": p, "versions": versions(),
                               "started": dt.datetime.now().isoformat(timespec="seconds")}
    errors: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="fundflow-bench-"))
    broker = None
    try:
        from bench.compute import bus_records, run_compute, run_scrape
        from bench.tape import TapeSpec, records

        # Trades and ticks (the peer's job reads no more). The compute path gets the trades with their
        # order ids (fundflow's own job: order classes); the Kafka runs compare against the peer, which
        # cannot use them, so there both read the same tape without them (like for like).
        spec = TapeSpec(p["etfs"], p["stocks"], days=1)
        log(f"tape: one simulated day of {spec.etfs} ETFs + {spec.stocks} southbound stocks ...")
        tape = records(spec)
        n = len(tape)
        results["tape"] = {"events": n, "etfs": spec.etfs, "stocks": spec.stocks, "date": "2025-09-12",
                           "trade_interval_s": spec.trade_interval_s, "tick_interval_s": spec.tick_interval_s,
                           "order_ids": {"compute": True, "kafka": False}}
        log(f"tape: {n:,} events")

        # 1 + 5: compute path and scrape, in this process
        if "compute" not in skip:
            try:
                r = run_compute(bus_records(tape), repeat=p["repeat"])
                svc = r.pop("service")
                results["compute"] = r
                table.add("1 compute path (decode+validate+apply, 1 core)", _k(r["compute_eps"]),
                          f"bare orjson decode {_k(r['bare_decode_eps'])}", r["ratio"], f">= {COMPUTE_TARGET}x",
                          r["ratio"] >= COMPUTE_TARGET)
                table.add("  decode+validate only (info)", _k(r["decode_validate_eps"]), "bare orjson decode",
                          r["decode_validate_eps"] / r["bare_decode_eps"], "-", None)
                log(f"compute: {r['compute_eps']:,.0f} ev/s vs bare decode {r['bare_decode_eps']:,.0f} ev/s")
                s = run_scrape(svc, p["scrapes"])
                del svc
                results["scrape"] = s
                table.add(f"5 scrape /metrics ({s['etfs']} ETFs + {s['stocks']} stocks, {s['series']:,} series, "
                          f"{s['bytes'] / 1e6:.1f} MB)", f"{s['metrics_ms_median']:.1f} ms",
                          f"static text {s['static_ms_median']:.2f} ms", s["ratio"], "<= 100 ms and <= 3x",
                          s["metrics_ms_median"] <= 100 and s["ratio"] <= 3)
                log(f"scrape: {s['metrics_ms_median']:.1f} ms vs static {s['static_ms_median']:.2f} ms")
            except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                errors.append(f"compute/scrape: {exc!r}")
                traceback.print_exc()

        # 6: memory, in child processes
        if "memory" not in skip:
            try:
                log(f"market day: {p['mem_days']} simulated days of {p['mem_etfs']} ETFs + {p['mem_stocks']} stocks "
                    f"(trades every {MEM_TRADE_INTERVAL_S} s, ticks every {MEM_TICK_INTERVAL_S:.0f} s) ...")
                m = memory(p, log)
                results["memory"] = m
                days = m["days"]
                rss = [d["rss_mb"] for d in days[1:]]
                d2, last = rss[min(1, len(rss) - 1)], rss[-1]
                ok = max(rss) <= RSS_LIMIT_MB and last <= 1.1 * d2
                table.add(f"6 market day: RSS after each of {len(rss)} days "
                          f"({m['events_per_day'] / 1e6:.2f}M ev/day)",
                          " / ".join(f"{x:.0f}" for x in rss) + " MB", f"baseline {days[0]['rss_mb']:.0f} MB",
                          last / d2, f"<= {RSS_LIMIT_MB:.0f} MB, last <= 1.1x day 2", ok)
                lastday = days[-1]
                table.add("  retained per trade of the day: curve + dedupe keys (info)",
                          f"{lastday['retained_bytes_per_trade']} B ({lastday['curve_bytes_per_trade']} + "
                          f"{lastday['dedupe_bytes_per_trade']})", f"{lastday['trades']:,} trades", None, "-", None)
                table.add("  state topic after the last day, compacted (info)",
                          f"{lastday['state_topic_mb']:.1f} MB", f"{lastday['state_topic_records']:,} records",
                          None, "-", None)
            except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                errors.append(f"memory: {exc!r}")
                traceback.print_exc()

        # 2-4: Kafka
        if "kafka" not in skip:
            from bench import kafka_bench as kb
            from monitor.events import TOPICS

            log("kafka: the same tape without order ids (the peer cannot use them) ...")
            tape = records(dataclasses.replace(spec, order_ids=False))
            if len(tape) != n:
                raise kb.BenchError(f"{len(tape)} events without order ids, {n} with them")
            log("kafka: starting the broker ...")
            broker = kb.start_broker(workdir / "kafka")
            log(f"kafka: broker up at {broker.bootstrap} in {broker.start_seconds:.1f}s; filling {n:,} events ...")
            fill_s = kb.fill(broker.bootstrap, tape)
            topics = [TOPICS["trade"], TOPICS["southbound"]]
            in_topics = kb.end_offsets_total(broker.bootstrap, topics)
            if in_topics != n:
                raise kb.BenchError(f"{in_topics} records in the topics, expected {n}")
            results["fill_seconds"] = fill_s
            log(f"kafka: filled in {fill_s:.1f}s")
            try:
                raw = kb.raw_poll(broker.bootstrap, topics, n)
                results["raw_poll"] = raw
                log(f"raw kafka-python poll: {raw['eps']:,.0f} ev/s")
                quix = None
                if "quix" not in skip:
                    try:
                        quix = kb.quix(broker.bootstrap, min(n, p["quix_events"]))
                        results["quix"] = quix
                        log(f"quix streams {quix['version']}: {quix['eps']:,.0f} ev/s, "
                            f"{quix['eps_per_cpu']:,.0f} ev/CPU-s (first {quix['events']:,} events)")
                    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                        errors.append(f"quix: {exc!r}")
                        traceback.print_exc()
                two, _ = kb.run_consumers(broker.bootstrap, n, 2, workdir)
                results["fundflow_2"] = two
                log(f"fundflow consume x2: {two['eps']:,.0f} ev/s ({two['per_process_applied']})")
                fast = None
                try:
                    import confluent_kafka  # noqa: F401 - only whether the optional extra is installed
                except ImportError:
                    log("confluent-kafka not installed: its backend is not measured")
                else:
                    try:
                        fast, _ = kb.run_consumers(broker.bootstrap, n, 1, workdir, backend="confluent")
                        results["fundflow_confluent"] = fast
                        log(f"fundflow consume, confluent backend: {fast['eps']:,.0f} ev/s")
                    except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                        errors.append(f"confluent backend: {exc!r}")
                        traceback.print_exc()
                one, cons = kb.run_consumers(broker.bootstrap, n, 1, workdir, keep=True)
                results["fundflow_1"] = one
                log(f"fundflow consume x1: {one['eps']:,.0f} ev/s, {one['eps_per_cpu']:,.0f} ev/CPU-s")
                e2e = one["eps"] / raw["eps"]
                table.add("2 Kafka end-to-end `fundflow consume` (kafka-python)", _k(one["eps"]),
                          f"raw kafka-python poll {_k(raw['eps'])}", e2e, ">= 0.8x", e2e >= 0.8)
                table.add("  same, events per CPU-second (info)", f"{one['eps_per_cpu']:,.0f} ev/CPU-s",
                          f"raw {raw['eps_per_cpu']:,.0f} ev/CPU-s", one["eps_per_cpu"] / raw["eps_per_cpu"], "-", None)
                scale = two["eps"] / one["eps"]
                table.add("2 two consumer processes in one group", _k(two["eps"]), f"one process {_k(one['eps'])}",
                          scale, ">= 1.6x", scale >= 1.6)
                if fast is not None:
                    fr = fast["eps"] / one["eps"]
                    table.add("2 `fundflow consume` on the confluent-kafka backend", _k(fast["eps"]),
                              f"kafka-python backend {_k(one['eps'])}", fr, ">= 2.5x", fr >= 2.5)
                else:
                    table.add("2 confluent-kafka backend (extra `fast`)", "not run", "kafka-python end-to-end",
                              None, ">= 2.5x", None)
                if quix is not None:
                    peer = one["eps_per_cpu"] / quix["eps_per_cpu"]
                    table.add(f"3 peer: events per CPU-second (Quix Streams {quix['version']})",
                              f"{one['eps_per_cpu']:,.0f} ev/CPU-s", f"Quix {quix['eps_per_cpu']:,.0f} ev/CPU-s",
                              peer, ">= 2x", peer >= 2)
                    table.add("  peer: wall events/s (info)", _k(one["eps"]), f"Quix {_k(quix['eps'])}",
                              one["eps"] / quix["eps"], "-", None)
                if "latency" not in skip:
                    try:
                        from monitor.calendars import default_calendars

                        start_ms = default_calendars()["SH"].session(LATENCY_DAY).open_ms
                        log(f"latency: 10,000 ev/s for {p['latency_s']:.0f}s into the caught-up consumer ...")
                        lat = kb.latency(broker.bootstrap, cons[0], start_ms, 10_000, p["latency_s"], p["warmup_s"],
                                         spec.etfs, p["scrape_every"])
                        results["latency"] = lat
                        table.add(f"4 latency production -> /metrics at {lat['rate_sent']:,.0f} ev/s "
                                  f"({lat['samples']} scrapes)",
                                  f"p50 {lat['p50_ms']:.0f} / p99 {lat['p99_ms']:.0f} / max {lat['max_ms']:.0f} ms",
                                  f"(each /metrics render ~{lat['scrape_ms_median']:.0f} ms)", None, "p99 <= 50 ms",
                                  lat["p99_ms"] <= 50)
                        table.add("  latency measured from the scrape's request (info)",
                                  f"p50 {lat['at_request_p50_ms']:.0f} / p99 {lat['at_request_p99_ms']:.0f} ms",
                                  "render time left out", None, "-", None)
                        log(f"latency: p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, "
                            f"max {lat['max_ms']:.1f} ms")
                    finally:
                        for c in cons:
                            c.stop()
                else:
                    for c in cons:
                        c.stop()
            except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                errors.append(f"kafka: {exc!r}")
                traceback.print_exc()
        # 7: recovery, against a broker of its own (after the Kafka part: one broker at a time). Not in
        # quick mode: it needs the market-day volume to mean anything (tests/faults/test_recovery.py
        # checks the same path for correctness at small volume on every test run)
        if a.quick and "recovery" not in skip:
            table.add("7 recovery (kill -9 at 14:30 -> /readyz)", "not run in --quick", "-", None,
                      f"<= {RECOVERY_LIMIT_S:.0f} s", None)
        elif "recovery" not in skip:
            try:
                from bench import recovery

                rspec = TapeSpec(p["mem_etfs"], p["mem_stocks"], days=1, trade_interval_s=MEM_TRADE_INTERVAL_S,
                                 tick_interval_s=MEM_TICK_INTERVAL_S)
                log(f"recovery: kill -9 at {recovery.KILL_AT} of a market day of {rspec.etfs} ETFs + "
                    f"{rspec.stocks} stocks ...")
                rec = recovery.run(rspec, workdir, log, p["recovery_live_s"])
                results["recovery"] = rec
                table.add(f"7 recovery: kill -9 at {recovery.KILL_AT} -> /readyz 200, state identical "
                          f"({rec['series']:,} series)", f"{rec['ready_seconds']:.1f} s",
                          f"catch-up from the open {rec['catch_up_seconds']:.0f} s",
                          rec["ready_seconds"] / rec["catch_up_seconds"], f"<= {RECOVERY_LIMIT_S:.0f} s",
                          rec["ready_seconds"] <= RECOVERY_LIMIT_S and rec["identical"])
                st = rec["state_topic"]
                table.add("  state topic at the kill (info)", f"{st['compacted_mb']:.1f} MB compacted",
                          f"{st['raw_mb']:.1f} MB written, {st['records']:,} records", None, "-", None)
                log(f"recovery: ready in {rec['ready_seconds']:.1f}s, state identical; state topic "
                    f"{st['compacted_mb']:.1f} MB compacted of {st['raw_mb']:.1f} MB")
            except Exception as exc:  # noqa: BLE001 - a failed measurement is reported, the others still run
                errors.append(f"recovery: {exc!r}")
                traceback.print_exc()
    except Exception as exc:  # noqa: BLE001 - reported with the rest; the bench never fails the build
        errors.append(repr(exc))
        traceback.print_exc()
    finally:
        if broker is not None:
            broker.stop()
        if a.keep_logs or errors:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    results["table"] = table.rows
    results["errors"] = errors
    results["wall_seconds"] = time.monotonic() - started
    out_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
                                      default=str))
    print()
    tape_events = results.get("tape", {}).get("events", 0)
    print(f"fundflow bench ({results['mode']}, {results['wall_seconds']:.0f}s wall; tape {tape_events:,} events; "
          f"ratios measured in this run)")
    print(table.render())
    missed = [r["measurement"].strip() for r in table.rows if r["status"] == "MISSED"]
    if missed:
        print(f"MISSED: {len(missed)} target(s) (reported, not a failure)")
    print(f"results: {out_path}")
    if errors:
        print("ERRORS:\n  " + "\n  ".join(errors))
        return 1
    return 0
