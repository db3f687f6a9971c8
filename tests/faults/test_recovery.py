"""Recovery from an intraday checkpoint and the late-data policy, with real Kafka and real processes.

Three simulated trading days (the second is the seed day 2025-09-12). A consumer checkpointing every
second is killed with SIGKILL in the middle of the seed day; the restarted one must not be ready
before it has the killed one's state, must get it from the checkpoint (replaying only the tail,
not the day since midnight), and must end with exactly the state of an uninterrupted run. Then
trades two sessions old arrive: dead-lettered as ``too_late``, counted, never applied.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import orjson

from harness.fundflow import ConsumerProc, http
from harness.metrics import sample_value
from harness.services import wait_until
from monitor.calendars import local_date
from monitor.simulator import Scenario, generate
from tests.faults.pipeline import clean_run, dead_letters, wait_drained
from tests.integration.fundflow_procs import business_lines, produce

SEED_DAY = "2025-09-12"
FAST_CHECKPOINTS = {"FUNDFLOW_KAFKA__CHECKPOINT_INTERVAL_S": "1"}


def _tape() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three trading days in event-time order: the two before the seed day, and the seed day."""
    events = [e for e in generate(Scenario(days=3)) if e["kind"] in ("trade", "southbound", "units",
                                                                      "southbound_daily")]
    start = next(i for i, e in enumerate(events) if "ts" in e and local_date(e["ts"]).isoformat() == SEED_DAY)
    return events[:start], events[start:]


def _ready(proc: ConsumerProc) -> bool:
    try:
        return http("GET", proc.url + "/readyz", timeout=2)[0] == 200
    except OSError:
        return False


def test_a_restart_mid_day_resumes_from_the_intraday_checkpoint(kafka_factory: Any, tmp_path: Path) -> None:
    broker = kafka_factory()
    before, seed = _tape()
    cut = len(seed) * 2 // 3
    produce(broker.bootstrap, before + seed[:cut])
    n_first = len(before) + cut
    first = ConsumerProc(broker.bootstrap, "recovering", tmp_path / "first.log", env=FAST_CHECKPOINTS).start()
    try:
        wait_drained(first, n_first)
        time.sleep(2.5)  # a checkpoint of the caught-up state, open day included
        killed_docs = first.documents()
        killed_metrics = business_lines(first.metrics())
        first.kill()
    finally:
        first.stop()

    second = ConsumerProc(broker.bootstrap, "recovering", tmp_path / "second.log", env=FAST_CHECKPOINTS).start()
    try:
        # Not ready until it has the killed one's state for what it owns: whenever /readyz says 200,
        # every symbol it serves equals the killed one's. (The killed member stays in the group until
        # its session times out, so the restarted one may first own only some partitions.)
        def recovered_everything() -> bool:
            if not _ready(second):
                return False
            docs = second.documents()
            if not _ready(second):  # a rebalance while reading: look again
                return False
            assert {s: killed_docs[s] for s in docs} == docs
            return set(docs) == set(killed_docs)

        wait_until(recovered_everything, 120, "the restarted consumer owns and has recovered every partition")
        assert second.documents() == killed_docs
        assert business_lines(second.metrics()) == killed_metrics
        replayed = second.applied()
        assert replayed < n_first // 10, f"replayed {replayed} of {n_first}: not from the intraday checkpoint"
        assert "state records loaded" in second.log_text()

        produce(broker.bootstrap, seed[cut:])
        wait_drained(second, replayed + len(seed) - cut)
        want = clean_run(before + seed)
        assert second.documents() == want["documents"]
        assert business_lines(second.metrics()) == want["metrics"]
    finally:
        second.stop()


def test_trades_two_sessions_old_are_dead_lettered_as_too_late(kafka_factory: Any, tmp_path: Path) -> None:
    broker = kafka_factory()
    before, seed = _tape()
    produce(broker.bootstrap, before + seed)
    old_day = min(local_date(e["ts"]) for e in before if "ts" in e)
    assert old_day.isoformat() < "2025-09-11"  # two sessions before the seed day, or more
    stale = [dict(e, trade_id=f"{e['trade_id']}-resent") for e in before if e["kind"] == "trade"
             and local_date(e["ts"]) == old_day][:25]
    proc = ConsumerProc(broker.bootstrap, "late", tmp_path / "late.log").start()
    try:
        wait_drained(proc, len(before) + len(seed))
        docs = proc.documents()
        produce(broker.bootstrap, stale)
        text = ""

        def counted() -> bool:
            nonlocal text
            text = proc.metrics()
            return sample_value(text, "fundflow_events_rejected_total",
                                {"source": "consumer", "reason": "too_late"}) == len(stale)
        wait_until(counted, 60, "the stale trades counted as too_late")
        st = proc.status()["events"]
        assert st["applied"] + st["rejected"] + st["duplicates"] == len(before) + len(seed) + len(stale)
        assert proc.documents() == docs  # nothing of them applied
        letters = [d for d in dead_letters(broker.bootstrap) if d["reason"] == "too_late"]
        assert len(letters) == len(stale)
        assert {orjson.loads(base64.b64decode(d["original"]))["trade_id"] for d in letters} == {
            e["trade_id"] for e in stale}
    finally:
        proc.stop()
