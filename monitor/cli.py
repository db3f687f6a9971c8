"""The `fundflow` command: demo, replay, consume, ingest, run, rules, bench."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from consumers import sectors, views
from consumers.basket import from_mapping
from monitor import documents
from monitor.bus import AccessDenied
from monitor.bus.memory import MemoryBus
from monitor.calendars import iso
from monitor.cli_common import add_consumer_arguments, config_from_args, progress_bar, setup_logging, stop_event
from monitor.events import from_micro
from monitor.ingest.cli import add_parsers
from monitor.ingest.files import count_records, read_tape
from monitor.ops.render import main as render_main
from monitor.server import site_url, start_site
from monitor.service import Service
from monitor.simulator import DEMO_HISTORY_DAYS, DEMO_HOLDINGS, Scenario, generate, paced

log = logging.getLogger("fundflow")


# -- demo -------------------------------------------------------------------------------
async def _demo(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    bus = MemoryBus(cfg.kafka.partitions)
    bus.ensure_topics()
    svc = Service(cfg, bus=bus, live_clock=False, simulated_market=True)
    site = await start_site(svc.app(), cfg.http.host, cfg.http.port)
    url = site_url(site)
    print(f"fundflow demo: board {url}/  metrics {url}/metrics  API {url}/api/v1/symbols  {url}/api/v1/sectors",
          flush=True)
    stop = stop_event()
    # daily bars for the year before the ticks: the seed day's 250-day high, AUM record and MACD cross
    scenario = Scenario(seed=args.seed, history_days=DEMO_HISTORY_DAYS)
    if not svc.engine.holdings:  # no [baskets] configured: the simulated ETF's holdings
        svc.engine.holdings = from_mapping(DEMO_HOLDINGS)
    if not svc.engine.sectors:  # no [sectors] csv configured: the simulator's symbols in sectors
        svc.engine.sectors = demo_sectors()
    publisher = svc.publisher("simulator")
    svc.stats.connected["simulator"] = True

    async def simulate() -> None:
        events = generate(scenario)
        realtime_from_ms = _seed_day_open(svc, scenario) if args.speed > 0 else None
        async for obj in paced(events, args.speed, realtime_from_ms=realtime_from_ms):
            publisher.publish_obj(obj)
        log.info("simulator: all %d trading days published", scenario.days)

    async def summary() -> None:
        while True:
            await asyncio.sleep(args.summary_every)
            eng = svc.engine
            etf = views.etf(eng, "513770.SH")
            sb = views.southbound(eng, "09988.HK")
            turnover = etf.turnover if etf is not None else None
            top = next(iter(sectors.sector_rows(eng, "1d")), None)
            print(f"  as_of {iso(eng.as_of_ms) if eng.as_of_ms else '-'}  applied {sum(eng.applied.values()):,}"
                  f"  513770.SH turnover {from_micro(turnover or 0):,.0f} CNY"
                  f"  09988.HK streak {sb.streak_days if sb is not None else 0} days"
                  + (f"  top sector 1d {top.sector}: ETFs {from_micro(top.etf_net_inflow):+,.0f} CNY, southbound "
                     f"{from_micro(top.southbound_net_buy):+,.0f} HKD" if top else ""),
                  flush=True)

    tasks = [asyncio.create_task(svc.runner.run(stop, on_batch=svc.on_batch)), asyncio.create_task(simulate()),
             asyncio.create_task(summary())]
    try:
        if args.duration:
            try:
                await asyncio.wait_for(stop.wait(), args.duration)
            except TimeoutError:
                pass
        else:
            await stop.wait()
    finally:
        stop.set()
        for t in tasks[1:]:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await site.cleanup()
    return 0


def demo_sectors() -> dict[str, str]:
    """The sectors of the simulator's ETFs and HK stocks (monitor/data/sectors.csv, shipped in the package)."""
    return sectors.from_csv(resources.files("monitor").joinpath("data/sectors.csv").read_text(encoding="utf-8"))


def _seed_day_open(svc: Any, scenario: Any) -> int:
    session = svc.calendars["SH"].session(scenario.end_date)
    return session.open_ms - 30 * 60_000


