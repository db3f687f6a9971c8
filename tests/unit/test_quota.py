"""Southbound quota and per-channel net buy: one named scenario per rule, with hand-computed numbers.

Quota records (CNY) are held per Stock Connect channel and southbound day, the latest by event time;
the channel net buy (HKD) sums the ticks' buy - sell of the channel over every stock for the last
1/5/20 southbound sessions. Each is read through the view, the API document, /metrics and a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from consumers import views
from consumers.codec import Marker, StateWriter, marker_key, read_state
from consumers.engine import Engine
from consumers.retention import QUOTA_RETAIN_DAYS
from harness.metrics import sample_value
from monitor import documents
from monitor.bus import EVENT_TOPICS
from monitor.bus.memory import MemoryBus
from monitor.calendars import default_calendars
from monitor.config import Config
from monitor.events import TOPICS, Rejected, SouthboundQuota, Validator, quota_key
from monitor.metrics import Exposition
from monitor.server import make_app
from monitor.service import Service
from monitor.stats import PipelineStats

UTC8 = dt.timezone(dt.timedelta(hours=8))
CAL = default_calendars()
SB_DAYS = CAL["SB"].last_n(dt.date(2025, 9, 12), 26)  # 2025-08-08 .. 2025-09-12, no holiday on either side
TODAY, YESTERDAY, SIX_BACK, OLDEST = SB_DAYS[-1], SB_DAYS[-2], SB_DAYS[-7], SB_DAYS[0]
BN = 1_000_000_000  # a billion
MICRO = 1_000_000


def at(day: dt.date, hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return int(dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC8).timestamp() * 1000)


def quota(channel: str, day: dt.date, hhmm: str, quota_cny: float, balance_cny: float) -> dict[str, Any]:
    return {"kind": "southbound_quota", "channel": channel, "ts": at(day, hhmm), "quota_cny": quota_cny,
            "balance_cny": balance_cny}


def tick(symbol: str, channel: str, day: dt.date, hhmm: str, buy: float, sell: float, seq: int) -> dict[str, Any]:
    return {"kind": "southbound", "symbol": symbol, "ts": at(day, hhmm), "channel": channel, "buy_hkd": buy,
            "sell_hkd": sell, "seq": seq}


def apply_all(eng: Engine, events: list[dict[str, Any]]) -> list[str]:
    v = Validator(CAL)
    return [eng.apply(v.validate(e)) for e in events]


def run(events: list[dict[str, Any]]) -> Engine:
    eng = Engine(CAL)
    apply_all(eng, events)
    return eng


def by_channel(eng: Engine) -> dict[str, views.QuotaView]:
    out = {v.channel: v for v in views.southbound_quota(eng)}
    assert list(out) == ["SH", "SZ"]  # always both, SH first
    return out


# -- the quota record held for a channel today --------------------------------------------------
def test_the_latest_record_by_event_time_is_held_and_an_older_one_arriving_later_does_not_replace_it() -> None:
    """SH: 10:00 balance 30bn, 11:00 balance 25bn, then a 10:30 record (28bn) arrives last."""
    eng = Engine(CAL)
    statuses = apply_all(eng, [quota("SH", TODAY, "10:00", 42 * BN, 30 * BN),
                               quota("SH", TODAY, "11:00", 42 * BN, 25 * BN),
                               quota("SH", TODAY, "10:30", 42 * BN, 28 * BN)])
    assert statuses == ["applied", "applied", "duplicate"]  # the older one changes nothing
    sh = by_channel(eng)["SH"]
    assert (sh.date, sh.ts_ms, sh.quota, sh.balance) == (TODAY, at(TODAY, "11:00"), 42 * BN * MICRO, 25 * BN * MICRO)
    assert sh.used_ratio == 17 / 42  # (42 - 25) / 42
    assert eng.as_of_ms == at(TODAY, "11:00")  # quota events move the stream clock like ticks
    assert (eng.applied["southbound_quota"], eng.late["southbound_quota"]) == (2, 0)


def test_a_record_with_the_same_event_time_and_other_numbers_is_a_correction() -> None:
    eng = run([quota("SZ", TODAY, "14:00", 42 * BN, 21 * BN), quota("SZ", TODAY, "14:00", 42 * BN, 20 * BN)])
    sz = by_channel(eng)["SZ"]
    assert sz.balance == 20 * BN * MICRO and sz.used_ratio == 22 / 42


def test_an_identical_record_is_a_duplicate() -> None:
    eng = Engine(CAL)
    rec = quota("SH", TODAY, "10:00", 42 * BN, 30 * BN)
    assert apply_all(eng, [rec, dict(rec)]) == ["applied", "duplicate"]
    assert (eng.applied["southbound_quota"], eng.duplicates["southbound_quota"]) == (1, 1)


def test_yesterdays_record_does_not_count_today() -> None:
    """Yesterday SH closed at 5bn left; today only a tick has arrived so far: SH shows no record today.
    Then yesterday's late 15:59 record lands on yesterday, not today."""
    eng = run([quota("SH", YESTERDAY, "15:00", 42 * BN, 5 * BN),
               tick("00700.HK", "SH", TODAY, "09:31", 1_000.0, 0.0, 1),
               quota("SH", YESTERDAY, "15:59", 42 * BN, 4 * BN)])
    sh = by_channel(eng)["SH"]
    assert (sh.date, sh.ts_ms, sh.quota, sh.balance, sh.used_ratio) == (None, None, None, None, None)
    assert eng.quota.latest("SH", YESTERDAY) == (at(YESTERDAY, "15:59"), 42 * BN * MICRO, 4 * BN * MICRO)


