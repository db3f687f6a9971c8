"""The public JSON, written from the typed views in one place: every /api/v1 answer and the replay report.

Field names, their order and the float of each exact value are the public contract
(tests/unit/test_documents_golden.py holds them byte for byte); this is the only
place where a view's micros become a float or a field gets its currency suffix.
The HTTP layer (monitor.server) only parses parameters and picks the status code.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from consumers import sectors, views
from consumers.engine import Engine
from consumers.sectors import SectorRow
from consumers.views import (
    BasketView,
    EtfDayRow,
    EtfView,
    IntradayCurve,
    IntradayView,
    QuotaView,
    SignalsView,
    SouthboundDayRow,
    SouthboundView,
    SymbolView,
)
from monitor.alerting import AlertState
from monitor.calendars import iso
from monitor.events import from_micro

Doc = dict[str, Any]


def money(units: int | None) -> float | None:
    """Micros to a float of the currency unit (None stays None)."""
    return None if units is None else from_micro(units)


def exact_money(units: Fraction | Decimal | None) -> float | None:
    """An exact (fractional) number of micros to a float of the currency unit."""
    return None if units is None else float(units / 1_000_000)


def _moneys(values: Mapping[str, int | None]) -> dict[str, float | None]:
    return {k: None if v is None else from_micro(v) for k, v in values.items()}


# -- the parts of a symbol ------------------------------------------------------------------
def etf(v: EtfView) -> Doc:
    ratio = v.turnover_vs_prev_session
    return {
        "net_inflow_cny": _moneys(v.net_inflow),
        "creation_net_inflow_cny": _moneys(v.creation_net_inflow),
        "turnover_cny": money(v.turnover),
        "prev_turnover_cny": money(v.prev_turnover),
        "prev_turnover_same_time_cny": money(v.prev_turnover_same_time),
        "turnover_vs_prev_session_ratio": {"full_day": ratio.full_day, "same_time": ratio.same_time},
        "volume_ratio": v.volume_ratio,
        "last_price_cny": money(v.last_price),
        "price_change_ratio": v.price_change_ratio,
        "aum_cny": money(v.aum),
        "order_net_inflow_cny": {c: _moneys(w) for c, w in v.order_net_inflow.items()},
        "main_net_inflow_cny": _moneys(v.main_net_inflow),
        "main_ratio_1d": v.main_ratio_1d,
        "iopv_cny": money(v.iopv),
        "premium_ratio": v.premium_ratio,
    }


def southbound(v: SouthboundView) -> Doc:
    return {
        "net_buy_hkd": _moneys(v.net_buy),
        "streak_days": v.streak_days,
        "streak_net_buy_hkd": from_micro(v.streak_net_buy),
        "provisional_net_buy_hkd": money(v.provisional_net_buy),
    }


def signals(v: SignalsView) -> Doc:
    """Money fields carry the symbol's currency: ``_hkd`` for HK-listed symbols, ``_cny`` otherwise."""
    m, cur = v.macd, v.currency.lower()
    return {
        f"high_{cur}": money(v.high),
        "new_high": dict(v.new_high),
        f"turnover_avg_{cur}": {k: exact_money(a) for k, a in v.turnover_avg.items()},
        f"aum_{cur}": money(v.aum),
        f"aum_record_{cur}": money(v.aum_record),
        "aum_at_record": v.aum_at_record,
        "macd": {
            "dif": None if m.dif is None else float(m.dif),
            "dea": None if m.dea is None else float(m.dea),
            "histogram": None if m.histogram is None else float(m.histogram),
            "cross": m.cross,
            "closes": m.closes,
        },
    }


