"""The late-data policy: trades and ticks are taken for the current session and the previous one
(``[compute] max_late_sessions = 1``); older ones are refused as ``too_late``; lateness behind the
grace is judged per input stream (a Kafka partition), not against the fastest one."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from consumers.engine import Engine
from harness.docs import etf_doc
from monitor.calendars import default_calendars
from monitor.events import Rejected, Validator
from tests.unit.test_rules import ETF, STOCK, at, tick, trade

CAL = default_calendars()


class Stream:
    """Events through the Validator and one Engine; ``stream`` names the partition each came from."""

    def __init__(self, max_late_sessions: int = 1) -> None:
        self.validator = Validator(CAL)
        self.engine = Engine(CAL, max_late_sessions=max_late_sessions)
        self.outcomes: list[str] = []
        self.rejected: Counter[str] = Counter()

    def add(self, obj: dict[str, Any], stream: str = "p0") -> str:
        try:
            out = self.engine.apply(self.validator.validate(obj), stream=stream)
        except Rejected as exc:
            self.rejected[exc.reason] += 1
            out = exc.reason
        self.outcomes.append(out)
        return out


def test_trades_of_the_previous_session_are_taken_older_ones_are_too_late() -> None:
    """Wed 2025-09-10, Thu 09-11, Fri 09-12: once Friday trades, Thursday is still taken, Wednesday not."""
    s = Stream()
    s.add(trade(at("2025-09-10", "10:00:00"), 1.0, 100, "B", tid="w1"))
    s.add(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B", tid="f1"))
    assert s.add(trade(at("2025-09-11", "14:59:00"), 1.0, 100, "B", tid="t1")) == "late"
    assert s.add(trade(at("2025-09-10", "14:59:00"), 1.0, 100, "B", tid="w2")) == "too_late"
    assert s.add(trade(at("2025-09-10", "10:00:00"), 1.0, 100, "B", tid="w1")) == "too_late"  # even a re-send
    # in = applied + rejected + duplicates
    assert sum(s.engine.applied.values()) + sum(s.rejected.values()) + sum(s.engine.duplicates.values()) == 5
    assert s.engine.applied["trade"] == 3 and s.rejected == Counter(too_late=2)


def test_the_previous_session_is_a_trading_day_not_yesterday() -> None:
    """2025-10-09 (Thu) follows the National Day closure: its previous session is Tue 2025-09-30."""
    s = Stream()
    s.add(trade(at("2025-10-09", "10:00:00"), 1.0, 100, "B"))
    assert s.add(trade(at("2025-09-30", "14:00:00"), 1.0, 100, "B")) == "late"
    assert s.add(trade(at("2025-09-29", "14:00:00"), 1.0, 100, "B")) == "too_late"


def test_southbound_ticks_follow_the_southbound_days() -> None:
    s = Stream()
    s.add(tick(at("2025-09-12", "10:00:00"), 1.0, 0.0, 5))
    assert s.add(tick(at("2025-09-11", "10:00:00"), 1.0, 0.0, 1)) == "late"
    assert s.add(tick(at("2025-09-10", "10:00:00"), 1.0, 0.0, 1)) == "too_late"


def test_max_late_sessions_zero_takes_only_the_current_session() -> None:
    s = Stream(max_late_sessions=0)
    s.add(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"))
    assert s.add(trade(at("2025-09-11", "14:00:00"), 1.0, 100, "B")) == "too_late"
    assert s.add(trade(at("2025-09-12", "09:45:00"), 1.0, 100, "B")) == "late"  # 15 min behind: taken, counted late


def test_bars_and_dailies_still_correct_older_days() -> None:
    s = Stream()
    s.add(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"))
    s.add(tick(at("2025-09-12", "10:00:00"), 1.0, 0.0, 5))
    bar = {"kind": "bar", "symbol": ETF, "date": "2025-09-01", "open": 1, "high": 1, "low": 1, "close": 1,
           "volume": 10, "amount": 10}
    daily = {"kind": "southbound_daily", "symbol": STOCK, "date": "2025-09-01", "buy_hkd": 5, "sell_hkd": 1}
    assert s.add(bar) == "applied" and s.add(daily) == "applied"


def test_lateness_is_judged_per_stream() -> None:
    """Partition p0 reaches 14:00 while p1, read in the same catch-up, is still at 10:00: p1's events
    are in order in their own stream, so none is late; one 2 minutes behind p1's own clock is."""
    s = Stream()
    s.add(trade(at("2025-09-12", "14:00:00"), 1.0, 100, "B"), stream="p0")
    assert [s.add(trade(at("2025-09-12", f"10:0{i}:00"), 1.0, 100, "B", symbol="510300.SH"), stream="p1")
            for i in range(4)] == ["applied"] * 4
    assert s.add(trade(at("2025-09-12", "10:01:00"), 1.0, 100, "B", symbol="510300.SH"), stream="p1") == "late"
    assert s.engine.late["trade"] == 1


