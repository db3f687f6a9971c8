"""Helpers for integration tests: produce simulated tapes to Kafka, run `fundflow consume` as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterable

import orjson

from monitor.bus.kafka import KafkaBus
from monitor.config import Config, KafkaConfig
from monitor.events import Validator
from monitor.calendars import default_calendars
from monitor.ingest.publisher import Publisher
from monitor.stats import PipelineStats
from tests.harness.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


def produce(bootstrap: str, events: Iterable[Any], partitions: int = 6, raw: Iterable[tuple[str, bytes]] = ()) -> PipelineStats:
    """Validate and produce events (dicts) like an ingestor does; ``raw`` goes straight to topics (poison)."""
    cfg = KafkaConfig(bootstrap_servers=bootstrap, partitions=partitions)
    bus = KafkaBus(cfg)
    bus.ensure_topics()
    stats = PipelineStats()
    pub = Publisher(bus, Validator(default_calendars()), stats, "test")
    for obj in events:
        pub.publish_obj(obj)
    for topic, value in raw:
        bus.produce(topic, b"poison", value)
    bus.flush()
    bus.close()
    return stats


class ConsumerProc:
    """`python -m monitor consume` on a free port; killable at any moment."""

    def __init__(self, bootstrap: str, group: str, log_path: Path, token: str = "") -> None:
        self.port = free_port()
        self.bootstrap, self.group, self.log_path, self.token = bootstrap, group, log_path, token
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "ConsumerProc":
        env = dict(os.environ, PYTHONPATH=str(REPO))
        if self.token:
            env["FUNDFLOW_HTTP__TOKEN"] = self.token
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "consume", "--bootstrap", self.bootstrap, "--group", self.group,
             "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return orjson.loads(body)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"consumer exited: {self.log_tail()}")
            try:
                return self.get("/readyz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(ready, timeout, "consumer ready")

    def applied(self) -> int:
        status = self.json("/api/v1/status")
        return int(status["events"]["applied"])

    def wait_applied(self, n: int, timeout: float = 120) -> None:
        """Until the consumer has applied n events and has nothing left to read."""
        def done() -> bool:
            if not self.alive():
                raise AssertionError(f"consumer exited: {self.log_tail()}")
            try:
                st = self.json("/api/v1/status")
            except OSError:
                return False
            return st["events"]["applied"] + st["events"]["duplicates"] >= n and st["consumer_lag_messages"] == 0
        wait_until(done, timeout, f"{n} events applied")

    def documents(self) -> dict[str, Any]:
        syms = [s["symbol"] for s in self.json("/api/v1/symbols")["symbols"]]
        return {s: self.json(f"/api/v1/symbols/{s}") for s in syms}

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def business_lines(metrics_text: str) -> list[str]:
    """The business series of a /metrics page (pipeline counters differ between runs)."""
    keep = ("fundflow_etf_", "fundflow_southbound_")
    return sorted(line for line in metrics_text.splitlines() if line.startswith(keep))
