"""Intraday sliding sums at second resolution.

Rule: an event at time t is in window W iff floor(t) > floor(as_of) - W.
Each window keeps a cut (the newest second already excluded) and the sum of
what is held but behind its cut; a window's sum is the running total minus
that. Advancing the clock adds only the seconds that crossed a cut, so a
query costs O(log n + expired), and an add inside every window (the usual
live trade) is one addition whatever the number of windows.
"""

from __future__ import annotations

import bisect
from array import array

_NEVER = -(1 << 62)


class SlidingSums:
    """Running sums of integer values over several trailing windows (seconds)."""

    __slots__ = ("widths", "secs", "vals", "total", "dropped", "cuts")

    def __init__(self, widths: tuple[int, ...]) -> None:
        if list(widths) != sorted(widths):
            raise ValueError("widths must be ascending: the last one bounds what is kept")
        self.widths = widths
        # sorted distinct seconds held (within the widest window) and each one's sum: two compact arrays
        # (16 bytes a second) rather than a dict of ints (~100)
        self.secs = array("q")
        self.vals = array("q")
        self.total = 0  # every value added within the widest window (exact integers)
        self.dropped = [0] * len(widths)  # per window: the part of total behind its cut
        self.cuts = [_NEVER] * len(widths)

    def add(self, sec: int, value: int) -> None:
        """Add ``value`` at second ``sec`` (the clock must already be >= sec)."""
        cuts = self.cuts
        if sec <= cuts[-1]:  # older than the widest window: in no window at all
            return
        secs, vals = self.secs, self.vals
        if secs and sec == secs[-1]:
            vals[-1] += value
        elif not secs or sec > secs[-1]:
            secs.append(sec)
            vals.append(value)
        else:
            i = bisect.bisect_left(secs, sec)
            if secs[i] == sec:
                vals[i] += value
            else:
                secs.insert(i, sec)
                vals.insert(i, value)
        self.total += value
        # cuts only ever move to (clock - width), so they descend as widths ascend: a second newer
        # than the first cut is in every window; else it is behind the cuts of the narrower ones
        if sec <= cuts[0]:
            dropped = self.dropped
            for i, cut in enumerate(cuts):
                if sec <= cut:
                    dropped[i] += value

    def advance(self, now_sec: int) -> None:
        """Move the clock to ``now_sec``: drop what fell out of each window."""
        secs, vals, dropped, cuts = self.secs, self.vals, self.dropped, self.cuts
        for i, width in enumerate(self.widths):
            cut = now_sec - width
            old = cuts[i]
            if cut <= old:
                continue
            lo = bisect.bisect_right(secs, old)
            hi = bisect.bisect_right(secs, cut)
            if hi > lo:
                dropped[i] += sum(vals[lo:hi])
            cuts[i] = cut
        # seconds outside the widest window are no longer needed
        drop = bisect.bisect_right(secs, cuts[-1])
        if drop:  # behind every cut: out of the total and out of every window's dropped part alike
            gone = sum(vals[:drop])
            self.total -= gone
            for i in range(len(dropped)):
                dropped[i] -= gone
            del secs[:drop]
            del vals[:drop]

    def values(self, now_sec: int) -> list[int]:
        self.advance(now_sec)
        total = self.total
        return [total - d for d in self.dropped]