def test_used_ratio_is_exact() -> None:
    """SH 52bn with 13bn left: 0.75 exactly; SZ 42bn with 30bn left: 12/42 = 2/7, correctly rounded."""
    ch = by_channel(run([quota("SH", TODAY, "10:00", 52 * BN, 13 * BN),
                         quota("SZ", TODAY, "10:00", 42 * BN, 30 * BN)]))
    assert ch["SH"].used_ratio == 0.75
    assert ch["SZ"].used_ratio == 0.2857142857142857 == 2 / 7
    ch = by_channel(run([quota("SH", TODAY, "10:00", 42 * BN, 42 * BN), quota("SZ", TODAY, "10:00", 42 * BN, 0)]))
    assert (ch["SH"].used_ratio, ch["SZ"].used_ratio) == (0.0, 1.0)


def test_a_record_older_than_retention_keeps_is_dropped_at_the_next_prune_and_so_are_old_days() -> None:
    eng = run([tick("00700.HK", "SH", TODAY, "10:00", 1.0, 0.0, 1)])
    keep = CAL["SB"].last_n(TODAY, QUOTA_RETAIN_DAYS)
    assert QUOTA_RETAIN_DAYS == 5 and keep[0] == SB_DAYS[-5]
    assert apply_all(eng, [quota("SH", keep[0], "15:00", 42 * BN, 1 * BN)]) == ["applied"]  # oldest still kept
    # a distinct record of an older day (a lagging partition in a catch-up): applied, gone at the next prune
    assert apply_all(eng, [quota("SH", SIX_BACK, "15:00", 42 * BN, 1 * BN)]) == ["applied"]
    eng.prune()
    assert eng.quota.latest("SH", SIX_BACK) is None and eng.quota.latest("SH", keep[0]) is not None
    eng.take_updates()
    # a record of a day held, then the current day moves on: pruning drops it (and its state record)
    apply_all(eng, [tick("00700.HK", "SH", dt.date(2025, 9, 15), "10:00", 1.0, 0.0, 1)])
    eng.take_updates()
    eng.prune()
    assert eng.quota.latest("SH", keep[0]) is None
    assert (quota_key("SH"), keep[0]) in eng.take_updates()


