"""ETF basket look-through: holdings (etf, constituent, weight) and weighted southbound net buys.

Weights are fractions of the basket (0.105), or percents written with a
``%`` sign ("10.5%"); kept as exact Decimals. Pure: no I/O (the caller reads
the CSV file and passes its text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation, localcontext

TOP_N = (4, 10)

Holdings = dict[str, list[tuple[str, Decimal]]]  # etf -> [(constituent, weight)], heaviest first


class HoldingsError(ValueError):
    pass


def parse_weight(value: object) -> Decimal:
    text = str(value).strip()
    pct = text.endswith("%")
    try:
        w = Decimal(text[:-1].strip() if pct else text)
    except InvalidOperation:
        raise HoldingsError(f"weight {text[:20]!r} is not a number") from None
    if pct:
        w = w / 100
    if not w.is_finite() or w < 0 or w > 1:
        raise HoldingsError(f"weight {text[:20]!r} must be between 0 and 1 (or 0% and 100%)")
    return w


def _sorted(rows: Iterable[tuple[str, Decimal]]) -> list[tuple[str, Decimal]]:
    merged: dict[str, Decimal] = {}
    for sym, w in rows:
        merged[sym] = merged.get(sym, Decimal(0)) + w
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


def from_mapping(data: Mapping[str, Mapping[str, object]]) -> Holdings:
    """Config form: {etf: {constituent: weight}}."""
    return {etf.upper(): _sorted((c.upper(), parse_weight(w)) for c, w in rows.items()) for etf, rows in data.items()}


def from_csv(text: str) -> Holdings:
    """CSV with a header ``etf,constituent,weight``; one row per holding."""
    rows: dict[str, list[tuple[str, Decimal]]] = {}
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"etf", "constituent", "weight"} <= {f.strip() for f in reader.fieldnames}:
        raise HoldingsError("holdings CSV needs the columns etf, constituent, weight")
    for i, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("etf") or not row.get("constituent"):
            raise HoldingsError(f"line {i}: etf and constituent are required")
        try:
            w = parse_weight(row.get("weight", ""))
        except HoldingsError as exc:
            raise HoldingsError(f"line {i}: {exc}") from None
        rows.setdefault(row["etf"].upper(), []).append((row["constituent"].upper(), w))
    return {etf: _sorted(r) for etf, r in rows.items()}


def merge(*parts: Holdings) -> Holdings:
    """Later parts replace an ETF's whole holdings list."""
    out: Holdings = {}
    for p in parts:
        out.update(p)
    return out


def top_weight_ratio(holdings: list[tuple[str, Decimal]], n: int) -> Decimal:
    """Combined weight of the ``n`` heaviest holdings (all of them when there are fewer)."""
    return sum((w for _, w in sorted(holdings, key=lambda kv: -kv[1])[:n]), Decimal(0))


def weighted_net(holdings: list[tuple[str, Decimal]], net_of: Callable[[str], int | None]) -> Decimal | None:
    """Sum of weight x net buy (micros) over constituents with southbound data; None when none has any."""
    total, seen = Decimal(0), False
    with localcontext() as ctx:
        ctx.prec = 60  # exact for any weight x micro amount the service can hold
        for sym, w in holdings:
            net = net_of(sym)
            if net is None:
                continue
            seen = True
            total += w * net
    return total if seen else None
