"""Sectors: the flows of a sector's ETFs and HK stocks summed, per trading-day window.

A sectors file maps each symbol (a mainland ETF ``NNNNNN.SH/.SZ`` or an HK stock
``NNNNN.HK``) to one sector. Per sector and window (1d/5d/20d) a row carries the ETFs'
active net inflow and main net inflow (micro-CNY) and the stocks' southbound net buy
(micro-HKD), kept apart because they are different currencies and different flows.
Pure: no I/O (the caller reads the CSV file and passes its text).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass

from consumers import views
from consumers.engine import Engine
from monitor.events import ETF_SYMBOL, HK_SYMBOL

WINDOWS = tuple(name for name, _ in views.MULTI_DAY)  # 1d, 5d, 20d

Sectors = dict[str, str]  # symbol -> sector


class SectorsError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class SectorRow:
    """One sector over one window (money: integer micros)."""

    sector: str
    symbols: int  # the sector's symbols with data: an ETF with trades or a stock with southbound data
    etf_net_inflow: int  # micro-CNY, sum of the ETFs' active net inflow
    etf_main_net_inflow: int  # micro-CNY, sum of the ETFs' main (large + super-large order) net inflow
    southbound_net_buy: int  # micro-HKD, sum of the stocks' southbound net buy
    top_symbol: str | None  # see SectorTotals.rows; None when no symbol of the sector has data


# -- the sectors file --------------------------------------------------------------------------
def from_csv(text: str) -> Sectors:
    """CSV with a header ``symbol,sector``, one row per symbol; returns symbol -> sector.

    A symbol is in exactly one sector: listed again with the same sector it is accepted (a
    repeated row), with another sector the file is refused, since its flows would otherwise
    count twice or land in whichever row came last. Errors name the line (the header is line 1).
    """
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))  # a spreadsheet's byte-order mark
    fields = {(f or "").strip().lower() for f in reader.fieldnames or ()}
    if not {"symbol", "sector"} <= fields:
        raise SectorsError("line 1: sectors CSV needs the columns symbol, sector")
    out: Sectors = {}
    first_line: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str | None)}
        symbol, sector = cells.get("symbol", "").upper(), cells.get("sector", "")
        if not symbol:
            raise SectorsError(f"line {line}: symbol is empty")
        if not (ETF_SYMBOL.fullmatch(symbol) or HK_SYMBOL.fullmatch(symbol)):
            raise SectorsError(f"line {line}: symbol {symbol[:20]!r} is neither an ETF (NNNNNN.SH/.SZ) "
                               "nor an HK stock (NNNNN.HK)")
        if not sector:
            raise SectorsError(f"line {line}: sector is empty for {symbol}")
        known = out.get(symbol)
        if known is not None and known != sector:
            raise SectorsError(f"line {line}: {symbol} is in sector {known!r} already (line {first_line[symbol]}), "
                               f"not also in {sector[:40]!r}: a symbol belongs to one sector")
        if known is None:
            out[symbol] = sector
            first_line[symbol] = line
    return out


# -- the rows ----------------------------------------------------------------------------------
class _Sector:
    __slots__ = ("symbols", "etf_net", "etf_main", "sb_net", "top_etf", "top_stock")

    def __init__(self, n_windows: int) -> None:
        self.symbols = 0
        self.etf_net = [0] * n_windows
        self.etf_main = [0] * n_windows
        self.sb_net = [0] * n_windows
        # per window: (flow, symbol) of the largest so far
        self.top_etf: list[tuple[int, str] | None] = [None] * n_windows
        self.top_stock: list[tuple[int, str] | None] = [None] * n_windows


def _larger(best: tuple[int, str] | None, flow: int, symbol: str) -> tuple[int, str]:
    """The larger flow; on a tie the symbol first in sort order, so the result does not depend on input order."""
    if best is None or flow > best[0] or (flow == best[0] and symbol < best[1]):
        return flow, symbol
    return best


class SectorTotals:
    """Sector sums built one symbol at a time: each symbol's views are read once for every window.

    ``add`` a symbol at a time (a /metrics scrape pauses between symbols), then read ``rows``.
    """

    def __init__(self, engine: Engine, windows: tuple[str, ...] = WINDOWS) -> None:
        for w in windows:
            if w not in WINDOWS:
                raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {w[:20]!r}")
        self.engine = engine
        self.windows = windows
        self._sectors: dict[str, _Sector] = {}
        for sector in engine.sectors.values():
            if sector not in self._sectors:
                self._sectors[sector] = _Sector(len(windows))

    def add(self, symbol: str, etf_views: Mapping[str, views.EtfView] | None = None,
            southbound_views: Mapping[str, views.SouthboundView] | None = None) -> None:
        """Count one symbol of ``engine.sectors`` (a symbol without a sector is ignored).

        ``etf_views`` / ``southbound_views``: views read already at this stream clock (a /metrics scrape
        reads every symbol's for its own families), taken instead of reading them again.
        """
        engine = self.engine
        sector = engine.sectors.get(symbol)
        if sector is None:
            return
        acc = self._sectors[sector]
        seen = False
        # ETF flows are CNY: a mainland ETF's only (an HK-listed ETF trades in HKD)
        if symbol in engine.etf and ETF_SYMBOL.fullmatch(symbol):
            v = etf_views.get(symbol) if etf_views is not None else None
            if v is None:
                v = views.etf(engine, symbol)
            if v is not None:
                seen = True
                for i, w in enumerate(self.windows):
                    net = v.net_inflow.get(w) or 0
                    acc.etf_net[i] += net
                    acc.etf_main[i] += v.main_net_inflow.get(w) or 0
                    acc.top_etf[i] = _larger(acc.top_etf[i], net, symbol)
        if symbol in engine.sb:
            s = southbound_views.get(symbol) if southbound_views is not None else None
            if s is None:
                s = views.southbound(engine, symbol)
            if s is not None:
                seen = True
                for i, w in enumerate(self.windows):
                    net = s.net_buy.get(w) or 0
                    acc.sb_net[i] += net
                    acc.top_stock[i] = _larger(acc.top_stock[i], net, symbol)
        if seen:
            acc.symbols += 1

    def add_all(self) -> SectorTotals:
        for symbol in self.engine.sectors:
            self.add(symbol)
        return self

    def rows(self, window: str) -> list[SectorRow]:
        """Every sector of the file, largest ETF net inflow first, then largest southbound net buy, then by name.

        The top symbol is the ETF with the largest active net inflow when the sector has an ETF with
        data, else the stock with the largest southbound net buy: flows in CNY and HKD (ETF inflow and
        southbound buying) are not compared with each other. Ties go to the symbol first in sort order.
        A sector none of whose symbols has data is listed with zeros, 0 symbols and no top symbol.
        """
        if window not in self.windows:
            raise ValueError(f"window must be one of {', '.join(self.windows)}, not {window[:20]!r}")
        i = self.windows.index(window)
        out = []
        for name, acc in self._sectors.items():
            top = acc.top_etf[i] or acc.top_stock[i]
            out.append(SectorRow(name, acc.symbols, acc.etf_net[i], acc.etf_main[i], acc.sb_net[i],
                                 top[1] if top is not None else None))
        out.sort(key=lambda r: (-r.etf_net_inflow, -r.southbound_net_buy, r.sector))
        return out


def sector_rows(engine: Engine, window: str) -> list[SectorRow]:
    """The sectors of ``engine.sectors`` over ``window`` (1d, 5d or 20d; another raises ValueError).

    Sums per sector: the ETFs' active net inflow and main net inflow (a window without a value
    counts 0), the HK stocks' southbound net buy. Symbols with no sector are not listed anywhere.
    Sorting and the top symbol: see :meth:`SectorTotals.rows`.
    """
    return SectorTotals(engine, (window,)).add_all().rows(window)


def sector_table(engine: Engine) -> dict[str, list[SectorRow]]:
    """``sector_rows`` of every window (1d, 5d, 20d), each symbol's views read once."""
    totals = SectorTotals(engine).add_all()
    return {w: totals.rows(w) for w in WINDOWS}
