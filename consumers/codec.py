"""The checkpoint codec: the engine's state as records of the compacted state topic, and back.

Contract (what a checkpoint guarantees, and how a reader must treat the records):

* **Records.** Per symbol and day: a *head* (``h``: the ETF day's totals, prices, tick-rule state and
  dedupe keys; units, bar, summary, the southbound day) and, while the day keeps an intraday curve,
  one *chunk* per ``CHUNK_SECONDS`` of the day (``cK``: the curve's rows: second, turnover, order-size
  class, active net). The open day's head also holds the per-order totals that class its trades.
  Per symbol: a *symbol* record (``s``: first day held, folded AUM record). Per partition: a *marker*.
  A southbound channel's quota is held like a symbol's day: a *head* per channel and day under the
  channel's stream key (``quota.SH``; monitor.events.quota_key), in the partition its records arrive on.
  A checkpoint writes only what changed: the heads of modified days and their changed chunks, so on
  a heavy day it writes a few kilobytes per active symbol, not the whole day again.
* **Atomic by generation.** A checkpoint has a generation number, greater than any in the partition.
  Every record carries the generation that wrote it; the records are flushed first, the marker
  (generation, replay positions, clocks) last. A reader takes, per record, the newest version whose
  generation is at most the marker's: a checkpoint cut short by a crash is ignored as a whole.
* **Double-buffered keys.** Consecutive versions of one record alternate between two keys (``…|0``,
  ``…|1``), so compaction can never remove the last complete version while a newer, possibly
  incomplete one exists. Once a checkpoint is complete, the next one deletes the versions it
  superseded. Records of an incomplete checkpoint found at recovery are rewritten (or deleted) by
  the next checkpoint, before its marker.
* **Bounded.** Records of days that leave the engine are deleted (tombstones on both keys), so the
  compacted topic holds the retained state, not history.
* **Namespaced.** Keys start with the consumer group: groups never read or overwrite each other's
  state.

Pure: no I/O. The runner produces what :class:`StateWriter` returns and feeds the records it reads
to :func:`read_state`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from consumers.bars import DayBar, ohlc
from consumers.engine import DayKey, Engine
from consumers.etf import EtfDay, EtfState
from consumers.quota import QuotaRecord, channel_of
from consumers.southbound import SouthboundDay, SouthboundState
from consumers.windows import SlidingSums

HEAD = "h"
SYMBOL_PART = "s"
SYMBOL_DAY = "-"  # the date field of per-symbol records
MARKER = "__checkpoint__"

Produced = tuple[int, bytes, bytes | None]  # partition, key, value (None: delete)


def _chunk_part(chunk: int) -> str:
    return f"c{chunk}"


def record_key(group: str, symbol: str, date: str, part: str, version: int) -> bytes:
    return f"{group}|{symbol}|{date}|{part}|{version % 2}".encode()


def marker_key(group: str, partition: int) -> bytes:
    return f"{group}|{MARKER}|{partition}".encode()


@dataclass
class Marker:
    """What a complete checkpoint of one partition says: resume from these positions."""

    gen: int
    positions: dict[str, int]  # event topic -> next offset to read
    as_of_ms: int | None
    stream_clocks: dict[str, int]  # event topic -> greatest event time applied from it
    gap_streams: list[list[Any]] = field(default_factory=list)  # the partition's seq streams (consumers.gaps)

    def to_json(self) -> bytes:
        return orjson.dumps({"symbol": MARKER, "gen": self.gen, "positions": self.positions,
                             "as_of_ms": self.as_of_ms, "stream_clocks": self.stream_clocks,
                             "gap_streams": self.gap_streams})


@dataclass
class PartitionState:
    """What recovery found in one partition of the state topic."""

    marker: Marker | None = None
    max_gen: int = 0
    # (symbol, date, part) -> (version, doc) of the newest complete version
    records: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    # keys written by a checkpoint that never completed: rewritten or deleted by the next one
    orphans: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)


def read_state(group: str, partition_records: Iterable[tuple[bytes | None, bytes | None]]) -> PartitionState:
    """Choose, per record, the newest complete version among what one state partition holds (in offset order)."""
    prefix = f"{group}|".encode()
    latest: dict[bytes, dict[str, Any] | None] = {}
    marker_doc: dict[str, Any] | None = None
    for key, value in partition_records:
        if key is None or not key.startswith(prefix):
            continue
        if f"|{MARKER}|".encode() in key:
            if value is not None:
                marker_doc = orjson.loads(value)
            continue
        latest[key] = orjson.loads(value) if value is not None else None
    out = PartitionState()
    if marker_doc is not None:
        out.marker = Marker(marker_doc["gen"], marker_doc["positions"], marker_doc.get("as_of_ms"),
                            marker_doc.get("stream_clocks", {}), marker_doc.get("gap_streams", []))
        out.max_gen = out.marker.gen
    complete_gen = out.marker.gen if out.marker is not None else -1
    candidates: dict[tuple[str, str, str], list[tuple[int, int, dict[str, Any]]]] = {}
    for key, doc in latest.items():
        if doc is None:
            continue
        _, symbol, date, part, _parity = key.decode().rsplit("|", 4)
        gen = doc["gen"]
        out.max_gen = max(out.max_gen, gen)
        base = (symbol, date, part)
        if gen > complete_gen:
            out.orphans.setdefault(base, []).append(doc["v"])
        else:
            candidates.setdefault(base, []).append((gen, doc["v"], doc))
    for base, versions in candidates.items():
        _, v, doc = max(versions, key=lambda t: (t[0], t[1]))
        out.records[base] = (v, doc)
    return out


class StateWriter:
    """Turns the engine's modified days into state records, and loads them back into an engine.

    Keeps the version count of every record it wrote or loaded (the key parity of the next write).
    """

    def __init__(self, engine: Engine, group: str) -> None:
        self.engine = engine
        self.group = group
        self.versions: dict[str, dict[str, dict[str, int]]] = {}  # symbol -> date -> part -> versions written
        self.gen: dict[int, int] = {}  # partition -> generation of its last checkpoint
        self.full: set[DayKey] = set()  # days to write whole (every chunk): after a load or a failed write
        # partition -> keys to delete at the next checkpoint: an unfinished checkpoint's orphans, and the
        # versions the last checkpoint superseded
        self.repair: dict[int, list[tuple[str, str, str, int]]] = {}
        self._put_partition: dict[tuple[str, str, str], int] = {}  # the partition of each record of an encode
        self.rewrite: set[str] = set()  # symbols whose symbol record must be written again (an orphan of it)

    # -- writing ------------------------------------------------------------------------
    def next_gen(self, partition: int) -> int:
        return self.gen.get(partition, 0) + 1

    def encode(self, keys: Iterable[DayKey], partition_of: dict[str, int], gen_of: dict[int, int],
               ) -> tuple[list[Produced], dict[tuple[str, str, str], int]]:
        """Records for the given modified days (and their symbols), plus the version each record takes.

        Nothing is changed here: the caller calls :meth:`commit` with the versions once the records
        are durable, or :meth:`failed` if not, so a retry writes the same keys again.
        """
        out: list[Produced] = []
        bumps: dict[tuple[str, str, str], int] = {}
        self._put_partition = {}
        for p, parts in self.repair.items():  # deletes first: a rewrite of the same key comes after
            gen = gen_of.get(p)
            if gen is None:
                continue
            for symbol, date, part, v in parts:
                out.append((p, record_key(self.group, symbol, date, part, v), None))
        symbols: set[str] = {s for s in self.rewrite if s in partition_of and partition_of[s] in gen_of}
        for symbol, day in sorted(keys):
            q = partition_of.get(symbol)
            if q is None or q not in gen_of:
                continue
            symbols.add(symbol)
            out.extend(self._day(symbol, day, q, gen_of[q], bumps))
        for symbol in sorted(symbols):
            p = partition_of[symbol]
            st = self.engine.etf.get(symbol)
            if st is not None:
                doc = {"first_day": st.first_day.isoformat() if st.first_day else None, "aum_folded": st.aum_folded}
                out.append(self._put(symbol, SYMBOL_DAY, SYMBOL_PART, p, gen_of[p], doc, bumps))
        return out, bumps

    def _version(self, symbol: str, date: str, part: str) -> int:
        return self.versions.get(symbol, {}).get(date, {}).get(part, 0)

    def _put(self, symbol: str, date: str, part: str, p: int, gen: int, doc: dict[str, Any] | None,
             bumps: dict[tuple[str, str, str], int]) -> Produced:
        v = self._version(symbol, date, part) + 1
        bumps[(symbol, date, part)] = v
        self._put_partition[(symbol, date, part)] = p
        if doc is None:
            return (p, record_key(self.group, symbol, date, part, v), None)
        doc["symbol"], doc["date"], doc["gen"], doc["v"] = symbol, date, gen, v
        return (p, record_key(self.group, symbol, date, part, v), orjson.dumps(doc))

    def _delete_all(self, symbol: str, date: str, part: str, p: int) -> list[Produced]:
        return [(p, record_key(self.group, symbol, date, part, parity), None) for parity in (0, 1)]

    def _day(self, symbol: str, day: dt.date, p: int, gen: int, bumps: dict[tuple[str, str, str], int],
             ) -> list[Produced]:
        eng = self.engine
        date = day.isoformat()
        out: list[Produced] = []
        written = self.versions.get(symbol, {}).get(date, {})
        st = eng.etf.get(symbol)
        etf_day = st.days.get(day) if st is not None else None
        chunks = set(etf_day.chunks()) if etf_day is not None else set()
        if etf_day is not None:
            dirty = chunks if (symbol, day) in self.full else etf_day.dirty & chunks
            for c in sorted(dirty):
                out.append(self._put(symbol, date, _chunk_part(c), p, gen, etf_day.chunk_state(c), bumps))
        for part in written:  # chunks no longer held (the curve of an old day was dropped)
            if part.startswith("c") and int(part[1:]) not in chunks:
                out.extend(self._delete_all(symbol, date, part, p))
                bumps[(symbol, date, part)] = -1
        head = self._head(symbol, day, st, etf_day)
        if head is None:
            if HEAD in written:
                out.extend(self._delete_all(symbol, date, HEAD, p))
                bumps[(symbol, date, HEAD)] = -1
        else:
            out.append(self._put(symbol, date, HEAD, p, gen, head, bumps))
        return out

    def _head(self, symbol: str, day: dt.date, st: EtfState | None, etf_day: EtfDay | None) -> dict[str, Any] | None:
        eng = self.engine
        doc: dict[str, Any] = {}
        if etf_day is not None:
            doc["etf"] = etf_day.head_state()
        if st is not None:
            if day in st.units:
                doc["units"] = list(st.units[day])
            summary = st.summaries.get(day)
            if summary is not None:
                doc["summary"] = summary.to_state()
            if st.iopv is not None and st.iopv[0] == day:
                doc["iopv"] = list(st.iopv[1:])
        bar = eng.bars.get(symbol, {}).get(day)
        if bar is not None:
            doc["bar"] = bar.to_state()
        sb = eng.sb.get(symbol)
        sb_day = sb.days.get(day) if sb is not None else None
        if sb_day is not None:
            doc["southbound"] = sb_day.to_state()
        channel = channel_of(symbol)
        if channel is not None:
            quota = eng.quota.latest(channel, day)
            if quota is not None:
                doc["quota"] = quota.to_state()  # [ts_ms, quota, balance], micro-CNY
        if not doc:
            return None
        v = eng.view(symbol, day)
        if v is not None:
            doc["ohlc"] = ohlc(v)  # the day as the signals see it (for readers of the topic), micros
        return doc

    def commit(self, bumps: dict[tuple[str, str, str], int], written: Iterable[DayKey], gens: dict[int, int]) -> None:
        """The records of :meth:`encode` are durable and their markers written."""
        for (symbol, date, part), v in bumps.items():
            by_date = self.versions.setdefault(symbol, {}).setdefault(date, {})
            if v < 0:
                by_date.pop(part, None)
                if not by_date:
                    self.versions[symbol].pop(date, None)
            else:
                by_date[part] = v
        eng = self.engine
        for symbol, day in written:
            st = eng.etf.get(symbol)
            etf_day = st.days.get(day) if st is not None else None
            if etf_day is not None:
                etf_day.dirty.clear()
            self.full.discard((symbol, day))
        for p in gens:
            self.repair.pop(p, None)
        # the version each record had before this checkpoint is no longer needed: deleted by the next
        # one (a checkpoint that never completes leaves this one's versions to choose), so the topic
        # holds about one version of each record, not two
        for base, v in bumps.items():
            q = self._put_partition.get(base)
            if v > 1 and q is not None:
                self.repair.setdefault(q, []).append((*base, v - 1))
        self.rewrite = {s for s in self.rewrite if bumps.get((s, SYMBOL_DAY, SYMBOL_PART)) is None}
        self.gen.update(gens)

    def failed(self, keys: Iterable[DayKey]) -> None:
        """The records may or may not have landed: write these days whole next time, to the same keys."""
        self.full.update(keys)
        self.engine.modified.update(keys)

    # -- loading --------------------------------------------------------------------------
    def load(self, partition: int, state: PartitionState) -> list[str]:
        """Put one partition's records into the engine; returns the symbols found."""
        eng = self.engine
        self.gen[partition] = max(self.gen.get(partition, 0), state.max_gen)
        # deletes planned while this process owned the partition before are void: another owner may have
        # written those keys since
        self.repair.pop(partition, None)
        heads: dict[tuple[str, str], dict[str, Any]] = {}
        chunks: dict[tuple[str, str], list[dict[str, Any]]] = {}
        symbols: set[str] = set()
        for (symbol, date, part), (v, doc) in state.records.items():
            self.versions.setdefault(symbol, {}).setdefault(date, {})[part] = v
            symbols.add(symbol)
            if part == HEAD:
                heads[(symbol, date)] = doc
            elif part == SYMBOL_PART:
                st = eng.etf.get(symbol) or eng.etf.setdefault(symbol, EtfState(symbol))
                st.first_day = dt.date.fromisoformat(doc["first_day"]) if doc["first_day"] else None
                st.aum_folded = doc["aum_folded"]
            else:
                chunks.setdefault((symbol, date), []).append(doc)
        for (symbol, date), doc in heads.items():
            self._load_head(symbol, dt.date.fromisoformat(date), doc, chunks.get((symbol, date), []))
        repair = []
        for (symbol, date, part), vs in state.orphans.items():
            symbols.add(symbol)
            have = (symbol, date, part) in state.records
            for v in vs:
                if not have:
                    repair.append((symbol, date, part, v))
            if date == SYMBOL_DAY and have:
                self.rewrite.add(symbol)
            elif have:
                day = dt.date.fromisoformat(date)
                self.full.add((symbol, day))
                eng.modified.add((symbol, day))  # rewritten over the orphan's key at the next checkpoint
        if repair:
            self.repair.setdefault(partition, []).extend(repair)
        self._rebuild_windows(symbols)
        return sorted(symbols)

    def _load_head(self, symbol: str, day: dt.date, doc: dict[str, Any], chunks: list[dict[str, Any]]) -> None:
        eng = self.engine
        if "etf" in doc or "units" in doc or "summary" in doc or "iopv" in doc:
            st = eng.etf.get(symbol)
            if st is None:
                st = eng.etf[symbol] = EtfState(symbol)
            if "etf" in doc:
                st.days[day] = EtfDay.from_state(doc["etf"], chunks)
                if st.first_day is None or day < st.first_day:
                    st.first_day = day
            if "units" in doc:
                shares, nav = doc["units"]
                st.units[day] = (int(shares), int(nav))
                eng.note_date(day)
            if "summary" in doc:
                st.summaries[day] = DayBar.from_state(doc["summary"])
            if "iopv" in doc:
                ts, iopv = doc["iopv"]
                if st.iopv is None or (day, ts) > st.iopv[:2]:
                    st.iopv = (day, int(ts), int(iopv))
        if "bar" in doc:
            eng.bars.setdefault(symbol, {})[day] = DayBar.from_state(doc["bar"])
            eng.note_bar_day(symbol, day)
            eng.note_date(day)
        eng.history_changed(symbol)
        if "southbound" in doc:
            sb = eng.sb.get(symbol)
            if sb is None:
                sb = eng.sb[symbol] = SouthboundState(symbol)
            sb_day = sb.days[day] = SouthboundDay.from_state(doc["southbound"])
            if sb_day.daily is not None:
                eng.note_date(day)
        if "quota" in doc:
            channel = channel_of(symbol)
            if channel is not None:
                eng.quota.put(channel, day, QuotaRecord.from_state(doc["quota"]))

    def _rebuild_windows(self, symbols: Iterable[str]) -> None:
        """The intraday windows from the per-second nets of the days that still hold them."""
        for symbol in symbols:
            st = self.engine.etf.get(symbol)
            if st is None:
                continue
            windows = st.windows = SlidingSums(st.windows.widths, st.windows.columns)
            for day, etf_day in sorted(st.days.items()):
                midnight = _midnight_s(day)
                for sec, cls, net in etf_day.class_net_items():
                    if net:
                        windows.add(midnight + sec, net, cls)

    def apply_marker(self, marker: Marker, streams: Mapping[str, Hashable]) -> None:
        eng = self.engine
        if marker.as_of_ms is not None:
            eng.restore_clock(marker.as_of_ms)
        for topic, clock in marker.stream_clocks.items():
            stream = streams.get(topic)
            if stream is not None:
                eng.stream_clocks[stream] = clock
        eng.gaps.load_streams(marker.gap_streams)

    def forget(self, symbols: Iterable[str]) -> None:
        """Symbols of partitions this process no longer owns."""
        gone = set(symbols)
        for s in gone:
            self.versions.pop(s, None)
        self.full = {k for k in self.full if k[0] not in gone}
        self.rewrite -= gone


def _midnight_s(day: dt.date) -> int:
    """Epoch seconds of the exchange-local midnight that starts ``day``."""
    return (day.toordinal() - dt.date(1970, 1, 1).toordinal()) * 86_400 - 8 * 3600
