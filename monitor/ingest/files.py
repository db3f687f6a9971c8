"""NDJSON and CSV tapes: one event per line (NDJSON, with ``kind``) or one kind per CSV file."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

INT_FIELDS = {"volume", "shares_outstanding", "seq"}
NUMBER_FIELDS = {"price", "amount", "nav", "buy_hkd", "sell_hkd"} | INT_FIELDS


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # left as a string: validation rejects it with wrong_type


def csv_row(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row to an event object: numeric columns parsed, empty cells dropped."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None:
            continue
        key = key.strip()
        value = value.strip()
        if value == "":
            continue
        if key in NUMBER_FIELDS or (key == "ts" and value.lstrip("-").isdigit()):
            out[key] = _number(value)
        else:
            out[key] = value
    return out


def read_tape(path: str | Path) -> Iterator[tuple[Any, bytes]]:
    """(decoded object or None, raw line) per record; undecodable lines come as (None, raw)."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        # utf-8-sig: Excel starts its UTF-8 exports with a byte-order mark, which would otherwise
        # stick to the first column's name ("\ufeffsymbol") and lose that column from every row
        with open(path, newline="", encoding="utf-8-sig", errors="replace") as fh:
            for row in csv.DictReader(fh):
                obj = csv_row(row)
                yield obj, orjson.dumps(obj)
        return
    with open(path, "rb") as fh:
        if fh.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:  # the same mark on an NDJSON tape
            fh.seek(0)
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line), line
            except orjson.JSONDecodeError:
                yield None, line


def count_records(path: str | Path) -> int:
    """Lines in a tape (for a progress bar); cheap compared to parsing."""
    with open(path, "rb") as fh:
        n = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    return max(0, n - 1) if Path(path).suffix.lower() == ".csv" else n


def parse_ndjson_body(body: bytes) -> list[Any]:
    """An HTTP body that is a JSON array or NDJSON into a list of values (raises on garbage)."""
    text = body.strip()
    if text.startswith(b"["):
        value = orjson.loads(text)
        return list(value)
    return [orjson.loads(line) for line in io.BytesIO(text).read().splitlines() if line.strip()]