# -- per-channel net buy -----------------------------------------------------------------------------
A, B = "00700.HK", "09988.HK"
CHANNEL_TICKS = [
    tick(A, "SH", OLDEST, "10:00", 1_000.0, 0.0, 1),  # 25 sessions back: in no window
    tick(A, "SH", SIX_BACK, "10:00", 500.0, 200.0, 1),  # +300 SH, 20d only
    tick(B, "SZ", SIX_BACK, "10:00", 0.0, 100.0, 1),  # -100 SZ, 20d only
    tick(A, "SZ", YESTERDAY, "10:00", 50.0, 10.0, 1),  # +40 SZ, 5d and 20d
    tick(B, "SH", YESTERDAY, "10:00", 7.0, 0.0, 1),  # +7 SH, 5d and 20d
    tick(A, "SH", TODAY, "10:00", 3.0, 2.0, 1),  # +1 SH
    tick(A, "SZ", TODAY, "10:01", 20.0, 0.0, 1),  # +20 SZ
    tick(B, "SH", TODAY, "10:02", 0.0, 5.0, 1),  # -5 SH
    tick(B, "SZ", TODAY, "10:03", 1.5, 1.0, 1),  # +0.5 SZ
]
# B's authoritative daily record of yesterday replaces its ticks in its own net buy, not in the channels'
B_DAILY = {"kind": "southbound_daily", "symbol": B, "date": YESTERDAY.isoformat(), "buy_hkd": 1_000.0,
           "sell_hkd": 0.0}
SH_NET = {"1d": 1 - 5, "5d": 1 - 5 + 7, "20d": 1 - 5 + 7 + 300}  # -4, 3, 303
SZ_NET = {"1d": 20 + 0.5, "5d": 20 + 0.5 + 40, "20d": 20 + 0.5 + 40 - 100}  # 20.5, 60.5, -39.5


def _micros(hkd: dict[str, float]) -> dict[str, int]:
    return {k: round(v * MICRO) for k, v in hkd.items()}


def test_channel_net_buy_over_1d_5d_20d_across_two_stocks_and_both_channels() -> None:
    eng = run(CHANNEL_TICKS + [B_DAILY])
    ch = by_channel(eng)
    assert ch["SH"].net_buy == _micros(SH_NET) == {"1d": -4_000_000, "5d": 3_000_000, "20d": 303_000_000}
    assert ch["SZ"].net_buy == _micros(SZ_NET) == {"1d": 20_500_000, "5d": 60_500_000, "20d": -39_500_000}
    # the channels sum to the ticks' net of both stocks; B's own 5d net buy takes its daily record
    b = views.southbound(eng, B)
    assert b is not None and b.net_buy["5d"] == (-5 + 0.5 + 1_000) * MICRO


def test_channel_net_buy_is_none_before_any_event_and_zero_without_ticks() -> None:
    ch = by_channel(Engine(CAL))
    assert ch["SH"].net_buy == {"1d": None, "5d": None, "20d": None}
    ch = by_channel(run([quota("SH", TODAY, "10:00", 42 * BN, 30 * BN)]))
    assert ch["SZ"].net_buy == {"1d": 0, "5d": 0, "20d": 0}


# -- the API document, /metrics, validation -------------------------------------------------------------
def _scenario() -> Engine:
    return run(CHANNEL_TICKS + [quota("SH", TODAY, "10:00", 42 * BN, 30 * BN),
                                quota("SH", TODAY, "11:00", 42 * BN, 25 * BN),
                                quota("SZ", YESTERDAY, "15:00", 42 * BN, 1 * BN)])


EXPECTED_DOC = {
    "as_of": "2025-09-12T11:00:00.000+08:00",
    "channels": [
        {"channel": "SH", "date": "2025-09-12", "ts": "2025-09-12T11:00:00.000+08:00", "quota_cny": 42e9,
         "balance_cny": 25e9, "used_ratio": 17 / 42, "net_buy_hkd": {"1d": -4.0, "5d": 3.0, "20d": 303.0}},
        {"channel": "SZ", "date": None, "ts": None, "quota_cny": None, "balance_cny": None, "used_ratio": None,
         "net_buy_hkd": {"1d": 20.5, "5d": 60.5, "20d": -39.5}},
    ],
}


def test_the_api_document_lists_both_channels() -> None:
    eng = _scenario()
    assert documents.southbound_quota_answer(eng) == EXPECTED_DOC
    assert documents.report(eng)["southbound_quota"] == EXPECTED_DOC["channels"]


