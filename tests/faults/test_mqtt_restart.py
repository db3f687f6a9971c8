"""Mosquitto restarted twice during a QoS 1 publish run, with the ingestor and consumer as processes.

The in-process version (tests/ingest/test_mqtt_kafka.py) proves no QoS 1 message is lost between
Mosquitto and Kafka; this one runs ``fundflow ingest mqtt`` and ``fundflow consume`` as processes and
adds the accounting: messages sent = events applied + rejected, what the consumer read = applied +
duplicates (redelivered messages), and the final state equals a clean run.
"""

from __future__ import annotations

import threading
import time

import orjson

from harness.metrics import sample_sum
from harness.services import wait_until
from tests.faults import badinput
from tests.faults.pipeline import (
    EVENT_TOPICS,
    clean_run,
    dead_letters,
    event_ids,
    identity,
    read_all,
    wait_drained,
)
from tests.faults.test_restarts import start_pipeline
from tests.ingest.brokers import QosPublisher

N = 6_000
BAD = 30


def test_mosquitto_restarts_during_qos1_publish_run(kafka_factory, mosquitto_factory, tmp_path, ledger) -> None:
    kb = kafka_factory()
    mq = mosquitto_factory()
    consumer, mqtt, push = start_pipeline(kb, mq, tmp_path, "mqttrestart")
    push.stop()  # not needed here
    events = [badinput.good_trade(i, "mq") for i in range(N)]
    bad = [b'{"kind": "trade", "symbol": "513770.SH", "ts": ' + str(i).encode() for i in range(BAD)]
    pub = QosPublisher(mq)
    done = threading.Event()
    sent: set[bytes] = set()

    def publish() -> None:
        i = 0
        while i < N:
            # a feed holds while its broker is away (paho fails a publish made while disconnected)
            while not pub.client.is_connected():
                time.sleep(0.01)
            size = 1 if (i // 10) % 2 else 10
            chunk = events[i:i + size]
            pub.publish(f"md/etf/trades/{chunk[0]['symbol']}", orjson.dumps(chunk if size > 1 else chunk[0]))
            if i % 200 == 0:
                pub.publish("md/etf/trades/bad", bad[(i // 200) % BAD])
                sent.add(bad[(i // 200) % BAD])
            if i % 20 == 0:
                time.sleep(0.015)  # a feed, not a flood (~5 s): the restarts land in the middle of the run
            i += size
        done.set()

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        wait_until(lambda: sample_sum(mqtt.metrics(), "fundflow_events_ingested_total") > N // 5, 60, "a fifth in")
        mq.restart()  # SIGTERM, then start on the same port and persistence file
        wait_until(lambda: sample_sum(mqtt.metrics(), "fundflow_events_ingested_total") > N // 2, 60, "half in")
        mq.restart()
        assert done.wait(120)
        pub.wait(120)  # every message acknowledged by the broker (PUBACK)
        pub.close()
        sent_bad = len(sent)
        distinct = {identity(e) for e in events}
        wait_until(lambda: sample_sum(mqtt.metrics(), "fundflow_ingest_buffered_events") == 0
                   and sample_sum(mqtt.metrics(), "fundflow_events_ingested_total") >= N, 120, "ingestor through")
        status = wait_drained(consumer, N, 120)
        m = mqtt.metrics()
        assert sample_sum(m, "fundflow_source_reconnects_total", source="mqtt") >= 2
        on_topics = event_ids(read_all(kb.bootstrap, EVENT_TOPICS))
        records = sum(on_topics.values())
        ev = status["events"]
        assert set(on_topics) == distinct  # no QoS 1 message lost
        assert ev["applied"] == N and ev["rejected"] == 0
        assert records == ev["applied"] + ev["duplicates"], (records, ev)
        rejected = int(sample_sum(m, "fundflow_events_rejected_total", source="mqtt"))
        letters = [x for x in dead_letters(kb.bootstrap) if x["source"] == "mqtt"]
        assert len(letters) == rejected and len({x["raw"] for x in letters}) == sent_bad
        ref = clean_run(events)
        assert consumer.documents() == ref["documents"]
        assert consumer.alive() and mqtt.alive()
        assert mqtt.stop() == 0, mqtt.log_tail()
        assert consumer.stop() == 0, consumer.log_tail()
    finally:
        mqtt.stop()
        consumer.stop()
    ledger.add("MQTT broker restart x2", in_=records + rejected, applied=ev["applied"], rejected=rejected,
               duplicates=ev["duplicates"], restarts=2)
