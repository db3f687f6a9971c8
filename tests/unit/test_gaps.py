"""Feed gaps: the tracker against a per-seq reference (hypothesis), named scenarios with their
numbers, the engine hook, and trades' optional seq through the validator."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.engine import Engine
from consumers.gaps import KINDS, FeedGaps
from harness.metrics import sample_value
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars, iso
from monitor.config import Config
from monitor.events import Rejected, Trade, Validator, encode
from monitor.metrics import Exposition
from monitor.service import Service
from monitor.stats import PipelineStats

GRACE = 60_000
D1, D2, D3 = dt.date(2025, 9, 10), dt.date(2025, 9, 11), dt.date(2025, 9, 12)
UTC8 = dt.timezone(dt.timedelta(hours=8))
CAL = default_calendars()


class Clock:
    """The engine's stream clock as the tracker reads it: the greatest event time before this event."""

    def __init__(self) -> None:
        self.as_of: int | None = None

    def __call__(self) -> int | None:
        return self.as_of

    def now(self) -> int:
        assert self.as_of is not None
        return self.as_of

    def advance(self, ts: int) -> None:
        if self.as_of is None or ts > self.as_of:
            self.as_of = ts


def tracker(grace: int = GRACE) -> tuple[FeedGaps, Clock]:
    clock = Clock()
    return FeedGaps(grace, clock), clock


def feed(g: FeedGaps, clock: Clock, kind: str, key: tuple, seq: int, ts: int) -> None:
    g.see(kind, key, seq, ts)
    clock.advance(ts)


# --------------------------------------------------------------------------- the reference
class Reference:
    """The rule of consumers/gaps.py written the slow way: a set of seen seqs and a dict of
    missing seqs (opened at, counted) per stream-day, every range walked seq by seq."""

    def __init__(self, grace: int, keep_days: int = 2) -> None:
        self.grace, self.keep = grace, keep_days
        self.seen: dict[tuple, set[int]] = {}
        self.missing: dict[tuple, dict[int, list]] = {}
        self.kind: dict[tuple, str] = {}
        self.days: dict[str, list[dt.date]] = {k: [] for k in KINDS}
        self.gaps: Counter[str] = Counter()
        self.fills: Counter[str] = Counter()

    def see(self, kind: str, key: tuple, seq: int, ts: int, clock: int | None) -> None:
        if key not in self.seen:
            days, day = self.days[kind], key[-1]
            if day not in days:
                if len(days) >= self.keep and day < min(days):
                    return
                days.append(day)
                days.sort()
                while len(days) > self.keep:
                    old = days.pop(0)
                    for k in [k for k in self.seen if self.kind[k] == kind and k[-1] == old]:
                        self.gaps[kind] += sum(1 for _, counted in self.missing[k].values() if not counted)
                        del self.seen[k], self.missing[k], self.kind[k]
            self.seen[key], self.missing[key], self.kind[key] = {seq}, {}, kind
            return
        now = ts if clock is None else max(clock, ts)
        seen, missing = self.seen[key], self.missing[key]
        if seq in seen:
            return
        seen.add(seq)
        if seq in missing:
            opened, counted = missing.pop(seq)
            if counted or now - opened > self.grace:
                self.fills[kind] += 1
                self.gaps[kind] += 0 if counted else 1
            return
        for s in range(min(seen), max(seen) + 1):
            if s not in seen and s not in missing:
                missing[s] = [now, False]

    def evaluate(self, now: int) -> None:
        for key, missing in self.missing.items():
            for m in missing.values():
                if not m[1] and now - m[0] > self.grace:
                    m[1] = True
                    self.gaps[self.kind[key]] += 1

    def pending(self, kind: str) -> int:
        return sum(1 for k, m in self.missing.items() if self.kind[k] == kind for _, c in m.values() if not c)

    def runs(self, key: tuple) -> list[tuple[int, int, bool]]:
        """Maximal runs of missing seqs with their counted flag (what the tracker holds as holes)."""
        out: list[list] = []
        for s in sorted(self.missing.get(key, {})):
            counted = self.missing[key][s][1]
            if out and out[-1][1] == s - 1:
                assert out[-1][2] == counted  # one run, one opening
                out[-1][1] = s
            else:
                out.append([s, s, counted])
        return [(r[0], r[1], r[2]) for r in out]


