"""Intraday checkpoints: a restart resumes from the last complete checkpoint with the state of an
uninterrupted run, whatever moment it crashed at, and the state topic stays bounded.

Scenarios run the real consumer runner on the in-process bus (same code path as Kafka: assignment,
state partitions read at recovery, markers, seeks); a "crash" is a runner dropped without its final
checkpoint, optionally after producing only part of a checkpoint's records.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers import views
from consumers.codec import read_state
from consumers.retention import ETF_RETAIN_DAYS
from harness.docs import symbol_doc
from monitor.bus.memory import MemoryBus
from monitor.config import Config
from monitor.events import STATE_TOPIC
from monitor.service import Service
from monitor.simulator import Scenario, generate

EVENTS = [e for e in generate(Scenario(days=2)) if e["kind"] != "bar"]


def service(bus: MemoryBus) -> Service:
    cfg = Config()
    cfg.kafka.checkpoint_interval_s = 3600.0  # checkpoints only where a scenario asks for one
    return Service(cfg, bus=bus, live_clock=False)


def feed(svc: Service, events: list[dict[str, Any]]) -> None:
    pub = svc.publisher("test")
    for e in events:
        pub.publish_obj(e, orjson.dumps(e))


def consume(svc: Service) -> None:
    """Run the runner until it has applied everything on the bus (it checkpoints when idle)."""
    asyncio.run(svc.runner.run(asyncio.Event(), until_caught_up=True))


def state_of(svc: Service) -> dict[str, Any]:
    eng = svc.engine
    return {"symbols": {s: symbol_doc(eng, s) for s in eng.symbols()}, "top": views.top_southbound(eng, "20d", 10),
            "as_of": eng.now_ms()}


def uninterrupted(events: list[dict[str, Any]]) -> dict[str, Any]:
    svc = service(MemoryBus(6))
    svc.bus.ensure_topics()
    feed(svc, events)
    consume(svc)
    return state_of(svc)


def test_restart_after_an_intraday_checkpoint_replays_only_what_came_after() -> None:
    """Two and a half simulated days: checkpoint, crash, restart, the rest of the tape."""
    cut = len(EVENTS) * 5 // 6
    bus = MemoryBus(6)
    bus.ensure_topics()
    first = service(bus)
    feed(first, EVENTS[:cut])
    consume(first)  # ends with a checkpoint of everything so far, open day included
    applied_before = first.runner.applied_total

    second = service(bus)
    feed(second, EVENTS[cut:])
    consume(second)

    assert state_of(second) == uninterrupted(EVENTS)
    assert applied_before == cut  # every event of the first part applied once (the tape has no duplicates)
    # the restart replayed only the events after the checkpoint, not the open day since midnight
    assert second.runner.applied_total == len(EVENTS) - cut


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0.3, 0.95), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_a_crash_in_the_middle_of_a_checkpoint_loses_and_doubles_nothing(cut1: float, cut2: float,
                                                                          landed: float) -> None:
    """Checkpoint at cut1, more events to cut2, then a checkpoint whose records land only in part
    (its markers never): the next process ignores that checkpoint, replays from cut1, repairs the
    partial records, and a third process after it still has the uninterrupted state."""
    a = int(len(EVENTS) * cut1)
    b = a + int((len(EVENTS) - a) * cut2)
    bus = MemoryBus(6)
    bus.ensure_topics()
    first = service(bus)
    feed(first, EVENTS[:a])
    consume(first)
    feed(first, EVENTS[a:b])
    first.runner.apply_records(_fetch_new(bus, first))
    first.engine.prune()
    records, _markers, _done = first.runner.checkpoint_records()
    for p, key, value in records[:int(len(records) * landed)]:  # the crash: part of the records, no marker
        bus.produce(STATE_TOPIC, key, value, partition=p)

    second = service(bus)
    consume(second)
    third = service(bus)
    feed(third, EVENTS[b:])
    consume(third)
    assert state_of(third) == uninterrupted(EVENTS)


def _fetch_new(bus: MemoryBus, svc: Service) -> list[Any]:
    """The records the first process's consumer has not read yet (what its next polls would return)."""
    out = []
    for (topic, p), pos in sorted(svc.runner.positions.items()):
        out.extend(list(bus.read_partitions(topic, [p]))[pos:])
    return out


def test_the_state_topic_holds_the_retained_state_not_history() -> None:
    """After 40 simulated days, the state topic compacted (latest record per key, deletes applied)
    holds curve chunks only for the last two sessions and no more ETF heads than days retained."""
    events = [e for e in generate(Scenario.synthetic(2, 1, days=40, trade_interval_s=600, tick_interval_s=1800))
              if e["kind"] != "bar"]
    bus = MemoryBus(6)
    bus.ensure_topics()
    svc = service(bus)
    for i in range(0, len(events), 1000):
        feed(svc, events[i:i + 1000])
        consume(svc)
    latest: dict[bytes, bytes | None] = {}
    for rec in bus.read_partitions(STATE_TOPIC, range(6)):
        latest[rec.key] = rec.value  # type: ignore[index]  # state records are keyed
    state = read_state("fundflow", list(latest.items()))
    assert not state.orphans
    chosen = {base: doc for base, (_, doc) in state.records.items()}
    assert 1 <= len({date for (_, date, part) in chosen if part.startswith("c")}) <= 2  # curve: today, previous
    etf_heads = [doc for (sym, _, part), doc in chosen.items()
                 if part == "h" and not sym.endswith(".HK") and not sym.startswith("quota.")]
    with_trades = [h for h in etf_heads if "etf" in h]
    assert len(with_trades) <= 2 * ETF_RETAIN_DAYS  # older traded days are kept as their daily bar only
    assert all(set(h) <= {"summary", "units", "iopv", "ohlc", "symbol", "date", "gen", "v"} for h in etf_heads
               if "etf" not in h)
    # two keys per record at most (the double buffer), nothing else: deleted days left no records behind
    assert len([k for k, v in latest.items() if v is not None and k.count(b"|") == 4]) <= 2 * len(chosen)
