"""`fundflow consume` against a real Kafka broker (and a real Prometheus for the end-to-end check).

One broker and one tape for the module: six simulated trading days ending on the seed day
2025-09-12, with poison records and re-sent duplicates mixed in. An uninterrupted consumer is
the reference every other scenario (kill -9, scale-out) must equal to the cent.
"""

from __future__ import annotations

import copy
import random
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from monitor.calendars import local_date
from monitor.events import DEADLETTER_TOPIC
from monitor.simulator import Scenario, generate, truth
from tests.harness.services import wait_until
from tests.integration.fundflow_procs import ConsumerProc, business_lines, produce

SCENARIO = Scenario(days=6)
SEED_DAY = "2025-09-12"
POISON: list[tuple[str, bytes]] = [
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": '),  # truncated JSON
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": 1757640000000, "price": "1.07", '
                            b'"volume": 100, "trade_id": "p1"}'),  # price as a string
    ("fundflow.etf.trades", b'{"kind": "trade", "symbol": "513770.SH", "ts": 1757640000000, "price": 1.07, '
                            b'"volume": -100, "trade_id": "p2"}'),  # negative volume
    ("fundflow.southbound.flows", b'{"kind": "southbound", "symbol": "ALIBABA", "ts": 1757640000000, '
                                  b'"channel": "SH", "buy_hkd": 1, "sell_hkd": 1, "seq": 1}'),  # bad symbol
    ("fundflow.etf.trades", b"\xff\xfe not utf-8"),
    ("fundflow.etf.trades", b'{"kind": "trade", "pad": "' + b"x" * 100_000 + b'"}'),  # over the size limit
]
DUPLICATES = 50  # trades sent twice: applied once, counted as duplicates


def _seed_ms(ev: dict[str, Any]) -> bool:
    return "ts" in ev and local_date(ev["ts"]).isoformat() == SEED_DAY


@pytest.fixture(scope="module")
def tape() -> dict[str, list[dict[str, Any]]]:
    events = list(generate(SCENARIO))
    history = [e for e in events if not _seed_ms(e)]
    seed = [e for e in events if _seed_ms(e)]
    return {"history": history, "seed": seed}


@pytest.fixture(scope="module")
def broker(tmp_path_factory, tape):
    """A broker holding the whole tape, and an uninterrupted consumer's final state."""
    from tests.conftest import _start
    from tests.harness.services import KafkaBroker

    b = _start(KafkaBroker(tmp_path_factory.mktemp("kafka-consume")))
    stats = produce(b.bootstrap, tape["history"] + tape["seed"] + tape["seed"][:DUPLICATES], raw=POISON)
    assert sum(stats.rejected.values()) == 0, stats.rejected
    yield b
    b.stop()


@pytest.fixture(scope="module")
def reference(broker, tape, tmp_path_factory) -> dict[str, Any]:
    logs = tmp_path_factory.mktemp("logs")
    clean = ConsumerProc(broker.bootstrap, "reference", logs / "reference.log").start()
    try:
        clean.wait_ready(90)
        wait_caught_up(clean)
        status = clean.json("/api/v1/status")
        return {"documents": clean.documents(), "metrics": business_lines(clean.get("/metrics")[1].decode()),
                "status": status, "metrics_text": clean.get("/metrics")[1].decode(), "port": clean.port}
    finally:
        clean.stop()


def wait_caught_up(proc: ConsumerProc, timeout: float = 120) -> None:
    """Until the consumer is ready and its last checkpoint left no lag on any owned partition."""
    def done() -> bool:
        if not proc.alive():
            raise AssertionError(f"consumer exited: {proc.log_tail()}")
        st = proc.json("/api/v1/status")
        return bool(st["ready"]) and st["consumer_lag_messages"] == 0 and st["events"]["applied"] > 0

    wait_until(done, timeout, "consumer caught up")


