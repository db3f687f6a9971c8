"""ConsumerRunner accounting: a replay after a rebalance rebuilds state without counting twice."""

from __future__ import annotations

import asyncio

import orjson

from consumers.engine import Engine
from consumers.runner import ConsumerRunner
from harness.docs import symbol_doc
from monitor.bus import Record
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars
from monitor.events import TOPICS, Validator
from monitor.simulator import Scenario, generate


def _records() -> list[Record]:
    """One simulated day on partition 0, with a poison record and a re-sent trade."""
    events = [e for e in generate(Scenario(days=1)) if e["kind"] in ("trade", "southbound")][:3000]
    values = [(TOPICS[e["kind"]], orjson.dumps(e)) for e in events]
    trade = next(v for t, v in values if t == TOPICS["trade"])
    values += [(TOPICS["trade"], b"{not json"), (TOPICS["trade"], trade)]
    offsets: dict[str, int] = {}
    out = []
    for topic, value in values:
        off = offsets.get(topic, 0)
        offsets[topic] = off + 1
        out.append(Record(topic, 0, off, None, value, 0))
    return out


def _runner() -> ConsumerRunner:
    cal = default_calendars()
    bus = MemoryBus(1)
    bus.ensure_topics()
    return ConsumerRunner(bus, Engine(cal), Validator(cal))


def test_partition_taken_back_after_a_rebalance_is_rebuilt_not_recounted() -> None:
    records = _records()
    runner = _runner()
    runner.apply_records(records)
    engine, stats = runner.engine, runner.stats
    first = {s: symbol_doc(engine, s) for s in engine.symbols()}
    counted = (sum(engine.applied.values()), sum(engine.duplicates.values()), sum(stats.rejected.values()))
    assert counted == (3000, 1, 1)  # in = applied + duplicates + rejected

    engine.drop_symbols(engine.symbols())  # the partition was revoked, then assigned back: replay it
    runner.apply_records(records)

    assert {s: symbol_doc(engine, s) for s in engine.symbols()} == first
    assert (sum(engine.applied.values()), sum(engine.duplicates.values()), sum(stats.rejected.values())) == counted
    assert stats.replayed == 3001  # every event applied again (the re-sent trade is a duplicate again), none counted


def test_not_ready_before_the_first_assignment_nor_before_the_replay_is_done() -> None:
    """Ready means assigned and recovered: a restarted pod must not be marked ready with empty state."""
    cal = default_calendars()
    bus = MemoryBus(1)
    bus.ensure_topics()
    for rec in _records():
        bus.produce(rec.topic, None, rec.value, partition=0)
    runner = ConsumerRunner(bus, Engine(cal), Validator(cal), poll_max_records=500)
    assert not runner.ready  # nothing assigned yet: no targets is not "caught up"
    seen: list[tuple[bool, int]] = []
    asyncio.run(runner.run(asyncio.Event(), until_caught_up=True,
                           on_batch=lambda: seen.append((runner.ready, runner.applied_total))))
    assert runner.applied_total == 3001  # the poison record is dead-lettered, the re-sent trade a duplicate
    assert [n for ready, n in seen if ready][0] == 3001  # first ready batch: every record read
    assert len(seen) > 3 and all(not ready for ready, n in seen if n < 3001)
