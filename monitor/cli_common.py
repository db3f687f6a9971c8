"""What the ``fundflow`` sub-commands share: logging, config from flags, the stop event, progress.

Its own module so that ``monitor.cli`` (the parser) and ``monitor.ingest.cli``
(the ingest commands it adds) both import it and not each other.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from tqdm import tqdm

from monitor import logs
from monitor.config import Config, load_config


def setup_logging(verbose: bool = False) -> None:
    """Defaults until the config is read (``config_from_args`` applies its ``[log]`` table)."""
    logs.setup_logging(verbose)


def config_from_args(args: argparse.Namespace) -> Config:
    """The TOML config (with FUNDFLOW_* env) and, over it, whichever process flags the command has."""
    cfg = load_config(getattr(args, "config", None))
    logs.setup_logging(getattr(args, "verbose", False), cfg.log, cfg.secrets())
    if getattr(args, "bootstrap", None):
        cfg.kafka.bootstrap_servers = args.bootstrap
    if getattr(args, "group", None):
        cfg.kafka.group_id = args.group
    if getattr(args, "buffer_max_events", None):
        cfg.kafka.buffer_max_events = args.buffer_max_events
    # `fundflow ingest` names its HTTP flags --http-host/--http-port: --host/--port there are a source's
    http = ("http_host", "http_port") if hasattr(args, "http_port") else ("host", "port")
    host, port = getattr(args, http[0], None), getattr(args, http[1], None)
    if host:
        cfg.http.host = host
    if port is not None:
        cfg.http.port = port
    if getattr(args, "live_clock", False):
        cfg.compute.live_clock = True
    return cfg


def add_consumer_arguments(p: argparse.ArgumentParser, config_required: bool = False) -> None:
    """The options of a process that consumes (``consume``, ``run``)."""
    p.add_argument("--config", required=config_required, help="TOML config file (FUNDFLOW_* env overrides)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (overrides [kafka] bootstrap_servers)")
    p.add_argument("--group", help="consumer group id (overrides [kafka] group_id)")
    p.add_argument("--host", default=None, help="HTTP bind address (default [http] host)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default [http] port)")
    p.add_argument("--live-clock", action="store_true",
                   help="advance the stream clock with the wall clock so quiet windows decay (live feeds)")


def stop_event() -> asyncio.Event:
    """Set on SIGTERM/SIGINT so every loop winds down and flushes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


class NoProgress:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def progress_bar(total: int, what: str, enabled: bool = True) -> Any:
    """A progress bar on stderr for long jobs (tqdm), silent for small ones."""
    if not enabled or total < 50_000:
        return NoProgress()
    return tqdm(total=total, desc=what, unit="ev", unit_scale=True, file=sys.stderr, mininterval=0.5)
