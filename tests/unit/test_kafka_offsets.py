"""``monitor.bus.kafka.list_offsets``: short ListOffsets attempts with a metadata refresh between them.

kafka-python re-asks a leader that moved to another live broker for its whole timeout (the cluster test
``test_offsets_follow_a_leader_moved_between_live_nodes`` shows it on real brokers); here, with a stand-in
consumer, the attempts, the refresh between them and the overall bound.
"""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from monitor.bus import kafka as kbus


class FakeConsumer:
    """Times out ``failures`` times, then answers; counts metadata refreshes like kafka-python 3's objects."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.timeouts: list[int] = []
        self.refreshes = 0
        self._cluster, self._manager, self._net = self, self, self

    def end_offsets(self, tps: list[Any], timeout_ms: int) -> dict[Any, int]:
        self.timeouts.append(timeout_ms)
        if len(self.timeouts) <= self.failures:
            raise KafkaTimeoutError(f"Failed to get offsets by timestamps in {timeout_ms} ms")
        return {tp: 7 for tp in tps}

    def request_update(self) -> str:
        self.refreshes += 1
        return "future"

    def wait_for(self, future: str, timeout_ms: int) -> None:
        pass

    def run(self, fn: Any, *args: Any) -> Any:
        return fn(*args)


def test_a_timed_out_attempt_refreshes_metadata_and_tries_again() -> None:
    c = FakeConsumer(failures=2)
    assert kbus.list_offsets(c, "end_offsets", ["tp"]) == {"tp": 7}  # type: ignore[arg-type]  # a stand-in
    assert c.refreshes == 2
    assert c.timeouts and max(c.timeouts) <= kbus.OFFSETS_ATTEMPT_MS


def test_gives_up_after_the_overall_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]

    def now() -> float:
        return clock[0]

    c = FakeConsumer(failures=10**6)
    orig = c.end_offsets

    def slow(tps: list[Any], timeout_ms: int) -> dict[Any, int]:
        clock[0] += timeout_ms / 1000  # each attempt spends its whole timeout
        return orig(tps, timeout_ms)

    c.end_offsets = slow  # type: ignore[method-assign]  # the stand-in's attempts take time
    monkeypatch.setattr(kbus.time, "monotonic", now)
    with pytest.raises(KafkaTimeoutError):
        kbus.list_offsets(c, "end_offsets", ["tp"])  # type: ignore[arg-type]  # a stand-in
    assert sum(c.timeouts) / 1000 == pytest.approx(kbus.OFFSETS_DEADLINE_S, abs=0.01)
