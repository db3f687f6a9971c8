"""Typed read views of the engine: what the JSON API, the replay report, /metrics and the
in-service alerts read, computed on demand from the engine's state.

The engine applies events; this module only reads. Values stay exact (money in integer
micros, averages as Fractions, MACD and basket weights as Decimals): floats and field
names with a currency are written at the edge, by monitor.documents (JSON) and
monitor.metrics (Prometheus). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from consumers import basket as basket_mod
from consumers import highs, macd
from consumers.bars import DayView
from consumers.engine import Engine
from consumers.etf import INTRADAY_WINDOWS, EtfDay, EtfState
from consumers.orders import CLASSES, MAIN
from consumers.quota import CHANNELS
from consumers.southbound import SouthboundState, streak
from monitor.calendars import TradingCalendar, local_date, local_seconds_of_day
from monitor.events import mul_micro

MULTI_DAY = (("1d", 1), ("5d", 5), ("20d", 20))  # trading-day windows: name, sessions


# -- the views --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SessionRatio:
    """Today's turnover over the previous session's: the whole day, and up to the same time of day."""

    full_day: float | None
    same_time: float | None


@dataclass(frozen=True, slots=True)
class EtfView:
    """An ETF's flows and turnover at the stream clock (money: micros of its trading currency)."""

    symbol: str
    net_inflow: dict[str, int | None]  # 1m..1h by event time, then 1d/5d/20d trading days
    creation_net_inflow: dict[str, int | None]  # 1d/5d/20d of units records
    turnover: int | None
    prev_turnover: int | None
    prev_turnover_same_time: int | None
    turnover_vs_prev_session: SessionRatio
    volume_ratio: float | None
    last_price: int | None
    price_change_ratio: float | None
    aum: int | None
    # net inflow by the aggressor order's size class (small/medium/large/super_large), every window of net_inflow;
    # main = large + super_large; the classes sum to net_inflow exactly
    order_net_inflow: dict[str, dict[str, int | None]] = field(default_factory=dict)
    main_net_inflow: dict[str, int | None] = field(default_factory=dict)
    main_ratio_1d: float | None = None  # (main buy + main sell amount) / turnover, today
    iopv: int | None = None  # the latest IOPV of today by event time (micro-CNY)
    premium_ratio: float | None = None  # last price / iopv - 1


@dataclass(frozen=True, slots=True)
class SouthboundView:
    """A stock's southbound net buys (micro-HKD) and its streak of closed days."""

    symbol: str
    net_buy: dict[str, int | None]  # 1d/5d/20d, today included
    streak_days: int  # signed: + net buying, - net selling
    streak_net_buy: int
    provisional_net_buy: int | None  # today's, while the day is not closed


@dataclass(frozen=True, slots=True)
class MacdView:
    """MACD(12,26,9) with today's last price as today's close; values None before enough closes."""

    dif: Decimal | None
    dea: Decimal | None
    histogram: Decimal | None
    cross: int | None  # +1 golden, -1 death, 0 none
    closes: int


@dataclass(frozen=True, slots=True)
class SignalsView:
    """Daily-history signals of a symbol (trades, else bars standing in)."""

    symbol: str
    currency: Literal["CNY", "HKD"]  # of the money fields: the symbol's listing
    high: int | None  # today's high
    new_high: dict[str, int | None]  # 20d/60d/250d, then "all": 1, 0, or None without the history
    turnover_avg: dict[str, Fraction | None]  # 20d and ytd, today excluded
    aum: int | None
    aum_record: int | None
    aum_at_record: int | None
    macd: MacdView


@dataclass(frozen=True, slots=True)
class BasketHolding:
    symbol: str
    weight: Decimal
    net_buy: dict[str, int | None]  # southbound, micro-HKD, 1d/5d/20d
    streak_days: int | None  # None: no southbound data for the constituent
    streak_net_buy: int | None


@dataclass(frozen=True, slots=True)
class BasketView:
    """An ETF's holdings seen through: weighted southbound net buys and the weight of the top holdings."""

    symbol: str
    southbound_net_buy: dict[str, Decimal | None]  # sum of weight x net buy, micro-HKD
    top_weight_ratio: dict[str, Decimal]  # "4", "10"
    holdings: tuple[BasketHolding, ...]