def test_the_endpoint_serves_the_document_behind_the_token() -> None:
    eng = _scenario()

    async def go() -> tuple[int, int, Any]:
        app = make_app(eng, Exposition(eng, PipelineStats()), lambda: True, dict, token="t0ken")
        async with TestClient(TestServer(app)) as client:
            denied = await client.get("/api/v1/southbound/quota")
            ok = await client.get("/api/v1/southbound/quota", headers={"Authorization": "Bearer t0ken"})
            spec = await client.get("/api/v1/openapi.json", headers={"Authorization": "Bearer t0ken"})
            assert "/api/v1/southbound/quota" in (await spec.json())["paths"]
            return denied.status, ok.status, orjson.loads(await ok.read())

    denied, status, body = asyncio.run(go())
    assert (denied, status) == (401, 200)
    assert body == EXPECTED_DOC


def test_metrics_carry_the_quota_and_the_channel_net_buy() -> None:
    text = Exposition(_scenario(), PipelineStats()).render().decode()
    assert sample_value(text, "fundflow_southbound_quota_balance_cny", {"channel": "SH"}) == 25e9
    assert sample_value(text, "fundflow_southbound_quota_used_ratio", {"channel": "SH"}) == 17 / 42
    # SZ has no record today (only yesterday's): no sample
    assert sample_value(text, "fundflow_southbound_quota_balance_cny", {"channel": "SZ"}) is None
    assert sample_value(text, "fundflow_southbound_quota_used_ratio", {"channel": "SZ"}) is None
    for channel, nets in (("SH", SH_NET), ("SZ", SZ_NET)):
        for window, hkd in nets.items():
            labels = {"channel": channel, "window": window}
            assert sample_value(text, "fundflow_southbound_channel_net_buy_hkd", labels) == hkd, labels
    assert 'fundflow_southbound_channel_net_buy_hkd{channel="SZ",window="20d"} -39.5\n' in text  # label order


@pytest.mark.parametrize("change,reason", [
    ({"balance_cny": 42 * BN + 1}, "bad_value"),  # more left than the quota
    ({"channel": "XX"}, "bad_value"),
    ({"channel": 1}, "bad_value"),
    ({"quota_cny": 0, "balance_cny": 0}, "bad_number"),
    ({"balance_cny": -1}, "bad_number"),
    ({"quota_cny": "42e9"}, "wrong_type"),
    ({"ts": at(dt.date(2025, 9, 13), "10:00")}, "outside_session"),  # a Saturday
    ({"ts": at(TODAY, "20:00")}, "outside_session"),  # hours after the close
])
def test_a_bad_quota_record_is_rejected_with_a_reason(change: dict[str, Any], reason: str) -> None:
    raw = dict(quota("SH", TODAY, "10:00", 42 * BN, 30 * BN), **change)
    with pytest.raises(Rejected) as exc:
        Validator(CAL).validate(raw)
    assert exc.value.reason == reason


def test_a_quota_record_is_validated_keyed_by_channel_and_kind_inferred() -> None:
    raw = quota("SZ", TODAY, "10:00", 42_000_000_000.5, 30 * BN)
    del raw["kind"]
    ev = Validator(CAL).validate(raw)
    assert ev == SouthboundQuota("SZ", at(TODAY, "10:00"), 42_000_000_000_500_000, 30 * BN * MICRO)
    assert ev.symbol == "quota.SZ"  # the bus key and the state-topic owner of the channel's records


def test_missing_channel_is_a_missing_field() -> None:
    raw = quota("SH", TODAY, "10:00", 42 * BN, 30 * BN)
    del raw["channel"]
    with pytest.raises(Rejected) as exc:
        Validator(CAL).validate(raw, "southbound_quota")
    assert exc.value.reason == "missing_field"


