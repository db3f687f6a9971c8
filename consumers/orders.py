"""Order-size classes: a trade is classed by its aggressor order's amount so far today.

Tick-by-tick trade data carries both sides' order numbers. The aggressor (the buy order of a
buyer-initiated trade, the sell order of a seller-initiated one) is the order that took
liquidity; its size says who traded ("main force" = large + super-large orders). A trade is
classed by its aggressor order's cumulative amount today *including this trade*, in the order
the consumer applies trades, so the first fills of a large order stay in the smaller classes
they had when applied. Without an aggressor id a trade is classed by its own amount.

The per-order totals are the only per-order state, held while the day takes trades: one
64-bit key and one 64-bit total per order, in sorted arrays with a small dict in front of
them (about 16 bytes an order, against ~100 for a dict of ints). Totals are capped at the top
bound: past it an order's class can no longer change. Pure: no I/O.
"""

from __future__ import annotations

import base64
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Sequence
from itertools import accumulate, chain
from typing import Any

from consumers.dedupe import stable_hash
from monitor.events import to_micro

CLASSES = ("small", "medium", "large", "super_large")
MAIN = (2, 3)  # large + super_large: the "main force"
DEFAULT_BOUNDS_CNY = (50_000, 200_000, 1_000_000)
_MAX_DIGITS = 18  # a decimal order number below 10**18 is its own key
_MERGE_MIN = 64  # the dict in front of the arrays is merged into them past this many orders ...
_U64 = (1 << 64) - 1
_MERGE_SHARE = 32  # ... or past 1/32 of the orders held, whichever is larger (amortized O(log n) a merge)


class OrderClasses:
    """The class bounds, in micros of the trading currency: class i holds amounts in [bound[i-1], bound[i])."""

    __slots__ = ("b0", "b1", "b2")

    def __init__(self, bounds_micro: Sequence[int]) -> None:
        if len(bounds_micro) != 3 or not 0 < bounds_micro[0] < bounds_micro[1] < bounds_micro[2]:
            raise ValueError(f"order class bounds must be three increasing amounts > 0, got {list(bounds_micro)}")
        self.b0, self.b1, self.b2 = bounds_micro

    @classmethod
    def of_cny(cls, bounds: Sequence[float]) -> OrderClasses:
        """Bounds given in CNY (the config's unit), to micros."""
        return cls([to_micro(b, "order_class_bounds") for b in bounds])

    @property
    def cap(self) -> int:
        """Totals at or past the top bound are all super_large: held capped there."""
        return self.b2

    def of(self, amount: int) -> int:
        """The class index (0 small .. 3 super_large) of a cumulative amount."""
        if amount < self.b1:
            return 0 if amount < self.b0 else 1
        return 2 if amount < self.b2 else 3


DEFAULT_CLASSES = OrderClasses([b * 1_000_000 for b in DEFAULT_BOUNDS_CNY])


def order_key(order_id: str) -> int:
    """A 64-bit key per order id: a plain decimal number is itself (>= 0), any other id a stable hash (< 0)."""
    if order_id.isdigit() and len(order_id) <= _MAX_DIGITS and (order_id[0] != "0" or len(order_id) == 1):
        return int(order_id)
    h = stable_hash(order_id)
    return h if h < 0 else ~h