@dataclass(frozen=True, slots=True)
class SymbolView:
    """Every part a symbol has (at least one is set)."""

    symbol: str
    etf: EtfView | None
    southbound: SouthboundView | None
    signals: SignalsView | None
    basket: BasketView | None


@dataclass(frozen=True, slots=True)
class SouthboundDayRow:
    date: dt.date
    net_buy: int
    source: Literal["daily", "ticks"]
    closed: bool


@dataclass(frozen=True, slots=True)
class EtfDayRow:
    date: dt.date
    turnover: int
    volume: int
    net_inflow: int
    last_price: int | None


@dataclass(frozen=True, slots=True)
class IntradayCurve:
    date: dt.date | None
    points: tuple[tuple[int, int], ...]  # (end of the step, seconds of day; cumulative turnover, micros)


@dataclass(frozen=True, slots=True)
class IntradayView:
    step_seconds: int
    today: IntradayCurve
    previous: IntradayCurve


def currency(symbol: str) -> Literal["CNY", "HKD"]:
    """The currency a symbol trades in: HKD on HKEX, CNY on the mainland exchanges."""
    return "HKD" if symbol.endswith(".HK") else "CNY"


# -- ETF ----------------------------------------------------------------------------------------
def etf(engine: Engine, symbol: str) -> EtfView | None:
    st = engine.etf.get(symbol)
    if st is None:
        return None
    cal = engine.cal.for_symbol(symbol)
    now = engine.now_ms()
    cur = engine.current_day(cal, now)
    net: dict[str, int | None] = {}
    by_class: list[dict[str, int | None]] = [{} for _ in CLASSES]
    if now is not None:
        for (name, _), values in zip(INTRADAY_WINDOWS, st.windows.column_values(now // 1000), strict=True):
            net[name] = sum(values)
            for c, value in enumerate(values):
                by_class[c][name] = value
    else:
        for name, _ in INTRADAY_WINDOWS:
            net[name] = None
            for part in by_class:
                part[name] = None
    if cur is None:
        for name, _ in MULTI_DAY:
            net[name] = None
            for part in by_class:
                part[name] = None
        return EtfView(symbol, net, {n: None for n, _ in MULTI_DAY}, None, None, None, SessionRatio(None, None),
                       None, None, None, None, _classes(by_class), _main(by_class), None, None, None)
    days = st.days
    for name, n in MULTI_DAY:
        held = [days[d] for d in cal.last_n(cur, n) if d in days]
        net[name] = sum(day.net for day in held)
        for c, part in enumerate(by_class):
            part[name] = sum(day.class_net(c) for day in held)
    today = engine.view(symbol, cur)
    prev = cal.previous(cur)
    known_prev = prev is not None and st.first_day is not None and prev >= st.first_day
    prev_day = engine.view(symbol, prev) if known_prev and prev is not None else None
    turnover = today.turnover if today else 0
    prev_turnover = (prev_day.turnover if prev_day else 0) if known_prev else None
    same_day = now is not None and local_date(now) == cur
    prev_same: int | None
    if known_prev:
        if prev_day is None:
            prev_same = 0
        elif same_day:
            # a bar has no intraday curve: the previous session up to this time is unknown
            prev_same = (prev_day.turnover_until(local_seconds_of_day(now))  # type: ignore[arg-type]  # now set here
                         if isinstance(prev_day, EtfDay) else None)
        else:
            prev_same = prev_day.turnover
    else:
        prev_same = None
    last = today.last if today else None
    prev_last = prev_day.last if prev_day else None
    traded = days.get(cur)
    flows = traded.flows if traded is not None else None
    main_amount = sum(flows[2 * c] + flows[2 * c + 1] for c in MAIN) if flows is not None else 0
    iopv = st.iopv[2] if st.iopv is not None and st.iopv[0] == cur else None
    return EtfView(
        symbol=symbol,
        net_inflow=net,
        creation_net_inflow=_creation(st, cal),
        turnover=turnover,
        prev_turnover=prev_turnover,
        prev_turnover_same_time=prev_same,
        turnover_vs_prev_session=SessionRatio(
            full_day=_ratio(turnover, prev_turnover) if prev_turnover else None,
            same_time=_ratio(turnover, prev_same) if prev_same else None,
        ),
        volume_ratio=_volume_ratio(engine, st, cal, cur, today, now if same_day else None),
        last_price=last,
        price_change_ratio=last / prev_last - 1 if last is not None and prev_last else None,
        aum=closed_history(engine, symbol, cur).aum_latest,
        order_net_inflow=_classes(by_class),
        main_net_inflow=_main(by_class),
        main_ratio_1d=main_amount / turnover if turnover else None,
        iopv=iopv,
        premium_ratio=last / iopv - 1 if last is not None and iopv else None,
    )


def _classes(by_class: list[dict[str, int | None]]) -> dict[str, dict[str, int | None]]:
    return dict(zip(CLASSES, by_class, strict=True))


def _main(by_class: list[dict[str, int | None]]) -> dict[str, int | None]:
    """large + super_large per window."""
    out: dict[str, int | None] = {}
    for name in by_class[MAIN[0]]:
        parts = [by_class[c][name] for c in MAIN]
        out[name] = None if any(p is None for p in parts) else sum(p for p in parts if p is not None)
    return out


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _volume_ratio(engine: Engine, st: EtfState, cal: TradingCalendar, cur: dt.date, today: DayView | None,
                  now: int | None) -> float | None:
    """Volume per trading millisecond today over that of the previous 5 sessions (whole sessions)."""
    session = cal.session(cur)
    if session is None:
        return None
    elapsed = session.elapsed_ms(now) if now is not None else session.trading_ms
    before = cal.before_n(cur, 5)
    if elapsed <= 0 or len(before) < 5 or st.first_day is None or before[0] < st.first_day:
        return None
    vol5 = 0
    for d in before:
        v = engine.view(st.symbol, d)
        vol5 += v.volume if v is not None else 0
    ms5 = 0
    for d in before:
        s = cal.session(d)
        ms5 += s.trading_ms if s else 0
    if not vol5 or not ms5:
        return None
    vol = today.volume if today else 0
    return (vol * ms5) / (elapsed * vol5)


def _creation(st: EtfState, cal: TradingCalendar) -> dict[str, int | None]:
    """Creation/redemption inflow over the trading days ending at the latest units record: per record,
    (shares - the previous record's shares) x its NAV (the first record has none)."""
    if len(st.units) < 2:
        return {name: None for name, _ in MULTI_DAY}
    dates = sorted(st.units)
    units = st.units
    inflow = {d: mul_micro(units[d][0] - units[p][0], units[d][1]) for p, d in zip(dates, dates[1:], strict=False)}
    latest = dates[-1]
    return {name: sum(inflow.get(d, 0) for d in cal.last_n(latest, n)) for name, n in MULTI_DAY}


# -- daily history: the closed part, cached ----------------------------------------------------
class ClosedHistory:
    """The closed part of a symbol's daily history as of one current day (cached per history version).

    Everything here depends only on the closed days, so a scrape of 2,000 symbols reads it
    instead of walking up to 250 days per symbol; only today's high and last price are live.
    """

    __slots__ = ("series", "first_day", "prev_max_high", "window_highs", "turnover_avg", "macd_last", "macd_today",
                 "aums", "aum_latest", "aum_record")

    def __init__(self) -> None:
        self.series: dict[dt.date, DayView] = {}
        self.first_day: dt.date | None = None
        self.prev_max_high: int | None = None
        self.window_highs: dict[str, int | None] = {}  # per new-high window: the previous days' highest high
        self.turnover_avg: dict[str, Fraction | None] = {}  # 20d and ytd, today excluded
        self.macd_last: macd.MacdPoint | None = None
        self.macd_today: tuple[int, macd.MacdPoint, int] | None = None  # (today's last, point, cross) memo
        self.aums: dict[dt.date, int] = {}
        self.aum_latest: int | None = None
        self.aum_record: int | None = None


def _history_dates(engine: Engine, symbol: str) -> set[dt.date]:
    dates: set[dt.date] = set(engine.bars.get(symbol, ()))
    st = engine.etf.get(symbol)
    if st is not None:
        dates.update(d for d, day in st.days.items() if day.last is not None)
        dates.update(st.summaries)
    return dates


def _aums(engine: Engine, symbol: str) -> dict[dt.date, int]:
    """AUM per day (micros): the units record, else a bar's shares x NAV."""
    out = {d: mul_micro(b.shares, b.nav) for d, b in engine.bars.get(symbol, {}).items()
           if b.shares is not None and b.nav is not None}
    st = engine.etf.get(symbol)
    if st is not None:
        for d, (shares, nav) in st.units.items():
            out[d] = mul_micro(shares, nav)
    return out


def closed_history(engine: Engine, symbol: str, cur: dt.date) -> ClosedHistory:
    """The closed history before ``cur``, from the engine's cache while the symbol's history is unchanged."""
    key = (cur, engine.hist_version[symbol])
    hit = engine.closed_cache.get(symbol)
    if hit is not None and hit[0] == key:
        return hit[1]
    c = ClosedHistory()
    dates = sorted(_history_dates(engine, symbol))
    c.first_day = dates[0] if dates else None
    point = None
    for d in dates:
        if d >= cur:
            break
        v = engine.view(symbol, d)
        if v is None:
            continue
        c.series[d] = v
        if v.high is not None and (c.prev_max_high is None or v.high > c.prev_max_high):
            c.prev_max_high = v.high
        if v.last is not None:
            point = macd.step(point, macd.micro_to_decimal(v.last))
    c.macd_last = point
    cal = engine.cal.for_symbol(symbol)
    prev_days = cal.before_n(cur, max(n for _, n in highs.NEW_HIGH_WINDOWS))
    c.window_highs = {name: highs.window_high(prev_days, n, c.series, c.first_day)
                      for name, n in highs.NEW_HIGH_WINDOWS}
    c.turnover_avg = {"20d": highs.average_turnover(prev_days[-highs.TURNOVER_AVG_WINDOW:], c.series),
                      "ytd": highs.average_turnover(highs.ytd_days(list(c.series), cur), c.series)}
    c.aums = _aums(engine, symbol)
    c.aum_latest = c.aums[max(c.aums)] if c.aums else None
    st = engine.etf.get(symbol)
    folded = st.aum_folded if st is not None else None
    values = list(c.aums.values()) + ([folded] if folded is not None else [])
    c.aum_record = max(values) if values else None
    engine.closed_cache[symbol] = (key, c)
    return c


# -- signals and basket ----------------------------------------------------------------------
_NO_MACD = MacdView(None, None, None, None, 0)


def signals(engine: Engine, symbol: str) -> SignalsView | None:
    """New highs, average turnover, AUM record and MACD of a symbol with trades or bars."""
    if symbol not in engine.etf and symbol not in engine.bars:
        return None
    cal = engine.cal.for_symbol(symbol)
    cur = engine.current_day(cal)
    if cur is None:
        no_high: dict[str, int | None] = dict.fromkeys([n for n, _ in highs.NEW_HIGH_WINDOWS] + ["all"])
        return SignalsView(symbol, currency(symbol), None, no_high, {"20d": None, "ytd": None}, None, None, None,
                           _NO_MACD)
    c = closed_history(engine, symbol, cur)
    today = engine.view(symbol, cur)
    today_high = today.high if today is not None else None
    new_high = {name: highs.is_new_high(today_high, c.window_highs[name]) for name, _ in highs.NEW_HIGH_WINDOWS}
    new_high["all"] = highs.new_high_all(today_high, c.prev_max_high)
    aum = c.aum_latest
    # MACD: closed closes, then today's last price as the provisional close
    point = c.macd_last
    crossed = 0  # no close today yet: nothing crossed today
    if today is not None and today.last is not None:
        memo = c.macd_today
        if memo is None or memo[0] != today.last:
            step = macd.step(point, macd.micro_to_decimal(today.last))
            memo = c.macd_today = (today.last, step, macd.cross(point, step))
        _, point, crossed = memo
    if point is not None and point.defined:
        m = MacdView(point.dif, point.dea, point.histogram, crossed, point.n)
    else:
        m = MacdView(None, None, None, None, point.n if point is not None else 0)
    return SignalsView(
        symbol=symbol,
        currency=currency(symbol),
        high=today_high,
        new_high=new_high,
        turnover_avg=dict(c.turnover_avg),
        aum=aum,
        aum_record=c.aum_record,
        aum_at_record=None if aum is None or c.aum_record is None else int(aum >= c.aum_record),
        macd=m,
    )


def basket(engine: Engine, symbol: str) -> BasketView | None:
    """Look-through of an ETF's holdings: weighted southbound net buys, top-N weight, per holding."""
    holdings = engine.holdings.get(symbol)
    if not holdings:
        return None
    sb_cal = engine.cal["SB"]
    cur = engine.current_day(sb_cal)
    nets: dict[str, dict[str, int | None]] = {}
    for sym, _ in holdings:
        st = engine.sb.get(sym)
        nets[sym] = {name: (_sb_sum(st, sb_cal, cur, n) if st is not None and cur is not None else None)
                     for name, n in MULTI_DAY}
    weighted: dict[str, Decimal | None] = {}
    for name, _ in MULTI_DAY:
        window = {sym: net[name] for sym, net in nets.items()}
        weighted[name] = basket_mod.weighted_net(holdings, window.get)
    rows = []
    for sym, w in holdings:
        sb = southbound(engine, sym)
        rows.append(BasketHolding(sym, w, nets[sym], sb.streak_days if sb else None,
                                  sb.streak_net_buy if sb else None))
    return BasketView(symbol, weighted,
                      {str(n): basket_mod.top_weight_ratio(holdings, n) for n in basket_mod.TOP_N}, tuple(rows))


# -- southbound ---------------------------------------------------------------------------------
def _southbound_at(engine: Engine, symbol: str) -> tuple[SouthboundState, TradingCalendar, int | None,
                                                          dt.date | None] | None:
    """A stock's southbound state, the southbound calendar, the stream clock and the current southbound day."""
    st = engine.sb.get(symbol)
    if st is None:
        return None
    cal = engine.cal["SB"]
    now = engine.now_ms()
    return st, cal, now, engine.current_day(cal, now)


def southbound(engine: Engine, symbol: str) -> SouthboundView | None:
    at = _southbound_at(engine, symbol)
    if at is None:
        return None
    st, cal, now, cur = at
    if cur is None:
        return SouthboundView(symbol, {n: None for n, _ in MULTI_DAY}, 0, 0, None)
    nets: dict[str, int | None] = {name: _sb_sum(st, cal, cur, n) for name, n in MULTI_DAY}
    cur_day = st.days.get(cur)
    closed = engine.sb_closed(cal, cur, cur_day, now)
    latest_closed = cur if closed else cal.previous(cur)
    days_back = cal.back_from(latest_closed) if latest_closed is not None else iter(())
    n_days, total = streak(days_back, st.net)
    return SouthboundView(symbol, nets, n_days, total, None if closed else (cur_day.net if cur_day else 0))


def _sb_sum(st: SouthboundState, cal: TradingCalendar, cur: dt.date, n: int) -> int:
    days = st.days
    return sum(days[d].net for d in cal.last_n(cur, n) if d in days)


def top_southbound(engine: Engine, window: str = "20d", top: int = 10) -> list[tuple[str, int]]:
    """The ``top`` largest southbound net buys (micro-HKD) over ``window``, largest first."""
    n = dict(MULTI_DAY)[window]
    cal = engine.cal["SB"]
    cur = engine.current_day(cal)
    if cur is None:
        return []
    ranked = sorted(((-_sb_sum(st, cal, cur, n), sym) for sym, st in engine.sb.items()))
    return [(sym, -neg) for neg, sym in ranked[:top]]


# -- southbound quota ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuotaView:
    """A Stock Connect southbound channel today: its latest quota record and its stocks' net buy.

    ``date``/``ts_ms``/``quota``/``balance``/``used_ratio`` are those of the latest record by event time
    of the current southbound day (None without one today); ``net_buy`` sums the channel's tick net
    (buy - sell, micro-HKD) over every stock for the last 1/5/20 southbound days, today included.
    """

    channel: str
    date: dt.date | None
    ts_ms: int | None
    quota: int | None  # micro-CNY
    balance: int | None  # micro-CNY
    used_ratio: float | None  # 1 - balance / quota
    net_buy: dict[str, int | None]


def southbound_quota(engine: Engine) -> list[QuotaView]:
    """Both channels, SH then SZ, at the stream clock (today = the southbound calendar's current day)."""
    cal = engine.cal["SB"]
    cur = engine.current_day(cal)
    nets = channel_net_buy(engine, cal, cur)
    out = []
    for channel in CHANNELS:
        rec = engine.quota.latest(channel, cur)
        net_buy = nets[channel]
        if rec is None:
            out.append(QuotaView(channel, None, None, None, None, None, net_buy))
        else:
            out.append(QuotaView(channel, cur, rec.ts_ms, rec.quota, rec.balance, rec.used_ratio, net_buy))
    return out


def channel_net_buy(engine: Engine, cal: TradingCalendar, cur: dt.date | None) -> dict[str, dict[str, int | None]]:
    """Per channel, the ticks' net buy summed over stocks for each of MULTI_DAY (None without a current day).

    From the ticks only, like the channel itself: a stock's daily record (which replaces its ticks in
    its own net buy) does not say which channel bought.
    """
    if cur is None:
        return {c: {name: None for name, _ in MULTI_DAY} for c in CHANNELS}
    longest = max(n for _, n in MULTI_DAY)
    days = cal.last_n(cur, longest)
    # a day's index from the end (0 = the current day) decides which windows it falls in
    sh_by_age = [0] * len(days)
    total_by_age = [0] * len(days)
    for st in engine.sb.values():
        held = st.days
        for age, d in enumerate(reversed(days)):
            day = held.get(d)
            if day is not None:
                sh_by_age[age] += day.tick_net_sh
                total_by_age[age] += day.tick_buy - day.tick_sell
    out: dict[str, dict[str, int | None]] = {}
    for channel in CHANNELS:
        per_window: dict[str, int | None] = {}
        for name, n in MULTI_DAY:
            sh = sum(sh_by_age[:n])
            per_window[name] = sh if channel == "SH" else sum(total_by_age[:n]) - sh
        out[channel] = per_window
    return out


# -- a symbol, history and intraday curves (the board) ----------------------------------------------
def symbol(engine: Engine, name: str) -> SymbolView | None:
    """Everything known about a symbol; None when nothing is."""
    view = SymbolView(name, etf(engine, name), southbound(engine, name), signals(engine, name), basket(engine, name))
    if view.etf is None and view.southbound is None and view.signals is None and view.basket is None:
        return None
    return view


def southbound_history(engine: Engine, symbol: str, days: int = 60) -> list[SouthboundDayRow] | None:
    """Daily southbound net buys, oldest first, each marked closed or provisional."""
    at = _southbound_at(engine, symbol)
    if at is None:
        return None
    st, cal, now, cur = at
    if cur is None:
        return []
    out = []
    for d in cal.last_n(cur, days):
        day = st.days.get(d)
        if day is None:
            continue
        out.append(SouthboundDayRow(d, day.net, "daily" if day.daily is not None else "ticks",
                                    engine.sb_closed(cal, d, day, now)))
    return out


def etf_history(engine: Engine, symbol: str) -> list[EtfDayRow] | None:
    """Per-day turnover, volume, active net inflow and last price of the days with trades, oldest first."""
    st = engine.etf.get(symbol)
    if st is None:
        return None
    return [EtfDayRow(d, day.turnover, day.volume, day.net, day.last) for d, day in sorted(st.days.items())]


def etf_intraday(engine: Engine, symbol: str, step_s: int = 60) -> IntradayView | None:
    """Cumulative turnover over the day for today and the previous session, per ``step_s``."""
    st = engine.etf.get(symbol)
    if st is None:
        return None
    cal = engine.cal.for_symbol(symbol)
    cur = engine.current_day(cal)
    prev = cal.previous(cur) if cur else None
    today, previous = (IntradayCurve(d, _cumulative(st.days.get(d) if d else None, step_s)) for d in (cur, prev))
    return IntradayView(step_s, today, previous)


def _cumulative(day: EtfDay | None, step_s: int) -> tuple[tuple[int, int], ...]:
    """(end of each step with trades, turnover up to it) from the day's per-second curve."""
    if day is None:
        return ()
    points: list[tuple[int, int]] = []
    total, bucket = 0, None
    for sec, amount in day.curve_items():  # ascending seconds
        b = sec - sec % step_s
        if b != bucket and bucket is not None:
            points.append((bucket + step_s, total))
        bucket = b
        total += amount
    if bucket is not None:
        points.append((bucket + step_s, total))
    return tuple(points)
