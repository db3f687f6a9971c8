"""``fundflow ingest SOURCE ...`` (one source per process) and ``fundflow run`` (everything in one).

Each source's flags are generated from its options dataclass (the help text
lives next to the field), so ``--help`` documents every option and the
config keys cannot drift from the flags.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from monitor.cli_common import add_consumer_arguments, config_from_args, progress_bar, stop_event
from monitor.ingest import options as optmod
from monitor.ingest import wiring
from monitor.ingest.files import count_records
from monitor.ingest.runner import OPTIONS, IngestProcess, configured_sources, ensure_topics, source_options
from monitor.server import site_url, start_site
from monitor.service import Service

log = logging.getLogger("fundflow.ingest")

DESCRIPTIONS = {
    "mqtt": "Subscribe to MQTT topic filters (QoS 1, persistent session) and produce the events to Kafka. "
            "A message is acknowledged to the broker once Kafka has its events.",
    "http-poll": "Poll a JSON endpoint (ETag / If-Modified-Since, retries with backoff) and produce its events.",
    "websocket": "Connect to a WebSocket feed, send the subscription messages, produce the events; "
                 "reconnects and resubscribes.",
    "replay": "Replay NDJSON/CSV tapes into Kafka at a speed factor of their event time.",
    "push": "Serve only POST /ingest (NDJSON or a JSON array), /metrics and /healthz; "
            "`fundflow demo`, `consume` and `run` serve POST /ingest too.",
}
EPILOG = ("Options are read from the config file's [sources.NAME] table (and [mqtt] for MQTT), then from "
          "FUNDFLOW_SOURCES__<NAME>__<KEY> environment variables, then from these flags. "
          "SIGTERM/SIGINT stop reading, flush the producer and exit 0.")


def _common(p: argparse.ArgumentParser, type_: str) -> None:
    g = p.add_argument_group("process options")
    g.add_argument("--config", help="TOML config file ([kafka], [http], [sources.NAME]; FUNDFLOW_* env overrides)")
    g.add_argument("--name", help=f"source name: the [sources.NAME] table to read and the source label of the "
                                  f"metrics (default: {type_})")
    g.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides [kafka] bootstrap_servers)")
    g.add_argument("--buffer-max-events", type=int, default=None,
                   help="events held while Kafka is unreachable before the source is paused (back-pressure; "
                        "overrides [kafka] buffer_max_events)")
    g.add_argument("--http-host", default=None, help="bind address of /metrics, /healthz and POST /ingest "
                                                      "(default [http] host)")
    g.add_argument("--http-port", type=int, default=None, help="port of /metrics, /healthz and POST /ingest "
                                                                "(default [http] port)")
    if type_ != "push":
        g.add_argument("--no-http", action="store_true", help="serve no HTTP endpoint (no /metrics)")


def add_parsers(sub: Any) -> None:
    """Add ``ingest`` (with one sub-command per source type) and ``run`` to the ``fundflow`` parser."""
    ing = sub.add_parser("ingest", help="run one ingestor: mqtt, http-poll, websocket, replay or push",
                         description="Run one ingestor: validate at the edge, produce to Kafka keyed by symbol, "
                                     "dead-letter what is rejected.", epilog=EPILOG)
    isub = ing.add_subparsers(dest="source_type", required=True, metavar="SOURCE")
    for type_, cls in OPTIONS.items():
        p = isub.add_parser(type_, help=DESCRIPTIONS[type_], description=DESCRIPTIONS[type_], epilog=EPILOG)
        _common(p, type_)
        skip: tuple[str, ...] = ()
        if type_ == "replay":
            p.add_argument("tapes", nargs="*", metavar="FILE", help="NDJSON or CSV tapes (same as --file)")
            p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        optmod.add_arguments(p, cls, skip)
        p.set_defaults(func=_ingest)

    r = sub.add_parser("run", help="everything in one process: the configured sources, the consumer, HTTP",
                       description="Run every enabled [sources.NAME] of the config (mqtt, http-poll, websocket, "
                                   "replay; push is POST /ingest on the HTTP port), the Kafka consumer with its "
                                   "computations, and /metrics, the API and the board.", epilog=EPILOG)
    add_consumer_arguments(r, config_required=True)
    r.set_defaults(func=_run)


async def _ingest(args: argparse.Namespace) -> int:
    type_ = args.source_type
    name = args.name or type_
    cfg = config_from_args(args)
    if type_ == "replay" and args.tapes:
        args.files = list(args.tapes) + list(args.files or [])
    try:
        opts = source_options(type_, name, cfg, args)
    except ValueError as exc:
        print(f"fundflow ingest {type_}: {exc}")
        return 2
    if type_ == "push" and name != "push":
        cfg.sources.setdefault(name, {"type": "push"})
    svc = Service(cfg)
    stop = stop_event()
    proc = await IngestProcess(svc).start()
    svc.readiness = proc.ready
    topics = asyncio.create_task(ensure_topics(wiring.ingest_bus(svc), stop))
    site = None
    if type_ == "push" or not args.no_http:
        site = await start_site(svc.app(), cfg.http.host, cfg.http.port)
        log.info("serving %s/metrics%s", site_url(site), " and POST /ingest" if type_ == "push" else "")
    progress = None
    try:
        if type_ == "push":
            await stop.wait()
        else:
            kw: dict[str, Any] = {}
            if type_ == "replay":
                progress = progress_bar(sum(count_records(f) for f in opts.files), "replay", enabled=not args.quiet)
                kw["progress"] = progress.update
            proc.add(type_, name, opts, **kw)
            await proc.run(stop, exit_when_done=(type_ == "replay"))
    finally:
        stop.set()
        if progress is not None:
            progress.close()
        topics.cancel()
        await asyncio.gather(topics, return_exceptions=True)
        if site is not None:
            await site.cleanup()
        ok = await proc.close()
    log.info("ingest %s stopped (%s)", name, "everything delivered" if ok else "records NOT delivered")
    return 0 if ok else 1


async def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        wanted = [(n, t, source_options(t, n, cfg)) for n, t in configured_sources(cfg)]
    except ValueError as exc:
        print(f"fundflow run: {exc}")
        return 2
    svc = Service(cfg)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, svc.bus.ensure_topics)
    proc = await IngestProcess(svc).start()
    for name, type_, opts in wanted:
        if type_ != "push":  # push is POST /ingest on the app below
            proc.add(type_, name, opts)
    site = await start_site(svc.app(), cfg.http.host, cfg.http.port)
    log.info("serving %s/ (metrics, API, POST /ingest); %d source(s)", site_url(site), len(proc.sources))
    stop = stop_event()
    tasks = [asyncio.create_task(proc.run(stop)), asyncio.create_task(svc.runner.run(stop))]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("stopping: %r", t.exception())
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await site.cleanup()
        ok = await proc.close()
        await loop.run_in_executor(None, svc.bus.close)
    log.info("run stopped (%s)", "everything delivered" if ok else "records NOT delivered")
    return 0 if ok else 1
