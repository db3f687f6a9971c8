"""Intraday sliding sums at second resolution, split into columns.

Rule: an event at time t is in window W iff floor(t) > floor(as_of) - W.
Each window keeps a cut (the newest second already excluded) and the sum of
what is held but behind its cut; a window's sum is the running total minus
that. Advancing the clock adds only the seconds that crossed a cut, so a
query costs O(log n + expired), and an add inside every window (the usual
live trade) is one addition whatever the number of windows.

Every value also belongs to a column (the order-size class of a trade): the
windows are kept per column and in total, and the columns always sum to the
total exactly. Rows are (second, column, value), merged while a second and
column repeat: a market ETF trades every few seconds, so a row per trade is
about what a row per second was.
"""

from __future__ import annotations

import bisect
from array import array

_NEVER = -(1 << 62)


class SlidingSums:
    """Running sums of integer values over several trailing windows (seconds), per column and in total."""

    __slots__ = ("widths", "columns", "secs", "cols", "vals", "total", "col_total", "dropped", "col_dropped", "cuts")

    def __init__(self, widths: tuple[int, ...], columns: int = 1) -> None:
        if list(widths) != sorted(widths):
            raise ValueError("widths must be ascending: the last one bounds what is kept")
        self.widths = widths
        self.columns = columns
        # rows within the widest window, ascending by second: three compact arrays (17 bytes a row)
        self.secs = array("q")
        self.cols = array("b")
        self.vals = array("q")
        self.total = 0  # every value added within the widest window (exact integers)
        self.col_total = [0] * columns
        self.dropped = [0] * len(widths)  # per window: the part of total behind its cut
        self.col_dropped = [[0] * columns for _ in widths]
        self.cuts = [_NEVER] * len(widths)

    def add(self, sec: int, value: int, col: int = 0) -> None:
        """Add ``value`` at second ``sec`` to column ``col`` (the clock must already be >= sec)."""
        cuts = self.cuts
        if sec <= cuts[-1]:  # older than the widest window: in no window at all
            return
        secs, cols, vals = self.secs, self.cols, self.vals
        if secs and sec == secs[-1] and col == cols[-1]:
            vals[-1] += value
        elif not secs or sec >= secs[-1]:
            if secs and sec == secs[-1]:  # the same second, another column: an earlier row of it may match
                i = len(secs) - 1
                while i >= 0 and secs[i] == sec:
                    if cols[i] == col:
                        vals[i] += value
                        break
                    i -= 1
                else:
                    self._append(sec, col, value)
            else:
                self._append(sec, col, value)
        else:
            i = bisect.bisect_left(secs, sec)
            j = i
            while j < len(secs) and secs[j] == sec:
                if cols[j] == col:
                    vals[j] += value
                    break
                j += 1
            else:
                secs.insert(i, sec)
                cols.insert(i, col)
                vals.insert(i, value)
        self.total += value
        self.col_total[col] += value
        # cuts only ever move to (clock - width), so they descend as widths ascend: a second newer
        # than the first cut is in every window; else it is behind the cuts of the narrower ones
        if sec <= cuts[0]:
            dropped, col_dropped = self.dropped, self.col_dropped
            for i, cut in enumerate(cuts):
                if sec <= cut:
                    dropped[i] += value
                    col_dropped[i][col] += value

    def _append(self, sec: int, col: int, value: int) -> None:
        self.secs.append(sec)
        self.cols.append(col)
        self.vals.append(value)

    def _sums(self, lo: int, hi: int) -> list[int]:
        """Per column: the values of rows lo..hi-1."""
        out = [0] * self.columns
        cols, vals = self.cols, self.vals
        if self.columns == 1:
            out[0] = sum(vals[lo:hi])
        else:
            for j in range(lo, hi):
                out[cols[j]] += vals[j]
        return out

    def advance(self, now_sec: int) -> None:
        """Move the clock to ``now_sec``: drop what fell out of each window."""
        secs, dropped, col_dropped, cuts = self.secs, self.dropped, self.col_dropped, self.cuts
        for i, width in enumerate(self.widths):
            cut = now_sec - width
            old = cuts[i]
            if cut <= old:
                continue
            lo = bisect.bisect_right(secs, old)
            hi = bisect.bisect_right(secs, cut)
            if hi > lo:
                part = self._sums(lo, hi)
                dropped[i] += sum(part)
                row = col_dropped[i]
                for c, v in enumerate(part):
                    row[c] += v
            cuts[i] = cut
        # rows outside the widest window are no longer needed
        drop = bisect.bisect_right(secs, cuts[-1])
        if drop:  # behind every cut: out of the totals and out of every window's dropped part alike
            part = self._sums(0, drop)
            gone = sum(part)
            self.total -= gone
            for i in range(len(dropped)):
                dropped[i] -= gone
                row = col_dropped[i]
                for c, v in enumerate(part):
                    row[c] -= v
            for c, v in enumerate(part):
                self.col_total[c] -= v
            del secs[:drop]
            del self.cols[:drop]
            del self.vals[:drop]

    def values(self, now_sec: int) -> list[int]:
        """Per window, the sum over every column."""
        self.advance(now_sec)
        total = self.total
        return [total - d for d in self.dropped]

    def column_values(self, now_sec: int) -> list[list[int]]:
        """Per window, the sum of each column."""
        self.advance(now_sec)
        totals = self.col_total
        return [[t - d for t, d in zip(totals, row, strict=True)] for row in self.col_dropped]
