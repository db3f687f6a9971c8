"""Sliding sums against a brute-force reading of the rule: t in W iff floor(t) > floor(as_of) - W."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.windows import SlidingSums

WIDTHS = (60, 300, 900, 3600)


def brute(events: list[tuple[int, int]], now: int) -> list[int]:
    return [sum(v for s, v in events if now - w < s <= now) for w in WIDTHS]


def test_event_exactly_w_seconds_old_is_out() -> None:
    w = SlidingSums(WIDTHS)
    w.add(1000, 5)
    assert w.values(1059) == [5, 5, 5, 5]
    assert w.values(1060) == [0, 5, 5, 5]  # 1000 > 1060 - 60 is false


def test_late_event_inside_the_window_still_counts() -> None:
    w = SlidingSums(WIDTHS)
    w.add(5000, 1)
    w.values(5000)
    w.add(4990, 10)  # ten seconds behind the clock
    w.add(1400, 100)  # exactly an hour behind: in no window
    w.add(1401, 1000)  # just inside the hour
    assert w.values(5000) == [11, 11, 11, 1011]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(-10**12, 10**12), st.booleans()), max_size=80))
def test_matches_brute_force_for_any_arrival_order(steps: list[tuple[int, int, bool]]) -> None:
    """Events arrive in any order; the clock is the greatest second seen; queries may come at any step."""
    w = SlidingSums(WIDTHS)
    seen: list[tuple[int, int]] = []
    now = None
    for sec, value, query in steps:
        now = sec if now is None else max(now, sec)
        w.add(sec, value)
        seen.append((sec, value))
        if query:
            assert w.values(now) == brute(seen, now)
    if now is not None:
        assert w.values(now) == brute(seen, now)
        assert w.values(now + 120) == brute(seen, now + 120)


def test_memory_is_bounded_by_the_widest_window() -> None:
    w = SlidingSums(WIDTHS)
    for sec in range(0, 50_000):
        w.add(sec, 1)
        if sec % 1000 == 0:
            w.advance(sec)
    w.advance(49_999)
    assert len(w.secs) == 3600


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(-10**12, 10**12), st.integers(0, 3), st.booleans()),
                max_size=80))
def test_each_column_matches_brute_force_and_they_sum_to_the_total(steps: list[tuple[int, int, int, bool]]) -> None:
    """Order-size classes as columns: same rule per column, in any arrival order, same seconds shared."""
    w = SlidingSums(WIDTHS, columns=4)
    seen: list[tuple[int, int, int]] = []
    now = None
    for sec, value, col, query in steps:
        now = sec if now is None else max(now, sec)
        w.add(sec, value, col)
        seen.append((sec, value, col))
        if query:
            per_col = [brute([(s, v) for s, v, c in seen if c == k], now) for k in range(4)]
            assert w.column_values(now) == [list(row) for row in zip(*per_col, strict=True)]
            assert w.values(now) == brute([(s, v) for s, v, _ in seen], now)
    if now is not None:
        later = now + 901
        per_col = [brute([(s, v) for s, v, c in seen if c == k], later) for k in range(4)]
        assert w.column_values(later) == [list(row) for row in zip(*per_col, strict=True)]
        assert w.values(later) == brute([(s, v) for s, v, _ in seen], later)