# -- checkpoints -----------------------------------------------------------------------------------------
def test_quota_and_channel_nets_survive_a_checkpoint_into_a_fresh_engine() -> None:
    """Encode every modified day, read the records back, load them into a fresh engine: the same views."""
    eng = _scenario()
    writer = StateWriter(eng, "g")
    keys = eng.take_updates()
    assert (quota_key("SH"), TODAY) in keys and (quota_key("SZ"), YESTERDAY) in keys
    owners = {s: 0 for s, _ in keys}
    records, bumps = writer.encode(keys, owners, {0: 1})
    heads = {(d["symbol"], d["date"]): d for d in (orjson.loads(v) for _, k, v in records if v is not None)}
    assert heads[("quota.SH", "2025-09-12")]["quota"] == [at(TODAY, "11:00"), 42 * BN * MICRO, 25 * BN * MICRO]
    assert heads[(A, "2025-09-12")]["southbound"]["channel_net"] == {"SH": 1 * MICRO, "SZ": 20 * MICRO}
    writer.commit(bumps, keys, {0: 1})
    marker = Marker(1, {}, eng.as_of_ms, {})
    state = read_state("g", [(k, v) for _, k, v in records] + [(marker_key("g", 0), marker.to_json())])
    fresh = Engine(CAL)
    fresh_writer = StateWriter(fresh, "g")
    assert set(fresh_writer.load(0, state)) == {A, B, "quota.SH", "quota.SZ"}
    fresh_writer.apply_marker(marker, {})
    assert views.southbound_quota(fresh) == views.southbound_quota(eng)
    assert fresh.quota.days == eng.quota.days
    for sym in (A, B):
        for d, day in eng.sb[sym].days.items():
            assert fresh.sb[sym].days[d].tick_net_sh == day.tick_net_sh
    # the day after: both engines take the same record the same way
    nxt = quota("SH", TODAY, "11:00", 42 * BN, 25 * BN)
    assert apply_all(fresh, [nxt]) == apply_all(eng, [nxt]) == ["duplicate"]
    # losing the channel's partition forgets its records
    fresh.drop_symbols([quota_key("SH")])
    assert fresh.quota.latest("SH", TODAY) is None and fresh.quota.latest("SZ", YESTERDAY) is not None


def _service(bus: MemoryBus) -> Service:
    cfg = Config()
    cfg.kafka.checkpoint_interval_s = 3600.0
    return Service(cfg, bus=bus, live_clock=False)


def _feed(svc: Service, events: list[dict[str, Any]]) -> None:
    pub = svc.publisher("test")
    for e in events:
        assert pub.publish_obj(e, orjson.dumps(e)) is not None


def test_the_consumer_reads_the_quota_topic_and_a_restart_resumes_the_same_state() -> None:
    """Through the bus and the runner (as `fundflow consume` and `fundflow replay` run): checkpoint after
    the first half, a fresh process recovers it and reads the rest; the same as one uninterrupted run."""
    events = CHANNEL_TICKS + [quota("SH", TODAY, "10:00", 42 * BN, 30 * BN),
                              quota("SZ", TODAY, "10:05", 42 * BN, 40 * BN),
                              quota("SH", TODAY, "11:00", 42 * BN, 25 * BN),
                              quota("SH", TODAY, "10:30", 42 * BN, 28 * BN),  # older: changes nothing
                              quota("SZ", TODAY, "11:05", 42 * BN, 35 * BN)]
    cut = len(CHANNEL_TICKS) + 2
    bus = MemoryBus(6)
    bus.ensure_topics()
    assert TOPICS["southbound_quota"] in EVENT_TOPICS  # created with the others, and consumed
    first = _service(bus)
    _feed(first, events[:cut])
    asyncio.run(first.runner.run(asyncio.Event(), until_caught_up=True))
    second = _service(bus)
    _feed(second, events[cut:])
    asyncio.run(second.runner.run(asyncio.Event(), until_caught_up=True))
    assert second.runner.applied_total == len(events) - cut  # only what came after the checkpoint

    whole_bus = MemoryBus(6)
    whole_bus.ensure_topics()
    whole = _service(whole_bus)
    _feed(whole, events)
    asyncio.run(whole.runner.run(asyncio.Event(), until_caught_up=True))
    assert documents.southbound_quota_answer(second.engine) == documents.southbound_quota_answer(whole.engine)
    sh, sz = views.southbound_quota(second.engine)
    assert (sh.balance, sz.balance) == (25 * BN * MICRO, 35 * BN * MICRO)
    assert sh.net_buy == _micros(SH_NET) and sz.net_buy == _micros(SZ_NET)
