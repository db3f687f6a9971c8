"""ConsumerRunner accounting: a replay after a rebalance rebuilds state without counting twice."""

from __future__ import annotations

import orjson

from consumers.engine import Engine
from consumers.runner import ConsumerRunner
from monitor.bus import Record
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars
from monitor.events import TOPICS, Validator
from monitor.simulator import Scenario, generate
from tests.harness.docs import symbol_doc


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
