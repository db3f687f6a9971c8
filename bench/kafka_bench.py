"""Measurements 2-4 against a real Kafka broker (harness/, KRaft from the Maven jars).

Everything that consumes runs as its own process, so CPU seconds are per process:
- the limit: ``bench.rawpoll`` (bare kafka-python poll loop, count only);
- ``python -m monitor consume`` (the real CLI), one process, then two in one group;
- the peer: ``bench.peer_quix`` (Quix Streams);
- latency: ``bench.latency_producer`` at a steady rate into a caught-up ``fundflow consume``,
  scraping /metrics for the stream clock.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson

from bench.common import REPO, env, percentile, proc_cpu
from bench.tape import Rec
from harness.fundflow import ConsumerProc


class BenchError(RuntimeError):
    """A benchmark could not produce a valid number (crash, wrong counts): fails the run."""


def start_broker(workdir: Path) -> Any:
    from harness.services import KafkaBroker

    # both consumers of the scale-out run must land in the same first generation
    broker = KafkaBroker(workdir, extra_config={"group.initial.rebalance.delay.ms": 3000})
    return broker.start()


def fill(bootstrap: str, recs: list[Rec], partitions: int = 6) -> float:
    """Create fundflow's topics and produce the tape (confluent-kafka when present: it is fast)."""
    from kafka.partitioner.default import murmur2

    from monitor.bus.kafka import KafkaBus
    from monitor.config import KafkaConfig

    KafkaBus(KafkaConfig(bootstrap_servers=bootstrap, partitions=partitions)).ensure_topics()
    t0 = time.perf_counter()
    parts: dict[bytes, int] = {}

    def part(key: bytes) -> int:
        p = parts.get(key)
        if p is None:
            p = parts[key] = (murmur2(key) & 0x7FFFFFFF) % partitions
        return p

    try:  # the optional extra `fast`: the faster producer when it is installed
        from confluent_kafka import Producer
    except ImportError:
        Producer = None  # noqa: N806 - the class, or None without the extra
    if Producer is not None:
        prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 2_000_000, "compression.type": "none"})
        errors: list[Any] = []

        def report(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(err)

        for topic, key, value, ts in recs:
            while True:
                try:
                    prod.produce(topic, value, key, partition=part(key), timestamp=ts, on_delivery=report)
                    break
                except BufferError:
                    prod.poll(0.05)
            prod.poll(0)
        if prod.flush(120):
            raise BenchError("tape not fully delivered")
        if errors:
            raise BenchError(f"{len(errors)} tape records failed: {errors[0]}")
    else:
        from kafka import KafkaProducer

        prod = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, batch_size=1_000_000)
        for topic, key, value, ts in recs:
            prod.send(topic, value=value, key=key, partition=part(key), timestamp_ms=ts)
        prod.flush()
        prod.close()
    return time.perf_counter() - t0


def end_offsets_total(bootstrap: str, topics: list[str]) -> int:
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (c.partitions_for_topic(t) or ())]
        return sum(c.end_offsets(tps).values())
    finally:
        c.close()


def _child(module: str, *args: str, timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env(), capture_output=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"{module} failed (exit {proc.returncode}): {proc.stdout.decode()[-1500:]}"
                         f"{proc.stderr.decode()[-3000:]}")
    return orjson.loads(lines[-1])


def raw_poll(bootstrap: str, topics: list[str], n: int, timeout: float = 600) -> dict[str, Any]:
    return _child("bench.rawpoll", "--bootstrap", bootstrap, "--topics", ",".join(topics), "--expect", str(n),
                  "--group", f"bench-raw-{uuid.uuid4().hex[:8]}", "--timeout", str(timeout), timeout=timeout + 60)


def quix(bootstrap: str, n: int, timeout: float = 600) -> dict[str, Any]:
    """The peer over the first ``n`` records of the same topics (it is too slow for the whole tape)."""
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as d:
        return _child("bench.peer_quix", "--bootstrap", bootstrap, "--expect", str(n), "--group",
                      f"bench-quix-{uuid.uuid4().hex[:8]}", "--state-dir", d, "--timeout", str(timeout),
                      timeout=timeout + 60)