def basket(v: BasketView) -> Doc:
    return {
        "southbound_net_buy_hkd": {k: exact_money(n) for k, n in v.southbound_net_buy.items()},
        "top_weight_ratio": {k: float(w) for k, w in v.top_weight_ratio.items()},
        "holdings": [{"symbol": h.symbol, "weight": float(h.weight), "net_buy_hkd": _moneys(h.net_buy),
                      "streak_days": h.streak_days, "streak_net_buy_hkd": money(h.streak_net_buy)}
                     for h in v.holdings],
    }


def symbol(v: SymbolView) -> Doc:
    """The parts a symbol has, in a fixed order: etf, southbound, signals, basket."""
    doc: Doc = {}
    if v.etf is not None:
        doc["etf"] = etf(v.etf)
    if v.southbound is not None:
        doc["southbound"] = southbound(v.southbound)
    if v.signals is not None:
        doc["signals"] = signals(v.signals)
    if v.basket is not None:
        doc["basket"] = basket(v.basket)
    return doc


def southbound_history(rows: list[SouthboundDayRow]) -> list[Doc]:
    return [{"date": r.date.isoformat(), "net_buy_hkd": from_micro(r.net_buy), "source": r.source,
             "closed": r.closed} for r in rows]


def etf_history(rows: list[EtfDayRow]) -> list[Doc]:
    return [{"date": r.date.isoformat(), "turnover_cny": from_micro(r.turnover), "volume": from_micro(r.volume),
             "net_inflow_cny": from_micro(r.net_inflow), "last_price_cny": money(r.last_price)} for r in rows]


def _curve(c: IntradayCurve) -> Doc:
    return {"date": c.date.isoformat() if c.date else None,
            "cumulative_turnover_cny": [[sec, from_micro(total)] for sec, total in c.points]}


def intraday(v: IntradayView) -> Doc:
    return {"step_seconds": v.step_seconds, "today": _curve(v.today), "previous": _curve(v.previous)}


def southbound_quota(v: QuotaView) -> Doc:
    """One channel's quota today (CNY) and its stocks' net buy (HKD); the record's fields null without one today."""
    return {
        "channel": v.channel,
        "date": v.date.isoformat() if v.date is not None else None,
        "ts": iso(v.ts_ms) if v.ts_ms is not None else None,
        "quota_cny": money(v.quota),
        "balance_cny": money(v.balance),
        "used_ratio": v.used_ratio,
        "net_buy_hkd": _moneys(v.net_buy),
    }


def sector_rows(rows: list[SectorRow]) -> list[Doc]:
    return [{"sector": r.sector, "symbols": r.symbols, "etf_net_inflow_cny": from_micro(r.etf_net_inflow),
             "etf_main_net_inflow_cny": from_micro(r.etf_main_net_inflow),
             "southbound_net_buy_hkd": from_micro(r.southbound_net_buy), "top_symbol": r.top_symbol} for r in rows]


# -- whole answers ------------------------------------------------------------------------------
def as_of(engine: Engine) -> str | None:
    now = engine.now_ms()
    return iso(now) if now is not None else None


def symbols_answer(engine: Engine) -> Doc:
    """GET /api/v1/symbols: every symbol and the parts it has."""
    rows = [{"symbol": s, "etf": s in engine.etf, "southbound": s in engine.sb, "bars": s in engine.bars,
             "basket": s in engine.holdings} for s in engine.symbols()]
    return {"as_of": as_of(engine), "symbols": rows}


def symbol_answer(engine: Engine, name: str) -> Doc | None:
    """GET /api/v1/symbols/{symbol}; None for an unknown symbol."""
    v = views.symbol(engine, name)
    return None if v is None else {"symbol": name, "as_of": as_of(engine), **symbol(v)}


def history_answer(engine: Engine, name: str, days: int) -> Doc | None:
    """GET /api/v1/symbols/{symbol}/history; None for an unknown symbol."""
    sb, etf_rows = views.southbound_history(engine, name, days), views.etf_history(engine, name)
    if sb is None and etf_rows is None:
        return None
    body: Doc = {"symbol": name, "as_of": as_of(engine)}
    if sb is not None:
        body["southbound"] = southbound_history(sb)
    if etf_rows is not None:
        body["etf"] = etf_history(etf_rows)
    return body