class OrderTotals:
    """Cumulative aggressor amount per order of one symbol-day (capped at the top class bound)."""

    __slots__ = ("keys", "totals", "recent", "frozen")

    def __init__(self) -> None:
        self.keys = array("q")  # sorted
        self.totals = array("q")
        self.recent: dict[int, int] = {}  # orders not merged into the arrays yet
        self.frozen: bytes | None = None  # the arrays compressed, while the day is closed

    def add(self, key: int, amount: int, cap: int) -> int:
        """Add ``amount`` to order ``key``; returns its total including it (capped at ``cap``)."""
        if self.frozen is not None:
            self.thaw()  # a late trade of a closed day: rare
        recent = self.recent
        total = recent.get(key)
        if total is not None:
            total += amount
            if total > cap:
                total = cap
            recent[key] = total
            return total
        keys = self.keys
        i = bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            total = self.totals[i] + amount
            if total > cap:
                total = cap
            self.totals[i] = total
            return total
        total = amount if amount < cap else cap
        recent[key] = total
        if len(recent) >= _MERGE_MIN and len(recent) * _MERGE_SHARE >= len(keys):
            self.pack()
        return total

    def pack(self) -> None:
        """Merge the dict into the sorted arrays."""
        keys, totals = self.keys, self.totals
        items = sorted(self.recent.items())
        self.recent = {}
        if not items:
            return
        if not keys or items[0][0] > keys[-1]:  # the usual case: exchanges number orders in time
            keys.extend([k for k, _ in items])
            totals.extend([t for _, t in items])
            return
        new_keys, new_totals = array("q"), array("q")
        start = 0
        for key, total in items:
            i = bisect_left(keys, key, start)
            new_keys += keys[start:i]
            new_totals += totals[start:i]
            new_keys.append(key)
            new_totals.append(total)
            start = i
        new_keys += keys[start:]
        new_totals += totals[start:]
        self.keys, self.totals = new_keys, new_totals

    def freeze(self) -> None:
        """The day closed: hold the totals compressed (key deltas and totals, about 7 bytes an order instead
        of 16) until a late trade needs them."""
        if self.frozen is None:
            self.frozen = _compress(self._packed())
            self.keys, self.totals = array("q"), array("q")

    def thaw(self) -> None:
        if self.frozen is not None:
            self.keys, self.totals = _decompress(self.frozen)
            self.frozen = None

    def _packed(self) -> tuple[array, array]:
        self.pack()
        return (self.keys, self.totals) if self.frozen is None else _decompress(self.frozen)

    def __len__(self) -> int:
        return len(self._packed()[0]) + len(self.recent)

    @property
    def nbytes(self) -> int:
        """Memory held: the arrays (or their compressed form), and ~100 bytes a dict entry."""
        if self.frozen is not None:
            return len(self.frozen)
        return 16 * len(self.keys) + 100 * len(self.recent)

    def get(self, key: int) -> int | None:
        self.thaw()
        total = self.recent.get(key)
        if total is not None:
            return total
        i = bisect_left(self.keys, key)
        return self.totals[i] if i < len(self.keys) and self.keys[i] == key else None

    def to_state(self) -> dict[str, Any]:
        if self.frozen is not None:
            return {"z": base64.b64encode(self.frozen).decode()}
        self.pack()
        return {"keys": base64.b64encode(self.keys.tobytes()).decode(),
                "totals": base64.b64encode(self.totals.tobytes()).decode()}

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> OrderTotals:
        out = cls()
        if "z" in data:
            out.frozen = base64.b64decode(data["z"])
            return out
        out.keys.frombytes(base64.b64decode(data["keys"]))
        out.totals.frombytes(base64.b64decode(data["totals"]))
        return out


def _compress(arrays: tuple[array, array]) -> bytes:
    keys, totals = arrays
    # gaps between sorted keys, modulo 2**64: small (mostly zero bytes) for numbered orders
    deltas = array("Q", ((b - a) & _U64 for a, b in zip(chain((0,), keys), keys, strict=False)))
    return zlib.compress(len(keys).to_bytes(8, "little") + deltas.tobytes() + totals.tobytes(), 1)


def _decompress(data: bytes) -> tuple[array, array]:
    raw = zlib.decompress(data)
    n = int.from_bytes(raw[:8], "little")
    deltas, totals = array("Q"), array("q")
    deltas.frombytes(raw[8:8 + 8 * n])
    totals.frombytes(raw[8 + 8 * n:])
    keys = array("q")
    for k in accumulate(deltas, lambda a, b: (a + b) & _U64):
        keys.append(k - (1 << 64) if k >> 63 else k)
    return keys, totals