STREAMS = [("trade", ("513770.SH",)), ("southbound", ("00700.HK", "SH")), ("southbound", ("00700.HK", "SZ"))]

steps = st.lists(st.one_of(
    # times on a 10 s grid, so that "exactly the grace" comes up often
    st.tuples(st.just("ev"), st.integers(0, len(STREAMS) - 1), st.integers(0, 3), st.integers(0, 30),
              st.integers(0, 4).map(lambda n: n * 10_000), st.integers(-15, 0).map(lambda n: n * 10_000)),
    st.tuples(st.just("eval"), st.integers(0, 9).map(lambda n: n * 10_000)),
), max_size=120)


def _run(ops: list, evaluate: bool = True, restore_at: int | None = None) -> tuple[FeedGaps, Reference, Clock]:
    g, clock = tracker()
    ref = Reference(GRACE)
    base = 1_757_640_000_000
    for i, op in enumerate(ops):
        if restore_at == i:  # through a checkpoint: JSON and back
            g = FeedGaps.from_state(json.loads(json.dumps(g.to_state())), GRACE, clock)
        if op[0] == "ev":
            _, s, day, seq, step, jitter = op
            base += step
            kind, parts = STREAMS[s]
            key = (*parts, D1 + dt.timedelta(days=day))
            ts = base + jitter
            ref.see(kind, key, seq, ts, clock.as_of)
            feed(g, clock, kind, key, seq, ts)
        elif evaluate and clock.as_of is not None:
            now = clock.as_of + op[1]  # a live clock may run ahead of the events
            clock.advance(now)
            ref.evaluate(now)
            g.evaluate(now)
    return g, ref, clock


@settings(max_examples=300, deadline=None)
@given(steps)
def test_tracker_counts_like_the_reference(ops: list) -> None:
    g, ref, clock = _run(ops)
    for kind in KINDS:
        assert g.gaps[kind] == ref.gaps[kind]
        assert g.late_fills[kind] == ref.fills[kind]
        assert g.pending()[kind] == ref.pending(kind)
    assert set(g) == set(ref.seen)
    for key in ref.seen:  # the holes are the maximal runs of missing seqs: memory O(gaps)
        assert g.holes(key) == ref.runs(key)
    if clock.as_of is not None:  # the end of time: everything missing is a gap
        g.evaluate(clock.as_of + GRACE + 1)
        ref.evaluate(clock.as_of + GRACE + 1)
        assert g.gaps == ref.gaps and g.pending() == Counter({k: 0 for k in KINDS})


@settings(max_examples=200, deadline=None)
@given(steps)
def test_final_counts_do_not_depend_on_when_evaluations_ran(ops: list) -> None:
    """With the event clock, evaluating every second or only at the end gives the same counts."""
    ops = [op if op[0] == "ev" else ("eval", 0) for op in ops]  # evaluations at the event clock
    often, _, clock = _run(ops, evaluate=True)
    never, _, _ = _run(ops, evaluate=False)
    if clock.as_of is not None:
        often.evaluate(clock.as_of)
        never.evaluate(clock.as_of)
    assert often.gaps == never.gaps and often.late_fills == never.late_fills


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(0, 120))
def test_state_round_trip_through_json_changes_nothing(ops: list, at: int) -> None:
    straight, _, _ = _run(ops)
    restored, _, _ = _run(ops, restore_at=at)
    assert restored.to_state() == straight.to_state()


# --------------------------------------------------------------------------- named scenarios
TICK = ("00700.HK", "SH", D1)


def test_in_order_seqs_hold_no_holes() -> None:
    g, clock = tracker()
    for seq in range(1, 100_001):
        feed(g, clock, "southbound", TICK, seq, 1_000 * seq)
    g.evaluate(clock.now() + 10 * GRACE)
    assert g.status()["southbound"] == {"gaps": 0, "late_fills": 0, "pending": 0}
    assert g.holes(TICK) == []


