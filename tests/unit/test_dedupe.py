"""Compact dedupe keys answer exactly like a set, and cost a few bytes per event."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.dedupe import IntRanges, SeqSets, TradeIds

TRADE_IDS = st.one_of(
    st.integers(0, 10**6).map(str),  # plain numbers
    st.integers(0, 999).map(lambda n: f"513770.SH-20250912-{n:06d}"),  # padded exchange numbers
    st.integers(0, 999).map(lambda n: f"X-{n}"),  # unpadded, same text before the digits
    st.integers(0, 99).map(lambda n: f"X-{n:04d}"),  # padded: X-0012 is not X-12
    st.text(min_size=1, max_size=12),  # anything else: hashed
    st.integers(10**18, 10**30).map(str),  # too long for a 64-bit range: hashed
)


@given(st.lists(st.integers(0, 200), max_size=300))
def test_int_ranges_are_a_set_of_integers(numbers: list[int]) -> None:
    ranges, plain = IntRanges(), set()
    for n in numbers:
        assert ranges.add(n) == (n not in plain)
        plain.add(n)
    assert len(ranges) == len(plain)
    assert all((n in ranges) == (n in plain) for n in range(-1, 202))
    starts, ends = list(ranges.starts), list(ranges.ends)
    assert all(s < e for s, e in zip(starts, ends, strict=True))
    assert all(e < s for e, s in zip(ends, starts[1:], strict=False))  # disjoint and not adjacent: merged
    assert IntRanges.from_state(ranges.to_state()).to_state() == ranges.to_state()


@given(st.lists(TRADE_IDS, max_size=400), st.lists(TRADE_IDS, max_size=50))
def test_trade_ids_answer_like_a_set_of_strings(ids: list[str], probes: list[str]) -> None:
    keys, plain = TradeIds(), set()
    for tid in ids:
        assert keys.add(tid) == (tid not in plain), tid
        plain.add(tid)
    assert len(keys) == len(plain)
    restored = TradeIds.from_state(keys.to_state())  # the checkpoint round trip keeps every key
    for tid in probes + ids:
        assert restored.add(tid) == (tid not in plain)
        plain.add(tid)


def test_padded_and_unpadded_numbers_are_different_ids() -> None:
    keys = TradeIds()
    assert keys.add("X-12") and keys.add("X-0012") and keys.add("X-012") and keys.add("12") and keys.add("012")
    assert not keys.add("X-0012")
    assert len(keys) == 5


def test_a_heavy_day_of_sequential_ids_costs_nothing_per_trade() -> None:
    """5,760 trades (one every 2.5 s for four hours) numbered in sequence: one range."""
    keys = TradeIds()
    for i in range(1, 5761):
        assert keys.add(f"513770.SH-20250912-{i:06d}")
    assert keys.nbytes == 16
    assert not keys.add("513770.SH-20250912-000077")  # a re-sent trade is a duplicate


def test_ids_without_a_number_cost_eight_bytes_each_once_merged() -> None:
    keys = TradeIds()
    for i in range(5000):
        assert keys.add(f"trade-{i:x}-x")
    keys.to_state()  # merges the recent ones
    assert keys.nbytes == 8 * 5000


def test_southbound_seqs_per_channel() -> None:
    seqs = SeqSets()
    assert seqs.add("SH", 1) and seqs.add("SH", 2) and seqs.add("SZ", 1)
    assert not seqs.add("SH", 2)
    assert ("SZ", 1) in seqs and ("SZ", 2) not in seqs
    assert SeqSets.from_state(seqs.to_state()).to_state() == {"SH": [1, 3], "SZ": [1, 2]}
