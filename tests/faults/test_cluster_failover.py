"""Brokers fail under a running pipeline on the production topology: three nodes, RF 3, min.insync.replicas 2.

Ingestors and a consumer run as processes over SASL_SSL with their own users and ACLs; the test never
restarts them: they recover by themselves. Each scenario starts from fresh topics (created by fundflow with
the configured replication), so what it counts is only what it sent.

1. leader failover: kill -9 the node leading most partitions of the trades topic mid-day, restart it later;
   final API and metrics equal an uninterrupted run, in = applied + rejected + duplicates;
2. rolling restart: every node in turn stopped with SIGTERM and started again while a push client sends;
   the client sees nothing worse than a 503 it retries, nothing is lost;
3. two nodes down (below min ISR): the push ingestor stays alive (/healthz), says the bus is unavailable
   (/readyz 503, fundflow_bus_available 0), answers 503 + Retry-After instead of taking what it cannot make
   durable; when a node returns, what it had buffered goes through, none lost.

Plus the client-level cause of a stall seen in (1): offsets asked of a leader that moved to another live
node (``test_offsets_follow_a_leader_moved_between_live_nodes``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from harness.fundflow import ConsumerProc, IngestProc, http
from harness.services import KafkaCluster, wait_until
from monitor.bus import ALL_TOPICS
from monitor.events import TOPICS
from monitor.simulator import Scenario, generate
from tests.faults.cluster import GROUP_PREFIX, PushClient, env, fresh_topics, kafka_config, most_leaders, reader
from tests.faults.pipeline import EVENT_TOPICS, business_lines, clean_run, event_ids, identity, read_all, wait_drained
from tests.faults.test_restarts import Feeds, account

DAY = Scenario(days=1, trade_interval_s=20, tick_interval_s=300)  # one simulated trading day, ~3,900 events


def tape() -> list[dict[str, Any]]:
    return list(generate(DAY))


def consumer_proc(cluster: KafkaCluster, name: str, tmp_path: Any, **extra: str) -> ConsumerProc:
    proc = ConsumerProc(cluster.bootstrap, GROUP_PREFIX + name, tmp_path / "consumer.log",
                        env=env(cluster, "consumer", **extra)).start()
    proc.wait_ready(120)
    return proc


def push_proc(cluster: KafkaCluster, tmp_path: Any) -> IngestProc:
    proc = IngestProc("push", cluster.bootstrap, tmp_path / "push.log", env=env(cluster, "ingest")).start()
    proc.wait_http()
    return proc


def ndjson_bodies(events: list[dict[str, Any]], size: int = 200) -> list[bytes]:
    lines = [orjson.dumps(e) for e in events]
    return [b"\n".join(lines[i:i + size]) for i in range(0, len(lines), size)]


def assert_same_as_clean_run(consumer: ConsumerProc, events: list[dict[str, Any]], ref: dict[str, Any]) -> None:
    assert consumer.documents() == ref["documents"]
    assert business_lines(consumer.metrics()) == ref["metrics"]


def buffered(proc: IngestProc) -> float:
    """The ingestor's fundflow_ingest_buffered_events gauge: accepted, not yet acknowledged by the bus."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for fam in text_string_to_metric_families(proc.metrics())
               if fam.name == "fundflow_ingest_buffered_events" for s in fam.samples)


def leaders_moved(cluster: KafkaCluster, node_id: int) -> bool:
    """Every partition of fundflow's topics has a live leader other than ``node_id``."""
    return all(0 <= leader != node_id for parts in cluster.describe(ALL_TOPICS).values()
               for leader, _, _ in parts.values())


def mark(t0: float, what: str) -> None:
    print(f"[{time.monotonic() - t0:6.1f}s] {what}", flush=True)