def test_a_missing_seq_is_a_gap_once_the_grace_has_passed() -> None:
    """1..10 without 5, one tick a second: 6 arrives at 6 s and opens the hole; a gap after 66 s."""
    g, clock = tracker()
    for seq in [1, 2, 3, 4, 6, 7, 8, 9, 10]:
        feed(g, clock, "southbound", TICK, seq, 1_000 * seq)
    assert g.evaluate(66_000) == 0  # exactly the grace: not yet (as lateness: strictly more)
    assert g.status()["southbound"] == {"gaps": 0, "late_fills": 0, "pending": 1}
    assert g.evaluate(66_001) == 1
    assert g.status()["southbound"] == {"gaps": 1, "late_fills": 0, "pending": 0}
    assert g.holes(TICK) == [(5, 5, True)]
    assert g.open_gaps() == [{"kind": "southbound", "symbol": "00700.HK", "channel": "SH", "date": "2025-09-10",
                              "first_missing": 5, "last_missing": 5, "missing": 1, "opened_ms": 6_000}]


def test_out_of_order_within_the_grace_is_not_a_gap() -> None:
    g, clock = tracker()
    for seq, ts in [(1, 1_000), (2, 2_000), (4, 4_000), (3, 50_000), (5, 70_000)]:
        feed(g, clock, "southbound", TICK, seq, ts)
    g.evaluate(10 * GRACE)
    assert g.status()["southbound"] == {"gaps": 0, "late_fills": 0, "pending": 0}


def test_a_seq_after_its_gap_is_a_late_fill_and_the_gap_count_stays() -> None:
    g, clock = tracker()
    for seq, ts in [(1, 1_000), (2, 2_000), (5, 3_000)]:  # 3 and 4 missing from 3 s
        feed(g, clock, "southbound", TICK, seq, ts)
    assert g.evaluate(64_000) == 2
    feed(g, clock, "southbound", TICK, 3, 65_000)
    assert g.status()["southbound"] == {"gaps": 2, "late_fills": 1, "pending": 0}
    assert g.holes(TICK) == [(4, 4, True)]


def test_a_fill_exactly_at_the_grace_is_in_time() -> None:
    g, clock = tracker()
    for seq, ts in [(1, 1_000), (3, 2_000), (2, 62_000)]:
        feed(g, clock, "southbound", TICK, seq, ts)
    assert g.status()["southbound"] == {"gaps": 0, "late_fills": 0, "pending": 0}


def test_a_late_fill_before_any_evaluation_counts_as_gap_and_fill() -> None:
    g, clock = tracker()
    for seq, ts in [(1, 1_000), (3, 2_000), (4, 62_001), (2, 62_002)]:  # 2 arrives 60.002 s after the hole opened
        feed(g, clock, "southbound", TICK, seq, ts)
    assert g.status()["southbound"] == {"gaps": 1, "late_fills": 1, "pending": 0}


def test_the_seq_continuing_across_days_is_not_a_gap() -> None:
    """As the simulator sends it: each (stock, channel) counter runs on from yesterday's last."""
    g, clock = tracker()
    for seq in range(1, 101):
        feed(g, clock, "southbound", ("00700.HK", "SH", D1), seq, seq * 1_000)
    for seq in range(101, 201):
        feed(g, clock, "southbound", ("00700.HK", "SH", D2), seq, 86_400_000 + seq * 1_000)
    for seq in range(1, 51):  # a feed that restarts at 1 the next day is fine too
        feed(g, clock, "southbound", ("00700.HK", "SH", D3), seq, 2 * 86_400_000 + seq * 1_000)
    g.evaluate(clock.now() + 2 * GRACE)
    assert g.status()["southbound"]["gaps"] == 0


def test_channels_and_kinds_are_separate_streams() -> None:
    g, clock = tracker()
    for seq in range(1, 11):
        feed(g, clock, "southbound", ("00700.HK", "SH", D1), seq, seq * 1_000)
        feed(g, clock, "southbound", ("00700.HK", "SZ", D1), seq + 500, seq * 1_000)
        feed(g, clock, "trade", ("513770.SH", D1), 2 * seq, seq * 1_000)  # every other trade seq missing
    g.evaluate(clock.now() + GRACE + 1)
    assert g.status() == {"trade": {"gaps": 9, "late_fills": 0, "pending": 0},
                          "southbound": {"gaps": 0, "late_fills": 0, "pending": 0}}