def intraday_answer(engine: Engine, name: str, step_s: int) -> Doc | None:
    """GET /api/v1/symbols/{symbol}/intraday; None without ETF trades."""
    v = views.etf_intraday(engine, name, step_s)
    return None if v is None else {"symbol": name, "as_of": as_of(engine), **intraday(v)}


def streaks_answer(engine: Engine, min_days: int, direction: str) -> Doc:
    """GET /api/v1/streaks: current streaks of at least ``min_days``, longest first."""
    found: list[SouthboundView] = []
    for s in sorted(engine.sb):
        v = views.southbound(engine, s)
        if v is None:
            continue
        days = v.streak_days
        if abs(days) < min_days or (direction == "buy" and days <= 0) or (direction == "sell" and days >= 0):
            continue
        found.append(v)
    found.sort(key=lambda v: (-abs(v.streak_days), v.symbol))
    rows = [{"symbol": v.symbol, "streak_days": v.streak_days, "streak_net_buy_hkd": from_micro(v.streak_net_buy),
             "provisional_net_buy_hkd": money(v.provisional_net_buy)} for v in found]
    return {"as_of": as_of(engine), "min_days": min_days, "direction": direction, "streaks": rows}


def flows_answer(engine: Engine, market: str, window: str, top: int) -> Doc:
    """GET /api/v1/flows: the largest southbound net buys (HK), or ETF net inflows of one exchange."""
    if market == "HK":
        rows = [{"symbol": s, "net_buy_hkd": from_micro(v)} for s, v in views.top_southbound(engine, window, top)]
    else:
        ranked = []
        for s in engine.etf:
            if not s.endswith("." + market):
                continue
            v = views.etf(engine, s)
            net = v.net_inflow.get(window) if v else None
            if net is not None:
                ranked.append((-from_micro(net), s))
        rows = [{"symbol": s, "net_inflow_cny": -nv} for nv, s in sorted(ranked)[:top]]
    return {"as_of": as_of(engine), "market": market, "window": window, "flows": rows}


def southbound_quota_answer(engine: Engine) -> Doc:
    """GET /api/v1/southbound/quota: both channels, SH then SZ."""
    return {"as_of": as_of(engine), "channels": [southbound_quota(v) for v in views.southbound_quota(engine)]}


def sectors_answer(engine: Engine, window: str) -> Doc:
    """GET /api/v1/sectors: per sector, its ETFs' net inflows and its stocks' southbound net buy over ``window``."""
    return {"as_of": as_of(engine), "window": window, "sectors": sector_rows(sectors.sector_rows(engine, window))}


def alerts(states: list[AlertState]) -> list[Doc]:
    """The alerts pending or firing in the service, as /api/v1/status lists them."""
    return [{"alert": a.alert, "symbol": a.symbol, "value": a.value, "state": a.state,
             "active_since": iso(a.active_since_ms)} for a in states]


def report(engine: Engine, top: int = 10, rejected: Mapping[str, int] | None = None) -> Doc:
    """The replay report: the whole state as one document (rejections counted by the caller)."""
    docs = {}
    for s in engine.symbols():
        v = views.symbol(engine, s)
        docs[s] = symbol(v) if v is not None else None
    return {
        "as_of": as_of(engine),
        "symbols": docs,
        "top_southbound_20d": [[s, from_micro(v)] for s, v in views.top_southbound(engine, "20d", top)],
        "southbound_quota": [southbound_quota(v) for v in views.southbound_quota(engine)],
        "sectors": {w: sector_rows(rows) for w, rows in sectors.sector_table(engine).items()},
        "rejected": dict(sorted((rejected or {}).items())),
        "duplicates": sum(engine.duplicates.values()),
        "late": sum(engine.late.values()),
    }
