"""Sealed dedupe keys answer membership like the set they replace."""

from hypothesis import given
from hypothesis import strategies as st

from consumers.dedupe import SealedKeys, seal

# what the engine holds: trade ids (non-empty strings) and southbound (channel, seq) pairs
keys = st.one_of(st.text(min_size=1, max_size=12), st.tuples(st.sampled_from(["SH", "SZ"]), st.integers(0, 10**12)))


@given(st.sets(keys), st.lists(keys))
def test_sealed_keys_answer_like_the_set(held: set, probes: list) -> None:
    sealed = SealedKeys(held)
    assert len(sealed) == len({hash(k) for k in held})
    for k in list(held) + probes:
        assert (k in sealed) == (k in held)


@given(st.sets(keys), st.lists(keys))
def test_adding_to_a_sealed_day_is_adding_to_the_set(held: set, late: list) -> None:
    sealed, plain = seal(set(held)), set(held)
    for k in late:
        assert (k in sealed) == (k in plain)
        sealed.add(k)
        plain.add(k)
    assert all(k in sealed for k in plain)


def test_a_resent_trade_of_a_sealed_day_is_still_a_duplicate() -> None:
    day = SealedKeys(["T1", "T2"])
    assert "T1" in day and "T3" not in day
    assert seal(day) is day
