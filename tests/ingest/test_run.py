"""`fundflow run --config FILE`: the configured sources, the consumer and HTTP in one process.

Scenario: two simulated trading days split over three sources of one config — ETF trades from a
replay tape, southbound ticks over MQTT, units and southbound daily records pushed to POST /ingest.
The process must end with exactly the state of the same events run through the embedded bus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from harness.fundflow import FundflowProc, http
from harness.metrics import sample_value
from harness.services import wait_until
from monitor.simulator import Scenario, generate
from tests.faults.pipeline import clean_run
from tests.ingest.brokers import QosPublisher


class RunProc(FundflowProc):
    name = "fundflow run"

    def __init__(self, bootstrap: str, config: Path, log_path: Path) -> None:
        super().__init__(log_path, config=config)
        self.bootstrap = bootstrap

    def command(self) -> list[str]:
        return ["run", "--bootstrap", self.bootstrap, "--group", "run-test", "--port", str(self.port)]


def test_run_feeds_every_configured_source_into_one_consumer(kafka_factory, mosquitto, tmp_path) -> None:
    kafka = kafka_factory()  # a broker of its own: the count below is of exactly these events
    events = list(generate(Scenario(days=2, iopv=False, quota=False)))  # the kinds the three sources carry here
    trades = [e for e in events if e["kind"] == "trade"]
    ticks = [e for e in events if e["kind"] == "southbound"]
    pushed = [e for e in events if e["kind"] in ("units", "southbound_daily")]
    tape = tmp_path / "trades.ndjson"
    tape.write_bytes(b"\n".join(orjson.dumps(e) for e in trades) + b"\n")
    config = tmp_path / "fundflow.toml"
    config.write_text(f"""
[sources.tape]
type = "replay"
files = ["{tape}"]
speed = "max"

[sources.feed]
type = "mqtt"
host = "{mosquitto.host}"
port = {mosquitto.port}
topics = ["md/run/#"]
client_id = "fundflow-run-test"

[sources.push]
type = "push"
""")
    proc = RunProc(kafka.bootstrap, config, tmp_path / "run.log").start()
    try:
        proc.wait_http("/readyz", 90)
        pub = QosPublisher(mosquitto)
        try:
            wait_until(lambda: sample_value(proc.metrics(), "fundflow_source_connected", {"source": "feed"}) == 1, 30,
                       "MQTT source connected")
            for i in range(0, len(ticks), 100):  # JSON arrays of 100 ticks
                pub.publish("md/run/southbound", orjson.dumps(ticks[i:i + 100]))
            pub.wait()
        finally:
            pub.close()
        status, body = http("POST", proc.url + "/ingest", b"\n".join(orjson.dumps(e) for e in pushed))
        assert status == 202 and orjson.loads(body)["accepted"] == len(pushed), body

        def applied() -> bool:
            st: dict[str, Any] = proc.json("/api/v1/status")
            return st["events"]["applied"] == len(events) and st["consumer_lag_messages"] == 0

        wait_until(applied, 120, "every event applied")
        st = proc.json("/api/v1/status")
        assert st["events"]["rejected"] == 0 and st["events"]["duplicates"] == 0
        reference = clean_run(events)
        docs = {s["symbol"]: proc.json(f"/api/v1/symbols/{s['symbol']}")
                for s in proc.json("/api/v1/symbols")["symbols"]}
        assert docs == reference["documents"]
        assert proc.stop() == 0, proc.log_tail()
    finally:
        proc.stop()
