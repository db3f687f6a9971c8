"""Pipeline counters kept as plain Python numbers; the metrics collector exports them.

Incrementing a dict entry costs a fraction of a Prometheus client call, and
every series is produced at scrape time from one place.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_LAST_BOUND, _INF_BUCKET = LAG_BUCKETS[-1], len(LAG_BUCKETS)  # read once per event: module constants


@dataclass
class PipelineStats:
    ingested: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, kind)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, reason)
    reconnects: Counter[str] = field(default_factory=Counter)  # source
    last_event_wall_s: dict[str, float] = field(default_factory=dict)  # source -> wall time of last event
    connected: dict[str, bool] = field(default_factory=dict)  # source -> up
    buffered: int = 0  # events accepted by sources, not yet acknowledged by the bus
    bus_available: bool | None = None  # ingest: did the last delivery attempt succeed (None: none made yet)
    lag_counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_sum: float = 0.0
    consumer_lag: dict[tuple[str, int], int] = field(default_factory=dict)
    recovery_seconds: float | None = None
    replayed: int = 0  # events applied again after a rebalance, counted once already (not in applied)

    def observe_lag(self, seconds: float) -> None:
        """Event time to applied, into the histogram buckets (the first bound >= seconds, else +Inf).

        NaN fails the "<=" and lands in +Inf, as with a linear scan; bisect keeps it per event cheap.
        """
        self.lag_counts[bisect_left(LAG_BUCKETS, seconds) if seconds <= _LAST_BOUND else _INF_BUCKET] += 1
        self.lag_sum += seconds