def test_a_repeated_seq_is_ignored() -> None:
    g, clock = tracker()
    for seq in [1, 2, 3, 2, 3, 1]:
        feed(g, clock, "trade", ("513770.SH", D1), seq, 1_000)
    g.evaluate(10 * GRACE)
    assert g.status()["trade"] == {"gaps": 0, "late_fills": 0, "pending": 0}


def test_old_days_are_dropped_and_their_open_holes_decided() -> None:
    g, clock = tracker()
    feed(g, clock, "southbound", ("00700.HK", "SH", D1), 1, 1_000)
    feed(g, clock, "southbound", ("00700.HK", "SH", D1), 4, 2_000)  # 2, 3 open, never evaluated
    feed(g, clock, "southbound", ("00700.HK", "SH", D2), 1, 3_000)
    assert g.pending()["southbound"] == 2
    feed(g, clock, "southbound", ("00700.HK", "SH", D3), 1, 4_000)  # D1 goes: what it missed is a gap
    assert set(g) == {("00700.HK", "SH", D2), ("00700.HK", "SH", D3)}
    assert g.status()["southbound"] == {"gaps": 2, "late_fills": 0, "pending": 0}
    feed(g, clock, "southbound", ("00700.HK", "SH", D1), 2, 5_000)  # older than the days held: not tracked
    assert ("00700.HK", "SH", D1) not in set(g)


def test_memory_is_per_hole_not_per_event() -> None:
    """200,000 ticks with every 10,000th missing: 19 holes held, whatever the number of events."""
    g, clock = tracker()
    for seq in range(1, 200_001):
        if seq % 10_000:
            feed(g, clock, "southbound", TICK, seq, seq * 10)
    g.evaluate(clock.now() + GRACE + 1)
    assert len(g.holes(TICK)) == 19 and g.gaps["southbound"] == 19
    state = g.to_state()
    assert len(json.dumps(state)) < 2_000


# --------------------------------------------------------------------------- the engine and the validator
def _ts(day: dt.date, hh: int, mm: int, ss: int = 0) -> int:
    return int(dt.datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=UTC8).timestamp() * 1000)


def _tick(seq: int, ts: int, channel: str = "SH") -> dict[str, Any]:
    return {"kind": "southbound", "symbol": "00700.HK", "ts": ts, "channel": channel, "buy_hkd": 1.0,
            "sell_hkd": 0.5, "seq": seq}


def _trade(tid: int, ts: int, seq: Any = None) -> dict[str, Any]:
    t = {"kind": "trade", "symbol": "513770.SH", "ts": ts, "price": 1.07, "volume": 100, "side": "B",
         "trade_id": f"T{tid}"}
    if seq is not None:
        t["seq"] = seq
    return t


def test_engine_counts_a_dropped_southbound_tick_after_the_grace() -> None:
    day = D3  # a Friday, trading on SH, SZ and HK
    v, eng = Validator(CAL), Engine(CAL, grace_seconds=60)
    for i, seq in enumerate([1, 2, 3, 5, 6]):
        eng.apply(v.validate(_tick(seq, _ts(day, 10, 0, i))))
    eng.apply(v.validate(_tick(1, _ts(day, 10, 0, 30), "SZ")))  # another channel: its own stream
    eng.prune()
    assert eng.gaps.status()["southbound"] == {"gaps": 0, "late_fills": 0, "pending": 1}
    eng.apply(v.validate(_tick(2, _ts(day, 10, 1, 30), "SZ")))  # the clock: 87 s after 5 opened the hole
    eng.prune()
    assert eng.gaps.status()["southbound"] == {"gaps": 1, "late_fills": 0, "pending": 0}
    eng.apply(v.validate(_tick(4, _ts(day, 10, 2))))
    assert eng.gaps.status()["southbound"] == {"gaps": 1, "late_fills": 1, "pending": 0}
    assert eng.duplicates["southbound"] == 0 and eng.applied["southbound"] == 8