def clock_free(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields that do not depend on the instance's stream clock.

    Each instance's clock is the latest event on its own partitions, so while a group is split the
    intraday windows and same-time ratios of two instances are taken at slightly different moments.
    """
    doc = copy.deepcopy(doc)
    doc.pop("as_of", None)
    etf = doc.get("etf")
    if etf:
        for w in ("1m", "5m", "15m", "1h"):
            etf["net_inflow_cny"].pop(w, None)
        etf["turnover_vs_prev_session_ratio"].pop("same_time", None)
        etf.pop("volume_ratio", None)
    return doc


def differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Paths where two JSON documents differ, for a readable assertion message."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: list[str] = []
        for k in sorted(set(got) | set(want)):
            out += differences(got.get(k, "<absent>"), want.get(k, "<absent>"), f"{path}/{k}")
        return out
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def test_reference_run_counts_every_input(reference, tape):
    """in = applied + rejected + duplicates, exactly; poison is dead-lettered with its reason."""
    events = reference["status"]["events"]
    produced = len(tape["history"]) + len(tape["seed"]) + DUPLICATES
    assert events["duplicates"] == DUPLICATES
    assert events["applied"] + events["duplicates"] == produced
    assert events["rejected"] == len(POISON)
    text = reference["metrics_text"]
    for reason in ("bad_json", "wrong_type", "bad_number", "bad_symbol", "too_large"):
        assert f'reason="{reason}"' in text, reason


def test_poison_is_dead_lettered_with_reasons(broker, reference):
    reader = KafkaConsumer(DEADLETTER_TOPIC, bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                           consumer_timeout_ms=3000, group_id=None)
    letters = [orjson.loads(m.value) for m in reader]
    reader.close()
    consumer_letters = [x for x in letters if x["source"].startswith("consumer:")]
    assert len(consumer_letters) >= len(POISON)
    assert {x["reason"] for x in consumer_letters} >= {"bad_json", "wrong_type", "bad_number", "bad_symbol", "too_large"}
    assert all(x["detail"] and x["original"] is not None for x in consumer_letters)


def test_seed_day_numbers_through_kafka(reference):
    t = truth(SCENARIO)
    etf = reference["documents"]["513770.SH"]["etf"]
    assert Decimal(str(etf["turnover_cny"])) == t["etf"]["513770.SH"][SEED_DAY]["turnover"]
    assert etf["turnover_cny"] > etf["prev_turnover_cny"]
    assert round(etf["price_change_ratio"], 4) == 0.0113


def test_end_to_end_prometheus_reads_the_simulator_total(broker, reference, prometheus_factory, tmp_path):
    """simulator -> Kafka -> fundflow consume -> /metrics -> real Prometheus == simulator's own turnover."""
    proc = ConsumerProc(broker.bootstrap, "e2e", tmp_path / "e2e.log").start()
    try:
        proc.wait_ready(90)
        wait_caught_up(proc)
        prom = prometheus_factory(scrape_targets=[f"127.0.0.1:{proc.port}"], scrape_interval="1s")
        expr = 'fundflow_etf_turnover_cny{symbol="513770.SH"}'
        wait_until(lambda: prom.query_value(expr) is not None, 60, "Prometheus scraped the consumer")
        expected = truth(SCENARIO)["etf"]["513770.SH"][SEED_DAY]["turnover"]
        assert Decimal(str(prom.query_value(expr))).quantize(Decimal("0.01")) == expected
    finally:
        proc.stop()


def test_kill_9_at_random_moments_recovers_identical_state(kafka_factory, tape, reference, tmp_path):
    """SIGKILL during recovery and mid-day, three times; the final state equals the uninterrupted run."""
    b = kafka_factory()
    rng = random.Random(7)
    produce(b.bootstrap, tape["history"], raw=POISON)
    seed = tape["seed"]
    chunks = [seed[i * len(seed) // 4:(i + 1) * len(seed) // 4] for i in range(4)]
    chunks[-1] = chunks[-1] + seed[:DUPLICATES]
    log = tmp_path / "crashy.log"
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    proc.wait_ready(90)
    # 1: killed while recovering, right after a restart
    proc.kill()
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    time.sleep(rng.uniform(0.5, 2.0))
    proc.kill()
    proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    for chunk in chunks[:3]:
        produce(b.bootstrap, chunk)
        time.sleep(rng.uniform(0.3, 2.5))  # some of the chunk applied, maybe checkpointed
        proc.kill()
        proc = ConsumerProc(b.bootstrap, "crashy", log).start()
    produce(b.bootstrap, chunks[3])
    try:
        proc.wait_ready(90)
        wait_caught_up(proc)
        assert not differences(proc.documents(), reference["documents"])
        assert business_lines(proc.get("/metrics")[1].decode()) == reference["metrics"]
    finally:
        proc.stop()


def test_two_consumers_split_then_one_takes_over(broker, reference, tmp_path):
    """Two instances export each symbol exactly once; after one dies the other exports all, right."""
    a = ConsumerProc(broker.bootstrap, "pair", tmp_path / "a.log").start()
    b = ConsumerProc(broker.bootstrap, "pair", tmp_path / "b.log").start()
    try:
        def split() -> bool:
            for p in (a, b):
                wait_caught_up(p)
            sa = set(a.documents())
            sb = set(b.documents())
            return bool(sa) and bool(sb) and not (sa & sb) and sa | sb == set(reference["documents"])

        wait_until(split, 120, "two instances sharing the symbols")
        docs = {**a.documents(), **b.documents()}
        assert {s: clock_free(d) for s, d in docs.items()} == \
            {s: clock_free(d) for s, d in reference["documents"].items()}

        a.kill()

        def took_over() -> bool:
            wait_caught_up(b)
            return set(b.documents()) == set(reference["documents"])

        wait_until(took_over, 120, "survivor owns every partition")
        assert not differences(b.documents(), reference["documents"])
        assert business_lines(b.get("/metrics")[1].decode()) == reference["metrics"]
    finally:
        a.stop()
        b.stop()


def test_consume_help_documents_every_option() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "monitor", "consume", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], check=True).stdout
    for opt in ("--config", "--bootstrap", "--group", "--host", "--port", "--live-clock"):
        assert opt in out