# -- fundflow consume as a process ---------------------------------------------------------
class Consume(ConsumerProc):
    """`python -m monitor consume` on a free port (the real CLI, default config, kafka-python), started at once."""

    def __init__(self, bootstrap: str, group: str, log_path: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(bootstrap, group, log_path, env=extra_env)
        self.start()

    def body(self, path: str, timeout: float = 10) -> bytes:
        status, body = self.get(path, timeout=timeout)
        if status != 200:
            raise BenchError(f"{path} answered {status}: {body[:200]!r}")
        return body

    def status(self) -> dict[str, Any] | None:  # type: ignore[override]  # None: the bench polls before HTTP is up
        """The status document, or None while the HTTP server is not up yet."""
        try:
            return self.json("/api/v1/status")
        except OSError:
            if not self.alive():
                raise BenchError(f"fundflow consume exited ({self.proc.returncode}):\n{self.log_tail()}") from None
            return None

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)


def applied_in_metrics(text: str) -> int:
    return int(sum(float(m) for m in re.findall(r"^fundflow_events_applied_total\{[^}]*\} (\S+)$", text, re.M)))


def consumer_last_apply(text: str) -> float:
    m = re.search(r'^fundflow_last_event_timestamp_seconds\{source="consumer"\} (\S+)$', text, re.M)
    if not m:
        raise BenchError("no fundflow_last_event_timestamp_seconds{source=\"consumer\"} in /metrics")
    return float(m.group(1))


def _ready(c: Consume) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{c.port}/readyz", timeout=5).status == 200
    except OSError:
        if c.proc.poll() is not None:
            raise BenchError(f"fundflow consume exited ({c.proc.returncode}):\n{c.log_tail()}") from None
        return False


def run_consumers(bootstrap: str, n: int, procs: int, logdir: Path, timeout: float = 600,
                  keep: bool = False, attempts: int = 2,
                  backend: str = "kafka-python") -> tuple[dict[str, Any], list[Consume]]:
    """:func:`consumers_once`, again with a fresh group when a rebalance during the run re-applied events."""
    for attempt in range(attempts):
        try:
            return consumers_once(bootstrap, n, procs, logdir, timeout, keep, backend)
        except Rebalanced:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Rebalanced(BenchError):
    pass