def test_engine_tracks_trade_seqs_only_when_trades_carry_them() -> None:
    day = D3
    v, eng = Validator(CAL), Engine(CAL, grace_seconds=60)
    for i in range(1, 6):
        eng.apply(v.validate(_trade(i, _ts(day, 10, 0, i))))  # no seq: nothing to track
    for i, seq in enumerate([10, 11, 14], start=6):
        eng.apply(v.validate(_trade(i, _ts(day, 10, 0, i), seq)))
    eng.apply(v.validate(_trade(99, _ts(day, 10, 0, 9), 11)))  # a new trade_id re-using a seq: ignored
    eng.apply(v.validate(_trade(100, _ts(day, 10, 5))))
    eng.prune()
    assert eng.gaps.status()["trade"] == {"gaps": 2, "late_fills": 0, "pending": 0}
    assert list(eng.gaps) == [("513770.SH", day)]


def test_drop_symbols_forgets_their_streams() -> None:
    v, eng = Validator(CAL), Engine(CAL)
    eng.apply(v.validate(_tick(1, _ts(D3, 10, 0))))
    eng.apply(v.validate(_tick(3, _ts(D3, 10, 1))))
    eng.drop_symbols(["00700.HK"])
    assert list(eng.gaps) == [] and eng.gaps.pending()["southbound"] == 0


def test_trade_seq_is_optional_validated_and_encoded() -> None:
    v = Validator(CAL)
    ts = _ts(D3, 10, 0)
    plain, numbered, zero = (v.validate(_trade(1, ts, seq), "trade") for seq in (None, 42, 0))
    assert isinstance(plain, Trade) and isinstance(numbered, Trade) and isinstance(zero, Trade)
    assert plain.seq is None and numbered.seq == 42 and zero.seq == 0
    assert json.loads(encode(numbered))["seq"] == 42 and "seq" not in json.loads(encode(plain))


@pytest.mark.parametrize("seq, reason", [(True, "wrong_type"), (1.0, "wrong_type"), ("7", "wrong_type"),
                                         (-1, "bad_number"), ([1], "wrong_type")])
def test_a_bad_trade_seq_is_rejected_with_its_reason(seq: Any, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        Validator(CAL).validate(_trade(1, _ts(D3, 10, 0), seq))
    assert exc.value.reason == reason and "seq" in exc.value.detail


@pytest.mark.parametrize("seq, reason", [(False, "wrong_type"), (-3, "bad_number"), ("1", "wrong_type")])
def test_southbound_seq_rejections_are_unchanged(seq: Any, reason: str) -> None:
    with pytest.raises(Rejected) as exc:
        Validator(CAL).validate(_tick(seq, _ts(D3, 10, 0)))
    assert exc.value.reason == reason


def test_metrics_and_status_show_the_gaps() -> None:
    svc = Service(Config(), bus=MemoryBus(1), live_clock=False)
    v, eng = Validator(CAL), svc.engine
    for i, seq in enumerate([1, 2, 4, 5]):
        eng.apply(v.validate(_tick(seq, _ts(D3, 10, 0, i))))
    text = Exposition(eng, PipelineStats()).render().decode()
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "southbound"}) == 0  # both kinds from 0: increase() sees the first
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "trade"}) == 0
    eng.apply(v.validate(_tick(6, _ts(D3, 10, 2))))
    text = Exposition(eng, PipelineStats()).render().decode()  # evaluated on read, no prune needed
    assert sample_value(text, "fundflow_feed_gaps_total", {"kind": "southbound"}) == 1
    assert sample_value(text, "fundflow_feed_gap_fills_total", {"kind": "southbound"}) == 0
    assert svc.status()["feed_gaps"] == {
        "gaps": {"trade": 0, "southbound": 1}, "late_fills": {"trade": 0, "southbound": 0},
        "pending": {"trade": 0, "southbound": 0},
        "open": [{"kind": "southbound", "symbol": "00700.HK", "channel": "SH", "date": "2025-09-12",
                  "first_missing": 3, "last_missing": 3, "missing": 1, "opened_at": iso(_ts(D3, 10, 0, 2))}]}
