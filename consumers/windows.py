"""Intraday sliding sums at second resolution.

Rule: an event at time t is in window W iff floor(t) > floor(as_of) - W.
Each window keeps a running sum and a cut (the newest second already
excluded); advancing the clock subtracts only the seconds that crossed the
cut, so a query costs O(log n + expired) and an add costs O(windows).
"""

from __future__ import annotations

import bisect

_NEVER = -(1 << 62)


class SlidingSums:
    """Running sums of integer values over several trailing windows (seconds)."""

    __slots__ = ("widths", "secs", "vals", "sums", "cuts", "_index")

    def __init__(self, widths: tuple[int, ...]) -> None:
        if list(widths) != sorted(widths):
            raise ValueError("widths must be ascending: the last one bounds what is kept")
        self.widths = widths
        self.secs: list[int] = []  # sorted distinct seconds held (within the widest window)
        self.vals: dict[int, int] = {}
        self.sums = [0] * len(widths)
        self.cuts = [_NEVER] * len(widths)
        self._index = range(len(widths))  # built once: add() runs for every trade

    def add(self, sec: int, value: int) -> None:
        """Add ``value`` at second ``sec`` (the clock must already be >= sec)."""
        cuts = self.cuts
        if sec <= cuts[-1]:  # older than the widest window: in no window at all
            return
        vals = self.vals
        held = vals.get(sec)
        if held is not None:
            vals[sec] = held + value
        else:
            vals[sec] = value
            secs = self.secs
            if not secs or sec > secs[-1]:
                secs.append(sec)
            else:
                bisect.insort(secs, sec)
        sums = self.sums
        if sec > cuts[0]:
            # cuts only ever move to (clock - width), so they descend as widths ascend: a second
            # newer than the first cut is in every window (the usual case for a live trade)
            for i in self._index:
                sums[i] += value
        else:
            for i in self._index:
                if sec > cuts[i]:
                    sums[i] += value

    def advance(self, now_sec: int) -> None:
        """Move the clock to ``now_sec``: drop what fell out of each window."""
        secs, vals, sums, cuts = self.secs, self.vals, self.sums, self.cuts
        for i, width in enumerate(self.widths):
            cut = now_sec - width
            old = cuts[i]
            if cut <= old:
                continue
            lo = bisect.bisect_right(secs, old)
            hi = bisect.bisect_right(secs, cut)
            if hi > lo:
                sums[i] -= sum(vals[s] for s in secs[lo:hi])
            cuts[i] = cut
        # seconds outside the widest window are no longer needed
        drop = bisect.bisect_right(secs, cuts[-1])
        if drop:
            for s in secs[:drop]:
                del vals[s]
            del secs[:drop]

    def values(self, now_sec: int) -> list[int]:
        self.advance(now_sec)
        return list(self.sums)