def test_a_lagging_stream_keeps_the_dedupe_keys_it_may_still_need() -> None:
    """p0 is two sessions ahead of p1: pruning must not forget the keys of a day p1 still takes, or a
    re-sent trade of it would count twice."""
    s = Stream()
    s.add(trade(at("2025-09-10", "10:00:00"), 1.0, 100, "B", tid="x1", symbol="510300.SH"), stream="p1")
    s.add(trade(at("2025-09-12", "14:00:00"), 1.0, 100, "B", tid="y1"), stream="p0")
    s.engine.prune()
    assert s.add(trade(at("2025-09-10", "10:00:00"), 1.0, 100, "B", tid="x1", symbol="510300.SH"),
                 stream="p1") == "duplicate"


@pytest.mark.parametrize("day", ["2025-09-10", "2025-09-11"])
def test_a_pruned_engine_answers_like_an_unpruned_one(day: str) -> None:
    """Pruning (at every checkpoint) drops old keys and curves but never changes an outcome."""
    events = [trade(at(d, "10:00:00"), 1.0, 100, "B", tid=f"{d}-1") for d in ("2025-09-10", "2025-09-11", "2025-09-12")]
    again = trade(at(day, "10:00:00"), 1.0, 100, "B", tid=f"{day}-1")
    pruned, plain = Stream(), Stream()
    for e in events:
        pruned.add(e)
        pruned.engine.prune()
        plain.add(e)
    assert pruned.add(again) == plain.add(again)
    assert etf_doc(pruned.engine, ETF) == etf_doc(plain.engine, ETF)


def test_old_days_give_back_their_keys_and_curves() -> None:
    s = Stream()
    days = [d for d in CAL["SH"].last_n(dt.date(2025, 9, 12), 4)]
    for d in days:
        for i in range(100):
            s.add(trade(at(d.isoformat(), "10:00:00", i * 1000), 1.0, 100, "B", tid=f"{d}-{i:04d}"))
        s.engine.prune()
    etf_days = s.engine.etf[ETF].days
    assert etf_days[days[-1]].trade_ids is not None and etf_days[days[-1]].nets is not None  # today
    assert etf_days[days[-2]].trade_ids is not None and etf_days[days[-2]].nets is None  # previous: keys, curve
    assert etf_days[days[-2]].turnover_until(10 * 3600 + 50) == 51 * 100_000_000  # same-time turnover, exact
    assert etf_days[days[-3]].trade_ids is None and len(etf_days[days[-3]].secs) == 0  # older: totals only


def test_a_day_opened_by_a_daily_record_keeps_its_keys_until_its_ticks_are_read() -> None:
    """Catching up through Kafka: the dailies partition is read ahead of the ticks partition, and the
    trades partition is on Friday already. Wednesday's keys must stay: its ticks are still to come."""
    s = Stream()
    s.engine.expected_streams = {"trades", "ticks"}
    s.add({"kind": "southbound_daily", "symbol": STOCK, "date": "2025-09-10", "buy_hkd": 5, "sell_hkd": 1})
    s.add(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"), stream="trades")
    s.engine.prune()
    assert s.add(tick(at("2025-09-10", "10:00:00"), 1.0, 0.0, 1), stream="ticks") == "applied"
    assert s.add(tick(at("2025-09-10", "10:00:00"), 1.0, 0.0, 1), stream="ticks") == "duplicate"


def test_an_event_for_a_day_whose_keys_are_gone_is_refused_never_counted_as_a_duplicate() -> None:
    """Without the runner's list of streams the engine only knows the streams it has seen: an event
    of a day whose keys went is dead-lettered as too_late (recoverable), not silently dropped."""
    s = Stream()
    s.add({"kind": "southbound_daily", "symbol": STOCK, "date": "2025-09-10", "buy_hkd": 5, "sell_hkd": 1})
    s.add(trade(at("2025-09-12", "10:00:00"), 1.0, 100, "B"), stream="trades")
    s.engine.prune()
    assert s.add(tick(at("2025-09-10", "10:00:00"), 1.0, 0.0, 1), stream="ticks") == "too_late"
    assert s.engine.duplicates["southbound"] == 0