def test_leader_failover_kill9_then_restart_loses_nothing(kafka_cluster: KafkaCluster, mosquitto_factory: Any,
                                                          tmp_path: Any, ledger: Any) -> None:
    cluster = kafka_cluster
    events = tape()
    ref = clean_run(events)
    fresh_topics(cluster)
    mq = mosquitto_factory()
    t0 = time.monotonic()
    # checkpoints every 2 s instead of 30: several of them fall into the outage, against moved leaders
    consumer = consumer_proc(cluster, "failover", tmp_path, FUNDFLOW_KAFKA__CHECKPOINT_INTERVAL_S="2")
    mqtt = IngestProc("mqtt", cluster.bootstrap, tmp_path / "mqtt.log",
                      ["--host", mq.host, "--port", str(mq.port), "--topic", "md/#", "--client-id", "failover-mqtt",
                       "--backoff-max-s", "1"], env=env(cluster, "ingest")).start()
    push = push_proc(cluster, tmp_path)
    mqtt.wait_http()
    wait_until(lambda: 'fundflow_source_connected{source="mqtt"} 1.0' in mqtt.metrics(), 30, "MQTT connected")
    feeds = Feeds(mq, push)
    phases = [events[i * len(events) // 4:(i + 1) * len(events) // 4] for i in range(4)]
    mark(t0, "pipeline up")
    feeds.send(phases[0], 0)
    wait_until(lambda: consumer.status()["events"]["applied"] > 0, 60, "first events applied")
    victim = cluster.node(most_leaders(cluster, TOPICS["trade"]))
    mark(t0, f"kill -9 node {victim.node_id}")
    victim.kill()
    feeds.send(phases[1], 1)  # at once: the dead node still leads its partitions for broker.session.timeout.ms
    wait_until(lambda: leaders_moved(cluster, victim.node_id), 60, f"partitions led by node {victim.node_id} moved")
    mark(t0, "leaders moved")
    feeds.send(phases[2], 2)
    # the pipeline works on two nodes: everything sent so far applied while the victim is still down
    so_far = len({identity(e) for e in events[:3 * len(events) // 4]})
    wait_until(lambda: consumer.status()["events"]["applied"] >= so_far, 120, "applied on two nodes")
    mark(t0, f"{so_far} events applied on two nodes; checkpoints failed so far: "
             f"{consumer.log_text().count('checkpoint failed')}; restart")
    victim.start()
    mark(t0, f"node {victim.node_id} back after {victim.start_seconds:.1f}s")
    feeds.send(phases[3], 3)
    feeds.close()
    numbers = account(cluster, consumer, [mqtt, push], events, feeds, tmp_path, client=reader(cluster))
    mark(t0, "accounted")
    assert_same_as_clean_run(consumer, events, ref)
    assert all(p.alive() for p in (consumer, mqtt, push))  # nobody restarted them
    assert numbers["in"] == numbers["applied"] + numbers["rejected"] + numbers["duplicates"]
    cluster.wait_in_sync(EVENT_TOPICS)
    ledger.add("cluster: leader kill -9", in_=numbers["in"], applied=numbers["applied"], rejected=numbers["rejected"],
               duplicates=numbers["duplicates"], restarts=1, note=f"{feeds.retried} push retries")
    for p in (consumer, mqtt, push):
        assert p.stop() == 0


def test_rolling_sigterm_restart_while_events_flow(kafka_cluster: KafkaCluster, tmp_path: Any, ledger: Any) -> None:
    cluster = kafka_cluster
    events = [e for e in tape() if e["kind"] in ("trade", "southbound")]
    ref = clean_run(events)
    fresh_topics(cluster)
    consumer = consumer_proc(cluster, "rolling", tmp_path)
    push = push_proc(cluster, tmp_path)
    client = PushClient(push.url)
    bodies = ndjson_bodies(events, 100)
    done = threading.Event()
    failures: list[BaseException] = []

    def send() -> None:
        try:
            for body in bodies:
                client.post(body)
                if not done.is_set():
                    time.sleep(0.05)  # spread the day over the whole rolling restart
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            failures.append(exc)

    t0 = time.monotonic()
    sender = threading.Thread(target=send, name="push-client")
    sender.start()
    for node in cluster.nodes:
        mark(t0, f"SIGTERM node {node.node_id}")
        assert node.stop() in (0, 143), node.log_tail()  # a clean, controlled shutdown (the JVM exits 143 on SIGTERM)
        node.start()
        cluster.wait_in_sync(EVENT_TOPICS)  # the next node goes only when this one has caught up
        mark(t0, f"node {node.node_id} back and in sync")
    done.set()
    sender.join(300)
    assert not sender.is_alive() and not failures, failures
    # what the client saw: 202, or a 503 with Retry-After that it sent again; never an error or a lost body
    assert set(client.statuses) <= {202, 503}
    assert client.accepted == len(events)
    wait_until(lambda: buffered(push) == 0, 120, "push buffer empty")
    status = wait_drained(consumer, len(events), 180)
    on_topics = event_ids(read_all(cluster.bootstrap, EVENT_TOPICS, **reader(cluster)))
    assert set(on_topics) == {identity(e) for e in events}
    assert status["events"]["applied"] == len(events)
    assert_same_as_clean_run(consumer, events, ref)
    ledger.add("cluster: rolling SIGTERM", in_=sum(on_topics.values()), applied=status["events"]["applied"],
               duplicates=sum(on_topics.values()) - len(events), restarts=len(cluster.nodes),
               note=f"{client.retries()} push retries")
    for p in (consumer, push):
        assert p.stop() == 0


def test_two_brokers_down_push_refuses_with_retry_after_then_delivers(kafka_cluster: KafkaCluster, tmp_path: Any,
                                                                      ledger: Any) -> None:
    cluster = kafka_cluster
    events = [e for e in tape() if e["kind"] in ("trade", "southbound")][:2000]
    fresh_topics(cluster)
    push = push_proc(cluster, tmp_path)
    client = PushClient(push.url)
    bodies = ndjson_bodies(events, 100)
    client.post(bodies[0])
    wait_until(lambda: buffered(push) == 0, 60, "first body durable")
    assert http("GET", push.url + "/readyz")[0] == 200
    t0 = time.monotonic()
    down = [n for n in cluster.nodes if n.node_id != most_leaders(cluster, TOPICS["trade"])]
    for node in down:
        node.kill()
    mark(t0, f"nodes {[n.node_id for n in down]} down")
    # accepted until the first write fails (the bound: one flush timeout), then refused
    sent = 1
    while http("GET", push.url + "/readyz")[0] == 200:
        assert time.monotonic() - t0 < 60, "the ingestor never noticed the bus was gone"
        if sent < len(bodies) // 2:
            status, _ = http("POST", push.url + "/ingest", bodies[sent])
            if status == 202:
                sent += 1
        time.sleep(0.2)
    mark(t0, f"not ready after {sent - 1} more bodies")
    assert "fundflow_bus_available 0.0" in push.metrics()
    held = buffered(push)
    assert held > 0  # the bodies taken before the first write failed wait in the buffer, within its bound
    assert http("GET", push.url + "/healthz")[0] == 200  # alive: nothing for a liveness probe to restart
    status, headers, body = client.send(bodies[sent])
    assert status == 503 and int(headers["Retry-After"]) > 0, (status, headers, body)
    assert "not acknowledging" in orjson.loads(body)["error"]["message"]
    mark(t0, f"{held:.0f} events buffered, pushes refused; restarting node {down[0].node_id}")
    down[0].start()
    wait_until(lambda: http("GET", push.url + "/readyz")[0] == 200, 120, "ready again")
    wait_until(lambda: buffered(push) == 0, 120, "buffer delivered")
    assert "fundflow_bus_available 1.0" in push.metrics()
    mark(t0, "buffer delivered with one node still down")
    for body in bodies[sent:]:
        client.post(body)
    down[1].start()
    cluster.wait_in_sync(EVENT_TOPICS)
    mark(t0, "all nodes back")
    wait_until(lambda: buffered(push) == 0, 60, "all delivered")
    on_topics = event_ids(read_all(cluster.bootstrap, EVENT_TOPICS, **reader(cluster)))
    assert set(on_topics) == {identity(e) for e in events}  # none lost: the buffered ones and the retried ones
    assert push.stop() == 0
    ledger.add("cluster: two nodes down", in_=sum(on_topics.values()), applied=len(events),
               duplicates=sum(on_topics.values()) - len(events), restarts=2,
               note=f"{held:.0f} buffered during the outage, then pushes refused with 503 + Retry-After")


def test_offsets_follow_a_leader_moved_between_live_nodes(kafka_cluster: KafkaCluster) -> None:
    """The consumer's end/beginning offsets answer within one short attempt after leadership moves.

    Leadership moves between running nodes (here: replicas reordered, then a preferred-leader election,
    which Kafka also runs by itself after a restarted node is back). kafka-python alone keeps asking
    the old leader, which answers NOT_LEADER_OR_FOLLOWER, for its whole 30 s timeout: the consumer's
    loop (lag refresh, recovery on assignment) stalled that long.
    """
    from kafka import TopicPartition
    from kafka.admin import NewTopic

    from monitor.bus.kafka import OFFSETS_ATTEMPT_MS, KafkaBus

    cluster = kafka_cluster
    topic = "harness.leader-moves"
    admin = cluster.admin()
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic], timeout_ms=30_000)
            wait_until(lambda: topic not in admin.list_topics(), 30, "old topic deleted")
        admin.create_topics([NewTopic(topic, 3, 3, topic_configs={"min.insync.replicas": "2"})])
    finally:
        admin.close()
    cluster.wait_in_sync([topic])
    bus = KafkaBus(kafka_config(cluster))
    for i in range(30):
        bus.produce(topic, None, b"x", partition=i % 3)
    bus.flush(30)
    consumer = bus.consumer("cluster-leader-moves", [topic])
    tps = [(topic, p) for p in range(3)]
    try:
        assert consumer.end_offsets(tps) == {tp: 10 for tp in tps}  # leaders cached
        before = {p: replicas for p, (_, replicas, _) in cluster.describe([topic])[topic].items()}
        moved = {p: replicas[1:] + replicas[:1] for p, replicas in before.items()}  # next replica preferred
        admin = cluster.admin()
        try:
            admin.alter_partition_reassignments({TopicPartition(topic, p): r for p, r in moved.items()})
            wait_until(lambda: {p: r for p, (_, r, _) in cluster.describe([topic])[topic].items()} == moved, 30,
                       "replicas reordered")
            admin.elect_leaders(0, [topic], raise_errors=False)
        finally:
            admin.close()
        wait_until(lambda: all(leader == moved[p][0] for p, (leader, _, _) in cluster.describe([topic])[topic].items()),
                   30, "leaders moved to live nodes")
        t0 = time.monotonic()
        assert consumer.end_offsets(tps) == {tp: 10 for tp in tps}
        assert consumer.beginning_offsets(tps) == {tp: 0 for tp in tps}
        took = time.monotonic() - t0
        assert took < 2 * OFFSETS_ATTEMPT_MS / 1000 + 3, f"offsets took {took:.1f}s after the leader moved"
    finally:
        consumer.close()
        bus.close()
