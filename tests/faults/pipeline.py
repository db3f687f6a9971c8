"""Helpers for the fault suite: ingestors and consumers as processes, a clean in-process reference,
counting what is on the Kafka topics, reading counters from /metrics.

The consumer process is ``tests.integration.fundflow_procs.ConsumerProc`` (the lead's helper), with a
config file and extra environment when a scenario needs them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import orjson
from prometheus_client.parser import text_string_to_metric_families

from monitor.events import DEADLETTER_TOPIC, TOPICS
from tests.harness.services import free_port, wait_until
from tests.integration.fundflow_procs import REPO, ConsumerProc, business_lines

EVENT_TOPICS = tuple(TOPICS.values())


# --------------------------------------------------------------------------------------------- processes
class Consumer(ConsumerProc):
    """``python -m monitor consume`` with an optional config file and extra environment."""

    def __init__(self, bootstrap: str, group: str, log_path: Path, token: str = "", config: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(bootstrap, group, log_path, token)
        self.config, self.extra_env = config, dict(env or {})
        self.starts = 0

    def start(self) -> "Consumer":
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.extra_env)
        if self.token:
            env["FUNDFLOW_HTTP__TOKEN"] = self.token
        cmd = [sys.executable, "-m", "monitor", "consume", "--bootstrap", self.bootstrap, "--group", self.group,
               "--port", str(self.port)]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.starts += 1
        return self

    def status(self) -> dict[str, Any]:
        return self.json("/api/v1/status")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, (status, body[:200])
        return body.decode()


class IngestProc:
    """``python -m monitor ingest TYPE ...`` with /metrics on a free port."""

    def __init__(self, type_: str, bootstrap: str, log_path: Path, args: Iterable[str] = (),
                 env: dict[str, str] | None = None, config: Path | None = None) -> None:
        self.type, self.bootstrap, self.log_path = type_, bootstrap, log_path
        self.args, self.extra_env, self.config = list(args), dict(env or {}), config
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "IngestProc":
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.extra_env)
        cmd = [sys.executable, "-m", "monitor", "ingest", self.type, "--bootstrap", self.bootstrap,
               "--http-port", str(self.port)] + self.args
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, timeout: float = 30) -> None:
        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"ingest {self.type} exited: {self.log_tail()}")
            try:
                return http("GET", self.url + "/healthz", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout, f"ingest {self.type} serving")

    def metrics(self, token: str = "") -> str:
        status, body = http("GET", self.url + "/metrics", token=token)
        assert status == 200, (status, body[:200])
        return body.decode()

    def stop(self) -> int | None:
        """SIGTERM: stop reading, deliver the buffer, exit 0 (None when it was not started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


def http(method: str, url: str, body: bytes | None = None, token: str = "", headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# --------------------------------------------------------------------------------------------- counting
def counter(text: str, name: str, **labels: str) -> float:
    """Sum of a counter's samples (``name`` without ``_total``) whose labels include ``labels``."""
    total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name != name:
            continue
        for s in fam.samples:
            if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def by_label(text: str, name: str, label: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for fam in text_string_to_metric_families(text):
        if fam.name == name:
            for s in fam.samples:
                if s.name.endswith("_total"):
                    out[s.labels.get(label, "")] += int(s.value)
    return out


def read_all(bootstrap: str, topics: Iterable[str], timeout: float = 60) -> list[Any]:
    """Every record of ``topics`` (all partitions, from the beginning, up to the end offsets now)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                      fetch_max_bytes=52_428_800, max_partition_fetch_bytes=8_388_608)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        ends = c.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(c.position(tp) < ends[tp] for tp in tps):
            assert time.monotonic() < deadline, "reading the topics timed out"
            for batch in c.poll(timeout_ms=500, max_records=50_000).values():
                out.extend(batch)
        return out
    finally:
        c.close()


def event_ids(records: Iterable[Any]) -> Counter[str]:
    """trade_id / symbol+channel+seq / symbol+date of event records: how often each is on the topics."""
    ids: Counter[str] = Counter()
    for r in records:
        ids[identity(orjson.loads(r.value))] += 1
    return ids


def identity(v: dict[str, Any]) -> str:
    kind = v.get("kind")
    if kind == "trade":
        return f"t|{v['trade_id']}"
    if kind == "southbound":
        return f"s|{v['symbol']}|{v['channel']}|{v['seq']}"
    return f"{kind}|{v['symbol']}|{v.get('date')}"  # one units / daily record per symbol and date


def dead_letters(bootstrap: str) -> list[dict[str, Any]]:
    out = []
    for r in read_all(bootstrap, [DEADLETTER_TOPIC]):
        doc = orjson.loads(r.value)
        doc["raw"] = base64.b64decode(doc["original"])
        out.append(doc)
    return out


# --------------------------------------------------------------------------------------------- reference
def clean_run(events: Iterable[dict[str, Any]], config: Any = None) -> dict[str, Any]:
    """The same events through the same code on the embedded bus, uninterrupted: the reference.

    Returns the API documents per symbol (as ``ConsumerProc.documents()`` gives them) and the business
    series of /metrics.
    """
    from prometheus_client import generate_latest

    from monitor.bus.memory import MemoryBus
    from monitor.calendars import iso
    from monitor.config import Config
    from monitor.service import Service

    cfg = config or Config()
    bus = MemoryBus(cfg.kafka.partitions)
    bus.ensure_topics()
    svc = Service(cfg, bus=bus, live_clock=False)
    pub = svc.publisher("reference")
    n = 0
    for ev in events:
        assert pub.publish_obj(ev) is not None, ev
        n += 1
    asyncio.run(svc.runner.run(asyncio.Event(), until_caught_up=True))
    eng = svc.engine
    now = eng.now_ms()
    docs = {}
    for s in eng.symbols():
        doc = {"symbol": s, "as_of": iso(now) if now is not None else None, **eng.symbol_doc(s)}
        docs[s] = orjson.loads(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    return {"documents": docs, "metrics": business_lines(generate_latest(svc.registry).decode()),
            "applied": sum(eng.applied.values()), "events": n}


def wait_drained(proc: ConsumerProc, applied: int, timeout: float = 120) -> dict[str, Any]:
    """Until the consumer applied ``applied`` events, has no lag and is ready; returns its status."""
    last: dict[str, Any] = {}

    def done() -> bool:
        nonlocal last
        if not proc.alive():
            raise AssertionError(f"consumer exited: {proc.log_tail()}")
        try:
            last = proc.json("/api/v1/status")
        except OSError:
            return False
        ev = last["events"]
        return bool(last["ready"]) and ev["applied"] >= applied and last["consumer_lag_messages"] == 0

    try:
        wait_until(done, timeout, f"{applied} events applied")
    except Exception as exc:
        raise AssertionError(f"{exc}; last status {last}; log:\n{proc.log_tail()}") from None
    return last