def consumers_once(bootstrap: str, n: int, procs: int, logdir: Path, timeout: float = 600,
                   keep: bool = False, backend: str = "kafka-python") -> tuple[dict[str, Any], list[Consume]]:
    """Start ``procs`` consumers in one fresh group and time them through the pre-filled topics.

    Start: the first consumer logs its partition assignment (it applies its first batch next).
    End: the wall time of the last applied batch, as the consumers' own /metrics report it
    (``fundflow_last_event_timestamp_seconds{source="consumer"}``), read once every consumer
    is ready (caught up with the end offsets it was assigned). /status and /metrics are not
    polled while they work: both render every symbol. The counts in /metrics must be exactly N.
    CPU seconds: all consumer processes from the start to readiness."""
    group = f"bench-ff-{uuid.uuid4().hex[:8]}"
    cons = [Consume(bootstrap, group, logdir / f"consume-{group}-{i}.log", {"FUNDFLOW_KAFKA__BACKEND": backend})
            for i in range(procs)]
    try:
        deadline = time.monotonic() + timeout
        t0 = None
        cpu0 = 0.0
        while t0 is None:
            if time.monotonic() > deadline:
                raise BenchError(f"no partition assignment in {timeout}s:\n{cons[0].log_tail()}")
            for c in cons:
                if c.proc.poll() is not None:
                    raise BenchError(f"fundflow consume exited ({c.proc.returncode}):\n{c.log_tail()}")
                if "partitions assigned" in c.log_text():
                    t0 = time.time()
                    cpu0 = sum(x.cpu() for x in cons)
                    break
            time.sleep(0.01)
        pending = set(range(procs))
        while pending:
            if time.monotonic() > deadline:
                raise BenchError(f"consumers not caught up in {timeout}s:\n{cons[0].log_tail()}")
            for i in list(pending):
                # /readyz answers 200 before the first assignment too (nothing to recover yet): only a
                # ready seen after the consumer logged its assignment means caught up
                if "partitions assigned" in cons[i].log_text() and _ready(cons[i]):
                    pending.discard(i)
            time.sleep(0.05)
        cpu1 = sum(x.cpu() for x in cons)
        texts = [c.body("/metrics", timeout=30).decode() for c in cons]
        counted = [applied_in_metrics(t) for t in texts]
        if sum(counted) != n:
            if sum(counted) > n and any("partitions revoked" in c.log_text() for c in cons):
                raise Rebalanced(f"a rebalance during the run re-applied events: {counted}")
            raise BenchError(f"consumers applied {counted} = {sum(counted)} events, expected exactly {n}")
        t1 = max(consumer_last_apply(t) for t in texts)
        secs = t1 - t0
        cpu = cpu1 - cpu0
        res = {"backend": backend, "processes": procs, "events": n, "seconds": secs, "cpu_seconds": cpu,
               "eps": n / secs, "eps_per_cpu": n / cpu if cpu else float("nan"), "per_process_applied": counted}
        if not keep:
            for c in cons:
                c.stop()
        return res, cons
    except BaseException:
        for c in cons:
            c.stop()
        raise


def latency(bootstrap: str, consumer: Consume, start_ms: int, rate: float, seconds: float, warmup: float,
            etfs: int, scrape_every: float = 0.2) -> dict[str, Any]:
    """Producer at ``rate`` events/s; scrape /metrics every ``scrape_every`` s; latency = time the response
    arrived - production time of the newest event it shows (event time is the producer's wall clock,
    shifted). Also reported: the same measured from the request's start (leaves the render time out)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_producer", "--bootstrap", bootstrap, "--rate", str(rate),
         "--seconds", str(seconds), "--etfs", str(etfs), "--start-ms", str(start_ms)],
        cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if not first.startswith(b"{"):
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise BenchError(f"latency producer failed: {first!r} {err}")
        anchor = orjson.loads(first)
        wall0, ts0 = anchor["wall0"], anchor["ts0"]
        samples: list[float] = []
        at_request: list[float] = []
        renders: list[float] = []
        pat = re.compile(rb"^fundflow_stream_as_of_timestamp_seconds (\S+)$", re.M)
        while proc.poll() is None:
            t_req = time.time()
            body = consumer.body("/metrics", timeout=30)
            t_resp = time.time()
            m = pat.search(body)
            if m and t_req - wall0 > warmup:
                as_of_ms = float(m.group(1)) * 1000
                if as_of_ms >= ts0:
                    produced = wall0 + (as_of_ms - ts0) / 1000
                    samples.append(t_resp - produced)
                    at_request.append(t_req - produced)
                    renders.append(t_resp - t_req)
            time.sleep(max(0.0, scrape_every - (time.time() - t_req)))
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise BenchError(f"latency producer failed: {err.decode()[-2000:]}")
        done = orjson.loads([ln for ln in out.decode().splitlines() if ln.startswith("{")][-1])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if len(samples) < 5:
        raise BenchError(f"only {len(samples)} latency samples")
    return {"rate_target": rate, "rate_sent": done["rate"], "events": done["sent"], "samples": len(samples),
            "p50_ms": percentile(samples, 0.5) * 1000, "p99_ms": percentile(samples, 0.99) * 1000,
            "max_ms": max(samples) * 1000, "scrape_ms_median": percentile(renders, 0.5) * 1000,
            "at_request_p50_ms": percentile(at_request, 0.5) * 1000,
            "at_request_p99_ms": percentile(at_request, 0.99) * 1000}
