"""Adapters: a vendor's JSON document to event objects (plain dicts, validated afterwards).

- ``events``: the document is an array of events, or an object holding one
  under ``events`` / ``data`` / ``items``.
- ``southbound_snapshot``: cumulative per-stock southbound buy/sell turnover
  for the day so far; the adapter keeps the last cumulative per stock and
  channel and emits the difference as an incremental ``southbound`` tick with
  a synthesized ``seq`` (1, 2, ... per stock, channel and day). With a
  ``state_file`` the last cumulatives survive a restart, so a restarted
  poller does not count the day's flow twice.

The tracker is pure (no I/O besides the optional state file): it is unit
tested without a server.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from monitor.calendars import EXCHANGE_TZ
from monitor.events import Rejected, from_micro, parse_ts, to_micro

log = logging.getLogger("fundflow.ingest.adapters")

LIST_FIELDS = ("events", "data", "items", "stocks", "rows")


def events_from_document(doc: Any) -> list[Any]:
    """The ``events`` adapter: a list of values (each validated afterwards)."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for key in LIST_FIELDS:
            value = doc.get(key)
            if isinstance(value, list):
                return value
        return [doc]
    return [doc]


def normalize_hk_symbol(value: Any) -> Any:
    """``9988`` / ``"9988"`` / ``"09988"`` / ``"09988.HK"`` -> ``"09988.HK"``; anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str):
        text = value.strip().upper()
        if text.endswith(".HK"):
            text = text[:-3]
        if text.isdigit() and len(text) <= 5:
            return text.zfill(5) + ".HK"
    return value


class SnapshotTracker:
    """Cumulative per-stock snapshots to incremental ticks."""

    def __init__(self, *, rows_field: str = "stocks", symbol_field: str = "symbol", buy_field: str = "buy_hkd",
                 sell_field: str = "sell_hkd", channel_field: str = "channel", ts_field: str = "ts",
                 date_field: str = "date", default_channel: str = "", state_file: str = "") -> None:
        self.rows_field = rows_field
        self.symbol_field = symbol_field
        self.buy_field = buy_field
        self.sell_field = sell_field
        self.channel_field = channel_field
        self.ts_field = ts_field
        self.date_field = date_field
        self.default_channel = default_channel
        self.state_file = state_file
        # (symbol, channel) -> [date iso, cum buy micros, cum sell micros, seq]
        self.state: dict[tuple[str, str], list[Any]] = {}
        if state_file:
            self._load()

    # -- state ----------------------------------------------------------------------
    def _load(self) -> None:
        path = Path(self.state_file)
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            self.state = {tuple(k.split("|", 1)): list(v) for k, v in data.items()}
        except (OSError, ValueError) as exc:
            log.error("could not read snapshot state %s (%s); starting without it", path, exc)

    def save(self) -> None:
        """Write the last cumulatives (atomically) when a state file is configured."""
        if not self.state_file:
            return
        path = Path(self.state_file)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({f"{s}|{c}": v for (s, c), v in self.state.items()}))
        os.replace(tmp, path)

    # -- conversion -----------------------------------------------------------------
    def rows(self, doc: Any) -> tuple[list[Any], dict[str, Any]]:
        if isinstance(doc, list):
            return doc, {}
        if isinstance(doc, dict):
            rows = doc.get(self.rows_field)
            if rows is None:
                for key in LIST_FIELDS:
                    if isinstance(doc.get(key), list):
                        rows = doc[key]
                        break
            if isinstance(rows, list):
                return rows, doc
        raise Rejected("bad_json", f"snapshot has no list of rows under {self.rows_field!r}")

    def ticks(self, doc: Any, now_ms: int) -> tuple[list[dict[str, Any]], list[tuple[Any, Rejected]]]:
        """(ticks to publish, rejected rows). Call :meth:`save` once the ticks are handed on."""
        rows, top = self.rows(doc)
        out: list[dict[str, Any]] = []
        bad: list[tuple[Any, Rejected]] = []
        for row in rows:
            try:
                tick = self._row(row, top, now_ms)
            except Rejected as exc:
                bad.append((row, exc))
                continue
            except (TypeError, ValueError) as exc:
                bad.append((row, Rejected("wrong_type", str(exc)[:120])))
                continue
            if tick is not None:
                out.append(tick)
        return out, bad

    def _row(self, row: Any, top: dict[str, Any], now_ms: int) -> dict[str, Any] | None:
        if not isinstance(row, dict):
            raise Rejected("bad_json", f"a snapshot row must be an object, got {type(row).__name__}")
        if self.symbol_field not in row:
            raise Rejected("missing_field", f"missing field {self.symbol_field!r}")
        symbol = normalize_hk_symbol(row[self.symbol_field])
        channel = row.get(self.channel_field, top.get(self.channel_field, self.default_channel))
        if channel not in ("SH", "SZ"):
            raise Rejected("bad_value", f"channel must be 'SH' or 'SZ', got {str(channel)[:10]!r}")
        raw_ts = row.get(self.ts_field, top.get(self.ts_field))
        ts = parse_ts(raw_ts) if raw_ts is not None else now_ms
        raw_date = row.get(self.date_field, top.get(self.date_field))
        day = raw_date if isinstance(raw_date, str) else _exchange_date(ts)
        for f in (self.buy_field, self.sell_field):
            if f not in row:
                raise Rejected("missing_field", f"missing field {f!r}")
        buy = to_micro(row[self.buy_field], self.buy_field)
        sell = to_micro(row[self.sell_field], self.sell_field)
        key = (str(symbol), channel)
        prev = self.state.get(key)
        if prev is None or prev[0] != day:
            prev = [day, 0, 0, 0]
        d_buy, d_sell = buy - prev[1], sell - prev[2]
        if d_buy < 0 or d_sell < 0:
            # a vendor correction: take the new figures as the baseline, emit nothing negative
            log.warning("snapshot for %s %s went down (buy %s -> %s, sell %s -> %s); rebasing",
                        symbol, channel, prev[1], buy, prev[2], sell)
            self.state[key] = [day, buy, sell, prev[3]]
            return None
        if d_buy == 0 and d_sell == 0:
            self.state[key] = [day, buy, sell, prev[3]]
            return None
        seq = prev[3] + 1
        self.state[key] = [day, buy, sell, seq]
        return {"kind": "southbound", "symbol": symbol, "ts": ts, "channel": channel,
                "buy_hkd": from_micro(d_buy), "sell_hkd": from_micro(d_sell), "seq": seq}


def _exchange_date(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, EXCHANGE_TZ).date().isoformat()


def dedupe_key(ev: Any) -> Any:
    """Identity of an event for dropping repeats across polls (the consumer's own duplicate rules)."""
    kind = ev.kind
    if kind == "trade":
        return ("t", ev.symbol, ev.trade_id)
    if kind == "southbound":
        return ("s", ev.symbol, ev.channel, ev.seq, ev.ts_ms // 86_400_000)
    if kind == "units":
        return ("u", ev.symbol, ev.date, ev.shares, ev.nav)
    if kind == "iopv":
        return ("i", ev.symbol, ev.ts_ms, ev.iopv)
    if kind == "southbound_quota":
        return ("q", ev.channel, ev.ts_ms, ev.quota, ev.balance)
    if kind == "bar":
        return ("b", ev.symbol, ev.date, ev.open, ev.high, ev.low, ev.close, ev.volume, ev.amount)
    return ("d", ev.symbol, ev.date, ev.buy, ev.sell)


def chunks(values: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for v in values:
        batch.append(v)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
