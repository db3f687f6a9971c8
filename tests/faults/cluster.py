"""The production topology for the fault suite: fundflow's users and ACLs on a three-node SASL_SSL cluster.

The ``kafka_cluster`` fixture (tests/conftest.py) starts one cluster per session; each scenario takes
fresh topics (:func:`fresh_topics`) so what it counts is only what it sent.

Users (passwords generated per session, handed to processes through the environment only):

- ``ingest``: WRITE and DESCRIBE on the event and dead-letter topics, nothing else;
- ``consumer``: READ and DESCRIBE on those, READ/WRITE/DESCRIBE on the state topic,
  DESCRIBE_CONFIGS on all of them, READ on groups named ``cluster-*``;
- ``admin`` (super user): the harness, to create topics and look at leaders.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any

import orjson

from harness.services import KafkaCluster, wait_until
from monitor.bus import ALL_TOPICS, INGEST_TOPICS
from monitor.config import KafkaConfig
from monitor.events import STATE_TOPIC

GROUP_PREFIX = "cluster-"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


def grant_fundflow_acls(cluster: KafkaCluster) -> None:
    cluster.allow("ingest", ["WRITE", "DESCRIBE"], "TOPIC", INGEST_TOPICS)
    cluster.allow("consumer", ["READ", "DESCRIBE", "DESCRIBE_CONFIGS"], "TOPIC", ALL_TOPICS)
    cluster.allow("consumer", ["WRITE"], "TOPIC", [STATE_TOPIC])
    cluster.allow("consumer", ["READ"], "GROUP", [GROUP_PREFIX], prefixed=True)


def env(cluster: KafkaCluster, user: str, **extra: str) -> dict[str, str]:
    """A fundflow process's environment: the cluster, ``user``'s credentials, RF 3 / min ISR 2."""
    return {**cluster.fundflow_env(user), "FUNDFLOW_KAFKA__REPLICATION_FACTOR": str(REPLICATION_FACTOR),
            "FUNDFLOW_KAFKA__MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS), **extra}


def kafka_config(cluster: KafkaCluster, user: str | None = None) -> KafkaConfig:
    c = cluster.client_config(user)
    return KafkaConfig(bootstrap_servers=cluster.bootstrap, replication_factor=REPLICATION_FACTOR,
                       min_insync_replicas=MIN_INSYNC_REPLICAS, security_protocol="SASL_SSL",
                       sasl_mechanism="SCRAM-SHA-512", sasl_username=c["sasl_plain_username"],
                       sasl_password=c["sasl_plain_password"], ssl_cafile=c["ssl_cafile"])


def reader(cluster: KafkaCluster) -> dict[str, Any]:
    """kafka-python options for the harness's own reads of the topics (admin, everything visible)."""
    return {k: v for k, v in cluster.client_config().items() if k != "bootstrap_servers"}


def fresh_topics(cluster: KafkaCluster) -> None:
    """Delete fundflow's topics and have fundflow create them again (RF 3, min ISR 2), all replicas in sync."""
    from kafka.errors import UnknownTopicOrPartitionError

    from monitor.bus.kafka import KafkaBus

    admin = cluster.admin()
    try:
        present = [t for t in admin.list_topics() if t in ALL_TOPICS]
        if present:
            try:
                admin.delete_topics(present, timeout_ms=30_000)
            except UnknownTopicOrPartitionError:
                pass
            wait_until(lambda: not set(admin.list_topics()) & set(ALL_TOPICS), 60, "old topics deleted")
    finally:
        admin.close()
    bus = KafkaBus(kafka_config(cluster))
    wait_until(lambda: bus.ensure_topics() or True, 60, "topics created")
    cluster.wait_in_sync(ALL_TOPICS)


def most_leaders(cluster: KafkaCluster, topic: str) -> int:
    """The node that leads most partitions of ``topic``."""
    counts: dict[int, int] = {}
    for leader, _, _ in cluster.describe([topic])[topic].values():
        counts[leader] = counts.get(leader, 0) + 1
    return max(counts, key=lambda n: (counts[n], -n))


class PushClient:
    """POSTs NDJSON bodies the way a careful client does: on 503 it waits ``Retry-After`` and sends again.

    Every answer is recorded, so a test can say which statuses a client ever saw.
    """

    def __init__(self, url: str, token: str = "") -> None:
        self.url, self.token = url, token
        self.statuses: list[int] = []
        self.retry_after: list[str] = []
        self.accepted = 0

    def send(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """One POST: (status, headers, body), also for error statuses."""
        req = urllib.request.Request(self.url + "/ingest", data=body, method="POST",
                                     headers={"Content-Type": "application/x-ndjson"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def post(self, body: bytes, deadline_s: float = 180) -> dict[str, Any]:
        """Until the body is accepted (202); any answer but 202 or 503 + Retry-After fails the test."""
        end = time.monotonic() + deadline_s
        while True:
            status, headers, resp = self.send(body)
            self.statuses.append(status)
            if status == 202:
                doc = orjson.loads(resp)
                self.accepted += doc["accepted"]
                return doc
            assert status == 503 and "Retry-After" in headers, (status, headers, resp[:300])
            self.retry_after.append(headers["Retry-After"])
            assert time.monotonic() < end, f"still 503 after {deadline_s}s: {resp[:300]!r}"
            time.sleep(float(headers["Retry-After"]))

    def retries(self) -> int:
        return self.statuses.count(503)
