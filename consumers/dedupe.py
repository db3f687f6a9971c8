"""Dedupe keys of a symbol-day in a few bytes per event.

A day's trade ids (or southbound channel+seq pairs) must stay known for as long
as the day accepts events, so that a re-sent event is still a duplicate and the
final state is a function of the set of events. A market day brings millions of
trades: a set of strings would cost ~115 bytes each, so keys are kept compactly:

* Ids that end in a run of ASCII digits (exchange trade numbers, ``SH-0001234``,
  plain integers) are split into (text before the digits, zero-padding width) and
  an integer, and the integers are held as sorted disjoint ranges. Ids that come
  in sequence cost nothing per trade; a gap costs 16 bytes.
* Other ids are held as stable 64-bit BLAKE2b hashes in a sorted array (8 bytes
  each), with a small set of recent ones merged in batches. A collision inside
  one symbol-day (~n²/2⁶⁵, below 1e-9 for 100,000 trades) would make a distinct
  trade look like a duplicate; it never makes a duplicate count twice.

The split is injective: a canonical number (no leading zero) keeps width 0, a
zero-padded one keeps its width, so ``X-0123`` and ``X-123`` stay distinct.
Everything has a plain JSON state, so keys survive a restart in a checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
from array import array
from bisect import bisect_right
from itertools import chain
from typing import Any

_DIGITS = "0123456789"
_MAX_DIGITS = 18  # below 2**63: fits an array('q')
_MERGE_AT = 1024  # recent hashes held in a set before they are merged into the sorted array


class IntRanges:
    """A set of non-negative integers as sorted, disjoint, non-adjacent half-open ranges."""

    __slots__ = ("starts", "ends")

    def __init__(self) -> None:
        self.starts = array("q")
        self.ends = array("q")

    def add(self, n: int) -> bool:
        """Add ``n``; False when it was already in the set."""
        ends = self.ends
        if ends:
            last = ends[-1]
            if n == last:  # the next one in sequence: the usual case
                ends[-1] = n + 1
                return True
            if n > last:
                self.starts.append(n)
                ends.append(n + 1)
                return True
        else:
            self.starts.append(n)
            ends.append(n + 1)
            return True
        starts = self.starts
        i = bisect_right(starts, n) - 1  # the range starting at or before n
        if i >= 0 and n < ends[i]:
            return False
        left = i >= 0 and ends[i] == n
        right = i + 1 < len(starts) and starts[i + 1] == n + 1
        if left and right:
            ends[i] = ends[i + 1]
            del starts[i + 1]
            del ends[i + 1]
        elif left:
            ends[i] = n + 1
        elif right:
            starts[i + 1] = n
        else:
            starts.insert(i + 1, n)
            ends.insert(i + 1, n + 1)
        return True

    def __contains__(self, n: int) -> bool:
        i = bisect_right(self.starts, n) - 1
        return i >= 0 and n < self.ends[i]

    def __len__(self) -> int:
        return sum(self.ends) - sum(self.starts)

    @property
    def nbytes(self) -> int:
        return (len(self.starts) + len(self.ends)) * 8

    def to_state(self) -> list[int]:
        return list(chain.from_iterable(zip(self.starts, self.ends, strict=True)))

    @classmethod
    def from_state(cls, flat: list[int]) -> IntRanges:
        r = cls()
        r.starts = array("q", flat[0::2])
        r.ends = array("q", flat[1::2])
        return r


def stable_hash(key: str) -> int:
    """A 64-bit hash that is the same in every process (``hash()`` of a str is salted per process)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)


class TradeIds:
    """Membership of one symbol-day's trade ids (see the module docstring for the layout)."""

    __slots__ = ("numbered", "hashes", "recent", "_head", "_width", "_ranges")

    def __init__(self) -> None:
        self.numbered: dict[tuple[str, int], IntRanges] = {}  # (text before the digits, pad width) -> numbers
        self.hashes = array("q")  # sorted stable hashes of the other ids
        self.recent: set[int] = set()  # hashes not merged into the array yet
        # the entry of ``numbered`` used last: a feed's ids of one day share their text, so the usual
        # id is one string comparison away from its ranges (no key tuple, no hash of a new string)
        self._head = ""
        self._width = -1
        self._ranges: IntRanges | None = None

    def add(self, tid: str) -> bool:
        """Remember ``tid``; False when it was already seen (a duplicate)."""
        head = tid.rstrip(_DIGITS)
        split = len(head)
        digits = len(tid) - split
        if 0 < digits <= _MAX_DIGITS:
            width = digits if tid[split] == "0" else 0
            ranges = self._ranges
            if ranges is None or width != self._width or head != self._head:
                key = (head, width)
                ranges = self.numbered.get(key)
                if ranges is None:
                    ranges = self.numbered[key] = IntRanges()
                self._head, self._width, self._ranges = head, width, ranges
            return ranges.add(int(tid[split:]))
        return self._add_hash(stable_hash(tid))

    def _add_hash(self, h: int) -> bool:
        recent = self.recent
        if h in recent:
            return False
        hashes = self.hashes
        i = bisect_right(hashes, h)
        if i and hashes[i - 1] == h:
            return False
        recent.add(h)
        if len(recent) >= _MERGE_AT:
            self._merge()
        return True

    def _merge(self) -> None:
        if self.recent:
            self.hashes = array("q", sorted(chain(self.hashes, self.recent)))
            self.recent = set()

    def __len__(self) -> int:
        return sum(len(r) for r in self.numbered.values()) + len(self.hashes) + len(self.recent)

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys themselves (containers' fixed overhead left out)."""
        return sum(r.nbytes for r in self.numbered.values()) + 8 * (len(self.hashes) + 2 * len(self.recent))

    def to_state(self) -> dict[str, Any]:
        self._merge()
        return {"numbered": [[head, width, r.to_state()] for (head, width), r in sorted(self.numbered.items())],
                "hashes": base64.b64encode(self.hashes.tobytes()).decode()}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> TradeIds:
        ids = cls()
        ids.numbered = {(head, width): IntRanges.from_state(flat) for head, width, flat in data["numbered"]}
        ids.hashes = array("q")
        ids.hashes.frombytes(base64.b64decode(data["hashes"]))
        return ids


class SeqSets:
    """Southbound tick seqs of one stock-day, per channel."""

    __slots__ = ("by_channel",)

    def __init__(self) -> None:
        self.by_channel: dict[str, IntRanges] = {}

    def add(self, channel: str, seq: int) -> bool:
        r = self.by_channel.get(channel)
        if r is None:
            r = self.by_channel[channel] = IntRanges()
        return r.add(seq)

    def __contains__(self, key: tuple[str, int]) -> bool:
        r = self.by_channel.get(key[0])
        return r is not None and key[1] in r

    def __len__(self) -> int:
        return sum(len(r) for r in self.by_channel.values())

    @property
    def nbytes(self) -> int:
        return sum(r.nbytes for r in self.by_channel.values())

    def to_state(self) -> dict[str, list[int]]:
        return {ch: r.to_state() for ch, r in sorted(self.by_channel.items())}

    @classmethod
    def from_state(cls, data: dict[str, list[int]]) -> SeqSets:
        s = cls()
        s.by_channel = {ch: IntRanges.from_state(flat) for ch, flat in data.items()}
        return s
