"""Vendor documents to events: a generic array, and cumulative southbound snapshots to incremental ticks."""

from __future__ import annotations

import pytest

from monitor.events import Rejected
from monitor.ingest.adapters import SnapshotTracker, events_from_document, normalize_hk_symbol
from tests.ingest.conftest import TS_HK, trade, validator


def test_generic_array_and_wrappers() -> None:
    evs = [trade(1), trade(2)]
    assert events_from_document(evs) == evs
    for key in ("events", "data", "items"):
        assert events_from_document({key: evs, "next": None}) == evs
    assert events_from_document(trade(3)) == [trade(3)]  # one bare event
    assert events_from_document(42) == [42]  # validated (and rejected) afterwards


def test_hk_symbol_normalised() -> None:
    assert normalize_hk_symbol(9988) == "09988.HK"
    assert normalize_hk_symbol("700") == "00700.HK"
    assert normalize_hk_symbol("09988.hk") == "09988.HK"
    assert normalize_hk_symbol("513770.SH") == "513770.SH"


def snapshot(ts: int, rows: list[tuple[object, float, float]], channel: str = "SH") -> dict:
    return {"ts": ts, "channel": channel, "stocks": [{"symbol": s, "buy_hkd": b, "sell_hkd": x} for s, b, x in rows]}


def test_cumulative_snapshots_become_increments() -> None:
    t = SnapshotTracker()
    ticks, bad = t.ticks(snapshot(TS_HK, [(9988, 1000.0, 400.0), ("00700", 50.0, 0.0)]), 0)
    assert bad == []
    assert [(x["symbol"], x["buy_hkd"], x["sell_hkd"], x["seq"]) for x in ticks] == [
        ("09988.HK", 1000.0, 400.0, 1), ("00700.HK", 50.0, 0.0, 1)]
    ticks, _ = t.ticks(snapshot(TS_HK + 60_000, [(9988, 1500.5, 400.0), ("00700", 50.0, 0.0)]), 0)
    # Tencent unchanged: nothing emitted for it
    assert [(x["symbol"], x["buy_hkd"], x["sell_hkd"], x["seq"]) for x in ticks] == [("09988.HK", 500.5, 0.0, 2)]
    # every tick is a valid southbound event
    v = validator()
    ev = v.validate(ticks[0])
    assert ev.kind == "southbound" and ev.seq == 2 and ev.channel == "SH"


def test_decrease_rebases_without_negative_ticks() -> None:
    t = SnapshotTracker()
    t.ticks(snapshot(TS_HK, [(9988, 1000.0, 400.0)]), 0)
    # the vendor corrects the figures downwards: no negative tick, the new figures become the baseline
    ticks, bad = t.ticks(snapshot(TS_HK + 60_000, [(9988, 900.0, 400.0)]), 0)
    assert ticks == [] and bad == []
    ticks, _ = t.ticks(snapshot(TS_HK + 120_000, [(9988, 950.0, 420.0)]), 0)
    assert [(x["buy_hkd"], x["sell_hkd"], x["seq"]) for x in ticks] == [(50.0, 20.0, 2)]


def test_new_day_resets_the_cumulatives() -> None:
    t = SnapshotTracker()
    t.ticks(snapshot(TS_HK, [(9988, 1000.0, 400.0)]), 0)
    next_day = TS_HK + 3 * 86_400_000  # Monday 2025-09-15
    ticks, _ = t.ticks(snapshot(next_day, [(9988, 10.0, 4.0)]), 0)
    assert [(x["buy_hkd"], x["sell_hkd"], x["seq"]) for x in ticks] == [(10.0, 4.0, 1)]


def test_channels_are_tracked_apart_and_bad_rows_reported() -> None:
    t = SnapshotTracker()
    doc = {"ts": TS_HK, "stocks": [
        {"symbol": 9988, "channel": "SH", "buy_hkd": 10, "sell_hkd": 0},
        {"symbol": 9988, "channel": "SZ", "buy_hkd": 20, "sell_hkd": 0},
        {"symbol": 9988, "channel": "XX", "buy_hkd": 20, "sell_hkd": 0},
        {"channel": "SH", "buy_hkd": 1, "sell_hkd": 0},
        {"symbol": 700, "channel": "SH", "buy_hkd": "lots", "sell_hkd": 0},
        "garbage",
    ]}
    ticks, bad = t.ticks(doc, 0)
    assert [(x["channel"], x["buy_hkd"]) for x in ticks] == [("SH", 10.0), ("SZ", 20.0)]
    assert [exc.reason for _, exc in bad] == ["bad_value", "missing_field", "wrong_type", "bad_json"]
    with pytest.raises(Rejected):
        t.ticks({"nothing": 1}, 0)


def test_state_file_survives_restart(tmp_path) -> None:
    path = str(tmp_path / "sb.json")
    t = SnapshotTracker(state_file=path)
    t.ticks(snapshot(TS_HK, [(9988, 1000.0, 400.0)]), 0)
    t.save()
    again = SnapshotTracker(state_file=path)
    ticks, _ = again.ticks(snapshot(TS_HK + 60_000, [(9988, 1200.0, 400.0)]), 0)
    assert [(x["buy_hkd"], x["seq"]) for x in ticks] == [(200.0, 2)]