# -- replay -----------------------------------------------------------------------------
async def _replay(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    bus = MemoryBus(cfg.kafka.partitions)
    bus.ensure_topics()
    svc = Service(cfg, bus=bus, live_clock=False)
    publisher = svc.publisher("replay")
    for path in args.files:
        if not Path(path).exists():
            print(f"fundflow replay: no such file: {path}", file=sys.stderr)
            return 2
    total = sum(count_records(p) for p in args.files)
    progress = progress_bar(total, "replay", enabled=not args.quiet)
    for path in args.files:
        for obj, raw in read_tape(path):
            if obj is None:
                publisher.publish_raw(raw)
            else:
                publisher.publish_obj(obj, raw)
            progress.update(1)
    progress.close()
    stop = asyncio.Event()
    await svc.runner.run(stop, until_caught_up=True)
    if args.report == "json":
        rejected: dict[str, int] = {}
        for (_, reason), n in svc.stats.rejected.items():
            rejected[reason] = rejected.get(reason, 0) + n
        report = documents.report(svc.engine, args.top, rejected)
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.buffer.write(svc.metrics.render())
    sys.stdout.flush()
    return 0


# -- consume ----------------------------------------------------------------------------
async def _consume(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    svc = Service(cfg)
    log.info("consuming from %s as group %s", cfg.kafka.bootstrap_servers, cfg.kafka.group_id)
    try:
        await asyncio.get_running_loop().run_in_executor(None, svc.bus.ensure_topics)
    except AccessDenied as exc:  # wrong credentials or ACLs: retrying would only hide it
        log.error("%s", exc, extra={"reason": "access_denied"})
        return 2
    site = await start_site(svc.app(), cfg.http.host, cfg.http.port)
    log.info("serving %s/metrics", site_url(site))
    stop = stop_event()
    try:
        await svc.runner.run(stop, on_batch=svc.on_batch)
    finally:
        await site.cleanup()
        await asyncio.get_running_loop().run_in_executor(None, svc.bus.close)
    log.info("consumer stopped")
    return 0


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fundflow", description="Streaming fund-flow monitor.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="everything in one process: in-memory bus, simulator, consumer, /metrics")
    d.add_argument("--config", help="TOML config file (FUNDFLOW_* env overrides)")
    d.add_argument("--host", default=None, help="HTTP bind address (default from config: 127.0.0.1)")
    d.add_argument("--port", type=int, default=None, help="HTTP port (default from config: 8000)")
    d.add_argument("--duration", type=float, default=0, help="exit after this many seconds (0 = run until Ctrl-C)")
    d.add_argument("--speed", type=float, default=60.0,
                   help="seed-day speed-up over real time (history replays at full speed; 0 = all at full speed)")
    d.add_argument("--seed", type=int, default=20250912, help="simulator seed")
    d.add_argument("--summary-every", type=float, default=5.0, help="seconds between terminal summaries")
    d.set_defaults(func=_demo)

    r = sub.add_parser("replay", help="run NDJSON/CSV tapes through the consumer code and print the final state")
    r.add_argument("files", nargs="+", help="NDJSON (one event per line, with kind) or CSV (one kind per file)")
    r.add_argument("--report", choices=("json", "prometheus"), default="json", help="output format")
    r.add_argument("--config", help="TOML config file (closures, grace, ...)")
    r.add_argument("--top", type=int, default=10, help="entries in top_southbound_20d")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_replay)

    c = sub.add_parser("consume", help="Kafka consumer: computations, /metrics and the JSON API")
    add_consumer_arguments(c)
    c.set_defaults(func=_consume)

    add_parsers(sub)

    rules = sub.add_parser("rules", help="alert rules and dashboards")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    render = rules_sub.add_parser("render", help="render Prometheus rules and Grafana provisioning from the spec")
    render.add_argument("--config", help="TOML config file (alert thresholds)")
    render.add_argument("--out", default=".", help="directory that receives grafana/ (default: current)")
    render.set_defaults(func=_render)

    b = sub.add_parser("bench", help="benchmarks (same as python -m bench)")
    b.add_argument("rest", nargs=argparse.REMAINDER)
    b.set_defaults(func=_bench)
    return p


def _render(args: argparse.Namespace) -> int:
    argv = ["--out", args.out] + (["--config", args.config] if args.config else [])
    return int(render_main(argv) or 0)


def _bench(args: argparse.Namespace) -> int:
    return _run_bench(args.rest)


def _run_bench(argv: list[str]) -> int:
    """``python -m bench``: the benchmarks live in the source checkout, not in the installed package."""
    try:
        # imported by name: bench/ is not part of the wheel, so the CLI must not depend on it
        bench_run = importlib.import_module("bench.run")
    except ModuleNotFoundError as exc:
        if exc.name not in ("bench", "bench.run"):
            raise
        print("fundflow bench runs from a source checkout: python -m bench", file=sys.stderr)
        return 2
    return int(bench_run.main(argv) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["bench"]:  # its options are the bench's own (argparse REMAINDER drops leading ones)
        return _run_bench(args_list[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    func = args.func
    try:
        if asyncio.iscoroutinefunction(func):
            return asyncio.run(func(args))
        return int(func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
