"""Seeded, deterministic market simulator: ETF trades and units, southbound ticks and dailies.

It exists so the whole pipeline (ingest, consumers, metrics, alerts) can be
driven and checked end to end without a market-data licence. The default
:class:`Scenario` recreates the seed day 2025-09-12 that the design document
quotes (513770.SH turned over ~606M CNY, 20-day creation inflow 2.792bn, Alibaba
net-bought 15 days in a row for > HK$37.1bn, ...), so a demo shows the same
figures a desk would see, and :func:`truth` gives the totals to assert against.

Plain Python on purpose: no I/O imports, one ``random.Random`` per stream seeded
from the scenario seed (string seeds hash with SHA-512, so runs are identical
across processes and platforms), integer arithmetic for money until the event
is built, so the floats in events are exactly the decimals they stand for.
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import math
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from operator import itemgetter
from typing import Any

__all__ = ["Scenario", "DaySession", "Simulation", "generate", "truth", "paced", "trading_days",
           "DEMO_HISTORY_DAYS", "DEMO_HOLDINGS", "history_days"]

Event = dict[str, Any]

_DEFAULT_ETFS = ("513770.SH", "159920.SZ", "513180.SH", "510300.SH")
_DEFAULT_STOCKS = ("09988.HK", "00700.HK", "03690.HK", "01810.HK", "00941.HK", "02318.HK", "01299.HK", "00388.HK")
_STORY_FILL_MEAN = 1.3  # aggressor orders of the story: 513770.SH's main (large + super-large) share ~58%


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Frozen so it can key caches and be shared between tasks."""

    seed: int = 20250912
    end_date: dt.date = dt.date(2025, 9, 12)  # the seed day: last simulated day, no southbound daily yet
    days: int = 25  # mainland (XSHG) trading days, ending at end_date
    etfs: tuple[str, ...] = _DEFAULT_ETFS
    southbound: tuple[str, ...] = _DEFAULT_STOCKS
    trade_interval_s: float = 3.0  # mean seconds between trades, per ETF
    tick_interval_s: float = 60.0  # mean seconds between ticks, per stock and channel
    story: bool = True  # pin the seed-day figures for the symbols that have them (513770.SH, 09988.HK, ...)
    history_days: int = 0  # daily bars for this many XSHG days before the first day of ticks (at most 300)
    # Tick-by-tick extras, each from its own random stream (turning one off changes nothing else):
    order_ids: bool = True  # trades carry buy_order_id / sell_order_id
    order_fill_mean: float = _STORY_FILL_MEAN  # mean trades an aggressor order fills (geometric, >= 1)
    iopv: bool = True  # an IOPV per ETF every 15 s of the session
    quota: bool = True  # the southbound daily quota balance per channel every minute of the session

    @classmethod
    def synthetic(
        cls,
        n_etfs: int,
        n_stocks: int,
        days: int = 25,
        *,
        seed: int = 1,
        end_date: dt.date = dt.date(2025, 9, 12),
        trade_interval_s: float = 3.0,
        tick_interval_s: float = 60.0,
        order_ids: bool = True,
        order_fill_mean: float = 2.5,
        iopv: bool = True,
        quota: bool = True,
    ) -> Scenario:
        """A large scenario for benchmarks: generated codes, random profiles, no pinned story.

        ETFs alternate ``5xxxxx.SH`` / ``1xxxxx.SZ``; stocks are ``0xxxx.HK``. Aggressor orders fill
        2.5 trades on average, as in liquid tick-by-tick data.
        """
        if not (0 <= n_etfs <= 200_000 and 0 <= n_stocks <= 9_999):
            raise ValueError("n_etfs must be in [0, 200000] and n_stocks in [0, 9999]")
        etfs = tuple(f"5{i // 2:05d}.SH" if i % 2 == 0 else f"1{i // 2:05d}.SZ" for i in range(n_etfs))
        stocks = tuple(f"0{j:04d}.HK" for j in range(1, n_stocks + 1))
        return cls(seed=seed, end_date=end_date, days=days, etfs=etfs, southbound=stocks,
                   trade_interval_s=trade_interval_s, tick_interval_s=tick_interval_s, story=False,
                   order_ids=order_ids, order_fill_mean=order_fill_mean, iopv=iopv, quota=quota)


# --------------------------------------------------------------------------- calendars


@dataclass(frozen=True, slots=True)
class DaySession:
    """One exchange day in epoch ms; break fields are None on half days (no lunch break)."""

    date: dt.date
    open_ms: int
    close_ms: int
    break_start_ms: int | None
    break_end_ms: int | None

    @property
    def trading_ms(self) -> int:
        """Trading time without the lunch break: the span trades are spread over."""
        if self.break_start_ms is None or self.break_end_ms is None:
            return self.close_ms - self.open_ms
        return self.close_ms - self.open_ms - (self.break_end_ms - self.break_start_ms)

    def wall_ms(self, trading_ms: float) -> int:
        """Map trading-time offset to wall time, skipping the lunch break."""
        t = int(trading_ms)
        if self.break_start_ms is not None and self.break_end_ms is not None:
            morning = self.break_start_ms - self.open_ms
            if t >= morning:
                return self.break_end_ms + (t - morning)
        return self.open_ms + t

    def is_open(self, t_ms: int) -> bool:
        if not self.open_ms <= t_ms < self.close_ms:
            return False
        return not (self.break_start_ms is not None and self.break_end_ms is not None
                    and self.break_start_ms <= t_ms < self.break_end_ms)


def _ns_to_ms(value: Any) -> int | None:
    """pandas Timestamp/NaT to epoch ms; NaT (no lunch break) to None."""
    if value is None or value != value:  # NaT != NaT
        return None
    return int(value.value // 1_000_000)


@lru_cache(maxsize=16)
def _sessions(code: str, start: dt.date, end: dt.date) -> dict[dt.date, DaySession]:
    import exchange_calendars as xcals  # lazy: the library pulls in pandas

    cal = xcals.get_calendar(code, start=start.isoformat(), end=end.isoformat())
    s = cal.schedule
    out: dict[dt.date, DaySession] = {}
    for day, o, c, bs, be in zip(s.index, s["open"], s["close"], s["break_start"], s["break_end"], strict=True):
        out[day.date()] = DaySession(day.date(), _ns_to_ms(o) or 0, _ns_to_ms(c) or 0, _ns_to_ms(bs), _ns_to_ms(be))
    return out


def history_days(scenario: Scenario) -> list[dt.date]:
    """The XSHG days before the first simulated day that get daily bars (oldest first)."""
    if not scenario.history_days:
        return []
    if not 0 < scenario.history_days <= _HISTORY_PLAN:
        raise ValueError(f"history_days must be between 0 and {_HISTORY_PLAN}")
    return _history_dates(scenario)[-scenario.history_days:]


def _history_dates(scenario: Scenario) -> list[dt.date]:
    """The ``_HISTORY_PLAN`` XSHG days before the first simulated day (planned whether emitted or not)."""
    mainland, _ = trading_days(scenario)
    first = mainland[0].date
    start = first - dt.timedelta(days=_HISTORY_PLAN * 2 + 60)
    sh = _sessions("XSHG", start, first)
    days = [d for d in sorted(sh) if d < first][-_HISTORY_PLAN:]
    if len(days) < _HISTORY_PLAN:
        raise ValueError("calendar span too short for the bar history")
    return days


def trading_days(scenario: Scenario) -> tuple[list[DaySession], list[DaySession]]:
    """(mainland sessions, southbound sessions) the scenario covers, oldest first.

    Mainland = the last ``days`` XSHG sessions ending at ``end_date`` (``.SZ`` uses
    XSHG too). Southbound = days in that span on which XHKG and XSHG both trade,
    with HKEX session times (so HK half days are half days).
    """
    if scenario.days < 1:
        raise ValueError("days must be >= 1")
    end = scenario.end_date
    start = end - dt.timedelta(days=scenario.days * 2 + 40)
    sh = _sessions("XSHG", start, end)
    mainland = [sh[d] for d in sorted(sh)][-scenario.days:]
    if len(mainland) < scenario.days:
        raise ValueError("calendar span too short for the requested number of days")
    first = mainland[0].date
    hk = _sessions("XHKG", start, end)
    sb = [hk[d] for d in sorted(hk) if d >= first and d in sh]
    return mainland, sb


# --------------------------------------------------------------------------- profiles and the seed-day story


@dataclass(frozen=True, slots=True)
class _EtfProfile:
    price_mills: int  # close on the last day (0.001 CNY)
    turnover: tuple[float, float]  # uniform range of daily turnover, CNY
    shares: int  # shares outstanding before the first day
    flow_mean: float  # mean daily creation(+)/redemption(-) CNY
    flow_sd: float


_ETF_PROFILES: dict[str, _EtfProfile] = {
    "513770.SH": _EtfProfile(1072, (400e6, 600e6), 8_600_000_000, 60e6, 150e6),
    "159920.SZ": _EtfProfile(1561, (0.9e9, 1.6e9), 17_000_000_000, 20e6, 200e6),
    "513180.SH": _EtfProfile(752, (2.2e9, 3.6e9), 48_000_000_000, 40e6, 400e6),
    "510300.SH": _EtfProfile(4472, (3.0e9, 5.0e9), 42_000_000_000, -30e6, 600e6),
}

# 513770.SH on the seed day, counted back from the last simulated day (index -1).
_STORY_ETF = "513770.SH"
_STORY_CLOSES = {-1: 1072, -2: 1060}  # 1.072 / 1.060 - 1 = +1.13%
_STORY_TURNOVER = {-1: 606.0e6, -2: 540.0e6, -3: 428.0e6, -4: 417.0e6, -5: 436.0e6, -6: 421.0e6}
_STORY_INFLOW_20D = 2_792_000_000  # CNY, creation/redemption over the last 20 XSHG days
_INFLOW_WINDOW = 20
# Issue 11: the seed day is a 250-day high on heavy volume, an AUM record and a MACD golden cross.
_HISTORY_PLAN = 300  # XSHG days of daily history planned before the first day of ticks
DEMO_HISTORY_DAYS = 260  # what `fundflow demo` emits: enough for the 250-day high and MACD
_STORY_CAP_MILLS = 1066  # no daily high before the seed day reaches this
_STORY_CLOSE_CEIL = 1058  # closes before the previous session stay at or below this
_STORY_BUMP_TICKS = 16.0  # the seed day's early push above the earlier highs (0.001 CNY)
_STORY_FRONT = (30 * 60_000, 4.0)  # the seed day's first 30 minutes trade 4x the usual size
_STORY_BAR_TURNOVER = (420e6, 760e6)  # bar days: the year's average daily turnover nears 600M
# the macd histogram (2 x (DIF - DEA)) the day before the seed day and on it (a golden cross, with margin)
_STORY_HIST_PREV = (-0.0012, -0.00005)
_STORY_HIST_SEED = 0.00005
# Holdings of 513770.SH (an HK internet ETF) for the basket look-through, weights as fractions.
DEMO_HOLDINGS: dict[str, dict[str, str]] = {
    "513770.SH": {"00700.HK": "0.1452", "09988.HK": "0.1418", "01810.HK": "0.1183", "03690.HK": "0.0968",
                  "09618.HK": "0.0612", "09999.HK": "0.0547", "01024.HK": "0.0503", "09888.HK": "0.0452",
                  "00981.HK": "0.0398", "09961.HK": "0.0311", "02015.HK": "0.0287", "00268.HK": "0.0244"},
}

# Southbound: 09988.HK net-bought for the 15 days before the seed day, sold the day before that.
_STORY_STREAK = "09988.HK"
_STORY_STREAK_DAYS = 15
_STORY_STREAK_SUM_CENTS = 37_380_000_000_00  # HK$37.38bn
_STORY_BEFORE_STREAK_CENTS = -862_350_000_00
_STORY_SEED_DAY_CENTS = 1_912_640_000_00  # 09988.HK on the seed day, tick sum
_SB_WINDOW = 20
_STORY_20D_CENTS = {"00700.HK": 17_640_000_000_00, "03690.HK": 9_210_000_000_00}
_STORY_OTHERS_CAP_CENTS = 3_500_000_000_00  # everyone else stays clearly below the top 3
_SB_GROSS = {  # typical daily gross (buy + sell), HKD
    "09988.HK": 9.0e9, "00700.HK": 7.0e9, "03690.HK": 4.0e9, "01810.HK": 3.5e9,
    "00941.HK": 1.5e9, "02318.HK": 1.2e9, "01299.HK": 1.0e9, "00388.HK": 1.1e9,
}


# IOPV: exchanges publish one every 15 s; the cross-border story ETF trades at a premium.
_IOPV_STEP_MS = 15_000
_STORY_PREMIUM = (0.015, 0.004)  # (center, band): 513770.SH between +1.1% and +1.9%
_PREMIUM_BAND = 0.003  # every other ETF within +-0.3%
# Southbound quota: RMB 42bn per channel and day, the balance published every minute.
_QUOTA_STEP_MS = 60_000
_QUOTA_CNY = 42_000_000_000
_HKD_CNY = (9137, 10_000)  # CNY per HKD (September 2025), as a fraction
# The story's stocks are the channel's big names, a part of its flow; the seed day ends with the
# SH channel's quota nearly used (the demo's alert), SZ less so: (SH, SZ) used ratios at the close.
_STORY_QUOTA_SCALE = 4.0
_STORY_QUOTA_USED = (0.825, 0.55)


def _rng(scenario: Scenario, *parts: object) -> random.Random:
    """An independent stream per purpose, so adding a symbol never changes another's data."""
    return random.Random(":".join(str(p) for p in (scenario.seed, *parts)))


def _round_half_even_div(n: int, d: int) -> int:
    """n / d rounded half to even, for non-negative integers (amount cents from mills)."""
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q % 2 == 1):
        q += 1
    return q


def _split_cents(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` cents by ``weights`` so the parts sum to ``total`` exactly."""
    s = sum(weights)
    out: list[int] = []
    acc = 0.0
    prev = 0
    for w in weights:
        acc += w
        cur = int(total * acc / s) if acc < s else total
        out.append(cur - prev)
        prev = cur
    out[-1] += total - prev
    return out


# --------------------------------------------------------------------------- daily plans


@dataclass(slots=True)
class _EtfPlan:
    closes: list[int]  # mills, per mainland day
    turnover: list[float]  # CNY target per day
    shares: list[int]  # shares outstanding per day
    navs: list[int]  # NAV in 1e-4 CNY per day


@dataclass(slots=True)
class _SbPlan:
    net_cents: list[int]  # authoritative net per southbound day (daily record, or the ticks on the seed day)
    gross_cents: list[int]
    tick_noise: list[tuple[float, float]]  # (buy, sell) factor of tick sums vs the daily record


def _plan_etf(scenario: Scenario, symbol: str, n: int) -> _EtfPlan:
    """Daily closes, turnover targets, shares and NAVs, planned first so intraday paths can aim at them."""
    rng = _rng(scenario, "etf-plan", symbol)
    prof = _ETF_PROFILES.get(symbol)
    if prof is None:
        price = rng.randint(500, 5000)
        lo = rng.uniform(5e7, 2e9)
        prof = _EtfProfile(price, (lo, lo * rng.uniform(1.3, 1.8)), rng.randrange(1, 50) * 1_000_000_000,
                           rng.gauss(0, 2e7), lo * 0.2)
    story = scenario.story and symbol == _STORY_ETF

    closes = [0] * n
    closes[-1] = prof.price_mills
    for i in range(n - 2, -1, -1):  # walk back from the last close so the seed day is anchored
        closes[i] = max(100, round(closes[i + 1] / (1.0 + rng.gauss(0.0004, 0.012))))
    turnover = [rng.uniform(*prof.turnover) for _ in range(n)]
    if story:
        for k, v in _STORY_CLOSES.items():
            if -k <= n:
                closes[k] = v
        if n > 2:
            closes[:-2] = _story_closes(scenario, n)[1]
        for k, amount in _STORY_TURNOVER.items():
            if -k <= n:
                turnover[k] = amount

    navs = [max(1, round(c * 10 * (1.0 + rng.gauss(0.0, 0.0015)))) for c in closes]
    flows = [rng.gauss(prof.flow_mean, prof.flow_sd) for _ in range(n)]
    deltas = [round(f / (nv / 10_000) / 100) * 100 for f, nv in zip(flows, navs, strict=True)]
    deltas[0] = 0
    if story and n > 1:
        w = min(_INFLOW_WINDOW, n - 1)  # the first record has no predecessor
        idx = range(n - w, n)
        # Shift the window's flows to the target, then settle the rounding on the biggest day.
        shift = (_STORY_INFLOW_20D - sum(flows[i] for i in idx)) / w
        for i in idx:
            deltas[i] = round((flows[i] + shift) / (navs[i] / 10_000) / 100) * 100
        got = sum(deltas[i] * navs[i] for i in idx)  # in 1e-4 CNY
        big = max(idx, key=lambda i: abs(deltas[i]))
        deltas[big] += round((_STORY_INFLOW_20D * 10_000 - got) / navs[big] / 100) * 100
    shares: list[int] = []
    cur = prof.shares
    for d in deltas:
        cur = max(1_000_000, cur + d)
        shares.append(cur)
    return _EtfPlan(closes, turnover, shares, navs)


def _macd_hist(closes: list[int]) -> list[float]:
    """2 x (DIF - DEA) per close, MACD(12, 26, 9), floats (the planner's check, with margin)."""
    e12 = e26 = float(closes[0]) / 1000
    dea = 0.0
    out = [0.0]
    for c in closes[1:]:
        x = c / 1000
        e12 = (2 * x + 11 * e12) / 13
        e26 = (2 * x + 25 * e26) / 27
        dif = e12 - e26
        dea = (2 * dif + 8 * dea) / 10
        out.append(2 * (dif - dea))
    return out


def _reflect_walk(rng: random.Random, start: int, count: int, drift: float, sd: float, ceil: int) -> list[int]:
    """``count`` closes walking back from ``start`` (oldest first), reflected below ``ceil``."""
    out: list[int] = []
    cur = start
    for _ in range(count):
        cur = round(cur / (1.0 + rng.gauss(drift, sd)))
        if cur > ceil:
            cur = 2 * ceil - cur
        cur = max(100, cur)
        out.append(cur)
    out.reverse()
    return out


@lru_cache(maxsize=8)
def _story_closes(scenario: Scenario, n: int) -> tuple[list[int], list[int]]:
    """(history closes, tick-day closes but the last two) of the story ETF, drawn until the seed day
    is a MACD golden cross with margin; deterministic for the scenario."""
    last2 = [_STORY_CLOSES[-2], _STORY_CLOSES[-1]]
    for attempt in range(10_000):
        rng = _rng(scenario, "story-closes", attempt)
        ticks = _reflect_walk(rng, last2[0], n - 2, 0.0004, 0.011, _STORY_CLOSE_CEIL)
        hist = _reflect_walk(rng, ticks[0], _HISTORY_PLAN, 0.0012, 0.013, _STORY_CLOSE_CEIL)
        h = _macd_hist(hist + ticks + last2)
        if _STORY_HIST_PREV[0] <= h[-2] <= _STORY_HIST_PREV[1] and h[-1] >= _STORY_HIST_SEED:
            return hist, ticks
    raise RuntimeError("no close path gives the seed day its golden cross")  # pragma: no cover


def _plan_southbound(scenario: Scenario, symbol: str, days: list[DaySession]) -> _SbPlan:
    """Daily net/gross per southbound day; the story pins the streak and the 20-day ranking."""
    rng = _rng(scenario, "sb-plan", symbol)
    n = len(days)
    gross = _SB_GROSS.get(symbol) or rng.uniform(2e8, 4e9)
    net = [round(rng.gauss(0.02, 0.22) * gross * 100) for _ in range(n)]
    story = scenario.story and n > 0
    if story and symbol == _STORY_STREAK and n >= _STORY_STREAK_DAYS + 2:
        streak = list(range(n - 1 - _STORY_STREAK_DAYS, n - 1))
        weights = [rng.uniform(0.6, 1.4) for _ in streak]
        for i, part in zip(streak, _split_cents(_STORY_STREAK_SUM_CENTS, weights), strict=True):
            net[i] = part
        net[streak[0] - 1] = _STORY_BEFORE_STREAK_CENTS
        net[-1] = _STORY_SEED_DAY_CENTS
    elif story and symbol in _STORY_20D_CENTS:
        w = min(_SB_WINDOW, n)
        idx = range(n - w, n)
        shift = (_STORY_20D_CENTS[symbol] - sum(net[i] for i in idx)) // w
        for i in idx:
            net[i] += shift
        net[-1] += _STORY_20D_CENTS[symbol] - sum(net[i] for i in idx)
    elif story and symbol in _DEFAULT_STOCKS:
        w = min(_SB_WINDOW, n)
        excess = sum(net[n - w:]) - round(_STORY_OTHERS_CAP_CENTS * rng.uniform(0.6, 1.0))
        if excess > 0:
            for i in range(n - w, n):
                net[i] -= excess // w + 1
    gross_c = [abs(x) + round(gross * rng.uniform(0.6, 1.3) * 100) for x in net]
    noise = []
    for i in range(n):
        if i < n - 1 and rng.random() < 0.4:  # ticks are not exact; the daily record is the truth
            noise.append((1.0 + rng.uniform(-0.002, 0.002), 1.0 + rng.uniform(-0.002, 0.002)))
        else:
            noise.append((1.0, 1.0))
    return _SbPlan(net, gross_c, noise)


# --------------------------------------------------------------------------- intraday generation


def _poisson_offsets(rand: Callable[[], float], span: int, interval_ms: float) -> list[float]:
    """Arrival offsets of a Poisson clock over ``[0, span)`` trading ms (at least one arrival)."""
    log = math.log
    out: list[float] = []
    append = out.append
    t = -log(1.0 - rand()) * interval_ms
    while t < span:
        append(t)
        t -= log(1.0 - rand()) * interval_ms
    return out or [span / 2]


def _etf_day(
    rng: random.Random, symbol: str, session: DaySession, prev_close: int, close: int,
    turnover_target: float, interval_ms: float, cap: int | None = None, bump: float = 0.0,
    front: tuple[int, float] | None = None, orders: tuple[random.Random, float] | None = None,
) -> tuple[list[Event], dict[str, int]]:
    """One ETF-day of trades: a Poisson clock, a bid/ask bounce around a Brownian bridge to ``close``,
    heavy-tailed sizes scaled to hit ``turnover_target``. Returns events and integer totals.
    ``orders`` (a stream of its own, mean fills per aggressor order) adds the order ids afterwards.

    Hot path (~500k trades per default run): uniform draws only, locals, no helper calls per trade.
    """
    rand = rng.random
    offsets = _poisson_offsets(rand, session.trading_ms, interval_ms)
    n = len(offsets)

    # Mid price in ticks: Brownian bridge (uniform increments) from the open to close + 0.5,
    # so the last sell prints at the close and the last buy one tick above.
    open_mid = prev_close + rng.randint(-3, 3) + 0.5
    step = max(0.15, close * 0.012 / math.sqrt(n)) * math.sqrt(12.0)
    walk = [0.0] * n
    x = 0.0
    for i in range(n):
        x += (rand() - 0.5) * step
        walk[i] = x
    drift = (close + 0.5 - open_mid - walk[-1]) / n
    floor = math.floor
    prices = [0] * n
    buys = [False] * n
    weights = [0.0] * n
    buy_bias = 0.5 + (0.08 if close > prev_close else -0.08 if close < prev_close else 0.0)
    peak = max(1, n // 25)  # the story's push: up over the first 4% of trades, faded by 40%
    for i in range(n):
        mid = open_mid + drift * (i + 1) + walk[i]
        if bump:
            mid += bump * (i / peak if i < peak else max(0.0, 1.0 - (i - peak) / (0.36 * n)))
        b = rand() < buy_bias
        p = floor(mid) + 1 if b and mid != floor(mid) else floor(mid)
        prices[i] = p if p > 1 else 1
        buys[i] = b
        weights[i] = 1.0 / (rand() + 0.05)  # sizes from ~1x to 20x the typical lot count
    prices[-1] = close
    if cap is not None:
        prices = [p if p < cap else cap for p in prices]
    if front is not None:
        span, factor = front
        for i in range(n):
            if offsets[i] < span:
                weights[i] *= factor

    # Volumes: round lots (2% odd lots) scaled to the target turnover, residual on the biggest trade.
    k = turnover_target * 10.0 / sum(p * w for p, w in zip(prices, weights, strict=True))
    vols = [0] * n
    for i in range(n):
        lots = round(weights[i] * k)
        vols[i] = (lots if lots > 0 else 1) * 100 + (rng.randint(1, 99) if rand() < 0.02 else 0)
    got_mills = sum(p * v for p, v in zip(prices, vols, strict=True))
    big = max(range(n), key=vols.__getitem__)
    vols[big] = max(100, vols[big] + round((turnover_target * 1000.0 - got_mills) / prices[big] / 100) * 100)

    prefix = f"{symbol}-{session.date.strftime('%Y%m%d')}-"
    open_ms = session.open_ms
    if session.break_start_ms is not None and session.break_end_ms is not None:
        morning, resume = session.break_start_ms - open_ms, session.break_end_ms
    else:
        morning, resume = 1 << 62, 0
    events: list[Event] = []
    append = events.append
    turnover = volume = buy = sell = 0
    prev_p = -1
    for i in range(n):
        p = prices[i]
        v = vols[i]
        m = p * v  # mills of CNY
        cents = m // 10 if m % 10 == 0 else _round_half_even_div(m, 10)
        t = int(offsets[i])
        b = buys[i]
        ev: Event = {"kind": "trade", "symbol": symbol, "ts": open_ms + t if t < morning else resume + t - morning,
                     "price": p / 1000, "volume": v, "amount": cents / 100}
        # Omit the side only where the tick rule (vs the previous trade) recovers it unambiguously.
        if not (prev_p >= 0 and p != prev_p and b == (p > prev_p) and rand() < 0.2):
            ev["side"] = "B" if b else "S"
        ev["trade_id"] = f"{prefix}{i + 1:06d}"
        append(ev)
        turnover += cents
        volume += v
        if b:
            buy += cents
        else:
            sell += cents
        prev_p = p
    if orders is not None:
        _order_ids(orders[0], events, buys, orders[1])
    return events, {"turnover": turnover, "volume": volume, "buy": buy, "sell": sell, "last": prices[-1],
                    "open": prices[0], "high": max(prices), "low": min(prices)}


def _sb_ticks(
    rng: random.Random, symbol: str, channel: str, session: DaySession, buy_cents: int, sell_cents: int,
    interval_ms: float, seq: int,
) -> list[Event]:
    """Incremental ticks of one stock on one connect channel whose sums are exactly the given cents."""
    rand = rng.random
    offsets = _poisson_offsets(rand, session.trading_ms, interval_ms)
    buys = _split_cents(buy_cents, [rand() + 0.05 for _ in offsets])
    sells = _split_cents(sell_cents, [rand() + 0.05 for _ in offsets])
    wall = session.wall_ms
    out: list[Event] = []
    for off, b, s in zip(offsets, buys, sells, strict=True):
        seq += 1
        out.append({"kind": "southbound", "symbol": symbol, "ts": wall(off), "channel": channel,
                    "buy_hkd": b / 100, "sell_hkd": s / 100, "seq": seq})
    return out


def _order_ids(rng: random.Random, trades: list[Event], buys: list[bool], fill_mean: float) -> None:
    """Add ``buy_order_id`` / ``sell_order_id`` to one symbol-day of trades (in place).

    Order numbers are integers increasing through the day (with gaps: orders that never trade
    here). A trade's aggressor order (the buy order of a buyer-initiated trade) fills a
    geometric number of that side's trades, mean ``fill_mean``, so its cumulative amount can
    cross the order-size bounds; the resting orders it meets are numbered before it (they were
    in the book first), and a resting order is sometimes filled by two fills in a row.
    """
    rand = rng.random
    log = math.log
    cont = 1.0 - 1.0 / fill_mean if fill_mean > 1.0 else 0.0  # P(one more fill)
    log_cont = log(cont) if cont > 0.0 else 0.0
    next_id = rng.randrange(10_000, 100_000)
    # per side (True = buy): [aggressor id, passive ids still to fill]
    open_orders: dict[bool, tuple[int, list[int]]] = {}
    for ev, b in zip(trades, buys, strict=True):
        cur = open_orders.get(b)
        if cur is None or not cur[1]:
            fills = 1 + int(log(1.0 - rand()) / log_cont) if log_cont else 1
            passive: list[int] = []
            for k in range(fills):
                if k and rand() < 0.25:
                    passive.append(passive[-1])
                else:
                    next_id += 1 + int(-log(1.0 - rand()) * 6.0)
                    passive.append(next_id)
            next_id += 1 + int(-log(1.0 - rand()) * 6.0)
            passive.reverse()  # popped from the end: the oldest resting order first
            cur = open_orders[b] = (next_id, passive)
        aggressor, other = cur[0], cur[1].pop()
        if b:
            ev["buy_order_id"], ev["sell_order_id"] = aggressor, other
        else:
            ev["buy_order_id"], ev["sell_order_id"] = other, aggressor


def _grid(session: DaySession, step_ms: int) -> list[int]:
    """Times every ``step_ms`` from the open to the close (both included), none inside the lunch break."""
    out = list(range(session.open_ms, session.close_ms + 1, step_ms))
    bs, be = session.break_start_ms, session.break_end_ms
    if bs is not None and be is not None:
        out = [t for t in out if not bs < t < be]
    return out


def _iopv_events(
    rng: random.Random, symbol: str, session: DaySession, trades: list[Event], prev_close: int,
    center: float, band: float,
) -> list[Event]:
    """IOPVs every 15 s: the recent trade prices (mean of the last three, the bid/ask bounce
    smoothed) divided by 1 + a premium that wanders around ``center`` within ``center ± band``."""
    gauss = rng.gauss
    premium = center + gauss(0.0, band / 3)
    keep = 0.97  # per 15 s: the premium drifts over minutes, not seconds
    shock = band / 3 * math.sqrt(1.0 - keep * keep)
    lo, hi = center - band, center + band
    recent = [prev_close]
    i, n = 0, len(trades)
    out: list[Event] = []
    for t in _grid(session, _IOPV_STEP_MS):
        while i < n and trades[i]["ts"] <= t:
            recent.append(round(trades[i]["price"] * 1000))
            i += 1
        if len(recent) > 3:
            del recent[:-3]
        premium = center + (premium - center) * keep + gauss(0.0, shock)
        premium = lo if premium < lo else hi if premium > hi else premium
        ref = sum(recent) / len(recent)  # mills
        iopv = max(1, round(ref * 10 / (1.0 + premium)))  # 0.0001 CNY, as exchanges publish it
        out.append({"kind": "iopv", "symbol": symbol, "ts": t, "iopv": iopv / 10_000})
    return out


def _quota_events(
    session: DaySession, channel: str, flows: list[tuple[int, int]], scale: float, rest_cny: float,
) -> list[Event]:
    """The channel's quota balance every minute: the daily quota less the net buying so far, which is
    the simulated stocks' (``flows``: (ts, net HKD cents), sorted) in CNY times ``scale`` plus the
    rest of the market's ``rest_cny`` for the day, spent front-loaded (1 - (1 - x)^3 of it after a
    fraction x of the session); kept within [0, quota]."""
    quota = _QUOTA_CNY
    num, den = _HKD_CNY
    total = session.trading_ms
    bs, be = session.break_start_ms, session.break_end_ms
    out: list[Event] = []
    i, n, net = 0, len(flows), 0
    for t in _grid(session, _QUOTA_STEP_MS):
        while i < n and flows[i][0] <= t:
            net += flows[i][1]
            i += 1
        elapsed = t - session.open_ms
        if bs is not None and be is not None and t >= be:
            elapsed -= be - bs
        spent = 1.0 - (1.0 - elapsed / total) ** 3  # front-loaded: most buy orders come in the morning
        used = round(net * num * scale / den / 100 + rest_cny * spent)
        balance = quota - used
        balance = 0 if balance < 0 else quota if balance > quota else balance
        out.append({"kind": "southbound_quota", "channel": channel, "ts": t, "quota_cny": quota,
                    "balance_cny": balance})
    return out


def _dec_cents(c: int) -> Decimal:
    """Integer cents as an exact Decimal amount."""
    return Decimal(c).scaleb(-2)


class Simulation:
    """One run of a scenario: iterate :meth:`events`; :attr:`truth` fills in as days are produced."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.mainland, self.sb_days = trading_days(scenario)
        self.truth: dict[str, dict[str, Any]] = {
            "etf": {s: {} for s in scenario.etfs},
            "units": {s: {} for s in scenario.etfs},
            "southbound": {s: {} for s in scenario.southbound},
            "southbound_ticks": {s: {} for s in scenario.southbound},
            "bars": {s: {} for s in scenario.etfs},
        }

    def events(self) -> Iterator[Event]:
        """All events, day by day, in non-decreasing event time (units at the SH close, dailies at the HK close).

        Besides trades (with order ids), units and southbound ticks and dailies: IOPVs every 15 s
        and the southbound quota balance every minute, unless the scenario turns them off.
        """
        sc = self.scenario
        n = len(self.mainland)
        etf_plans = {s: _plan_etf(sc, s, n) for s in sc.etfs}
        sb_plans = {s: _plan_southbound(sc, s, self.sb_days) for s in sc.southbound}
        sb_index = {d.date: i for i, d in enumerate(self.sb_days)}
        seqs = {(s, ch): 0 for s in sc.southbound for ch in ("SH", "SZ")}
        trade_ms = sc.trade_interval_s * 1000.0
        tick_ms = sc.tick_interval_s * 1000.0
        ts_key = itemgetter("ts")
        t_etf, t_units = self.truth["etf"], self.truth["units"]
        t_sb, t_ticks = self.truth["southbound"], self.truth["southbound_ticks"]
        yield from self._history(etf_plans)
        story_etf = _STORY_ETF if sc.story else None

        for di, sess in enumerate(self.mainland):
            iso = sess.date.isoformat()
            ymd = sess.date.strftime("%Y%m%d")
            timed: list[Event] = []
            units: list[Event] = []
            for sym in sc.etfs:
                plan = etf_plans[sym]
                prev_close = plan.closes[di - 1] if di else plan.closes[0]
                extra: dict[str, Any] = {}
                if sym == story_etf and n > 2:  # prior highs stay below the seed day's early push
                    extra = ({"bump": _STORY_BUMP_TICKS, "front": _STORY_FRONT} if di == n - 1
                             else {"cap": _STORY_CAP_MILLS})
                orders = (_rng(sc, "orders", sym, ymd), sc.order_fill_mean) if sc.order_ids else None
                evs, tot = _etf_day(_rng(sc, "trades", sym, ymd), sym, sess, prev_close, plan.closes[di],
                                    plan.turnover[di], trade_ms, orders=orders, **extra)
                timed.extend(evs)
                if sc.iopv:
                    irng = _rng(sc, "iopv", sym, ymd)
                    center, band = (_STORY_PREMIUM if sym == story_etf
                                    else (irng.uniform(-0.001, 0.001), _PREMIUM_BAND - 0.001))
                    timed.extend(_iopv_events(irng, sym, sess, evs, prev_close, center, band))
                t_etf[sym][iso] = {"turnover": _dec_cents(tot["turnover"]), "volume": tot["volume"],
                                   "last_price": Decimal(tot["last"]).scaleb(-3),
                                   "buy": _dec_cents(tot["buy"]), "sell": _dec_cents(tot["sell"]),
                                   "open": Decimal(tot["open"]).scaleb(-3), "high": Decimal(tot["high"]).scaleb(-3),
                                   "low": Decimal(tot["low"]).scaleb(-3)}
                nav = Decimal(plan.navs[di]).scaleb(-4)
                inflow = (plan.shares[di] - plan.shares[di - 1]) * nav if di else None
                units.append({"kind": "units", "symbol": sym, "date": iso,
                              "shares_outstanding": plan.shares[di], "nav": plan.navs[di] / 10_000})
                t_units[sym][iso] = {"shares_outstanding": plan.shares[di], "nav": nav, "inflow": inflow}

            dailies: list[Event] = []
            hk = None
            si = sb_index.get(sess.date)
            if si is not None:
                hk = self.sb_days[si]
                last_day = sess.date == sc.end_date
                channel_flows: dict[str, list[tuple[int, int]]] = {"SH": [], "SZ": []}
                for sym in sc.southbound:
                    sp = sb_plans[sym]
                    net, gross = sp.net_cents[si], sp.gross_cents[si]
                    buy = (gross + net) // 2
                    sell = buy - net
                    nb, ns = sp.tick_noise[si]
                    tb, ts_ = round(buy * nb), round(sell * ns)
                    rng = _rng(sc, "ticks", sym, ymd)
                    sh_share = rng.uniform(0.45, 0.65)
                    b_sh, s_sh = round(tb * sh_share), round(ts_ * sh_share)
                    for ch, b, s in (("SH", b_sh, s_sh), ("SZ", tb - b_sh, ts_ - s_sh)):
                        evs = _sb_ticks(rng, sym, ch, hk, b, s, tick_ms, seqs[(sym, ch)])
                        seqs[(sym, ch)] = evs[-1]["seq"]
                        timed.extend(evs)
                        if sc.quota:
                            channel_flows[ch].extend(
                                (e["ts"], round(e["buy_hkd"] * 100) - round(e["sell_hkd"] * 100)) for e in evs)
                    t_ticks[sym][iso] = _dec_cents(tb - ts_)
                    if last_day:
                        t_sb[sym][iso] = _dec_cents(tb - ts_)
                    else:
                        t_sb[sym][iso] = _dec_cents(buy - sell)
                        dailies.append({"kind": "southbound_daily", "symbol": sym, "date": iso,
                                        "buy_hkd": buy / 100, "sell_hkd": sell / 100})
                if sc.quota:
                    timed.extend(self._quota_day(hk, channel_flows, last_day))

            timed.sort(key=ts_key)  # per-stream runs are already sorted: timsort merges them cheaply
            # Date-only records go where their market closes (an HK half day closes before Shanghai).
            marks = [(sess.close_ms, 0, units)]
            if hk is not None:
                marks.append((hk.close_ms, 1, dailies))
            marks.sort(key=itemgetter(0, 1))
            pos = 0
            for close_ms, _, recs in marks:
                cut = bisect.bisect_left(timed, close_ms, lo=pos, key=ts_key)
                yield from timed[pos:cut]
                yield from recs
                pos = cut
            yield from timed[pos:]


    def _quota_day(self, hk: DaySession, flows: dict[str, list[tuple[int, int]]], last_day: bool) -> list[Event]:
        """Both channels' quota balances of one southbound day (``flows``: (ts, net HKD cents) per channel).

        A synthetic market is the whole channel: its net buying alone uses the quota. The story's
        eight stocks are not: they count ``_STORY_QUOTA_SCALE`` times, and the rest of the market
        adds what brings the day's close to a planned used ratio (on the seed day 82.5% for SH,
        55% for SZ), spent front-loaded as the real balance is (most of it in the morning).
        """
        sc = self.scenario
        out: list[Event] = []
        if sc.story:
            rng = _rng(sc, "quota", hk.date.isoformat())
            sh = _STORY_QUOTA_USED[0] if last_day else rng.uniform(0.2, 0.6)
            targets = {"SH": sh, "SZ": _STORY_QUOTA_USED[1] if last_day else sh * rng.uniform(0.6, 1.0)}
        num, den = _HKD_CNY
        for ch in ("SH", "SZ"):
            day_flows = flows[ch]
            day_flows.sort()
            if sc.story:
                scale = _STORY_QUOTA_SCALE
                net_cny = sum(f[1] for f in day_flows) * num * scale / den / 100
                rest = targets[ch] * _QUOTA_CNY - net_cny
            else:
                scale, rest = 1.0, 0.0
            out.extend(_quota_events(hk, ch, day_flows, scale, rest))
        return out

    def _history(self, etf_plans: dict[str, _EtfPlan]) -> Iterator[Event]:
        """Daily bars of every ETF for the ``history_days`` before the first day of ticks, oldest first."""
        sc = self.scenario
        days = history_days(sc)
        if not days:
            return
        plan_days = _history_dates(sc)
        per_symbol: dict[str, list[Event]] = {}
        for sym in sc.etfs:
            plan = etf_plans[sym]
            rng = _rng(sc, "bars", sym)
            prof = _ETF_PROFILES.get(sym)
            story = sc.story and sym == _STORY_ETF and len(plan.closes) > 2
            if story:
                closes = _story_closes(sc, len(plan.closes))[0]
                lo_to, hi_to = _STORY_BAR_TURNOVER
            else:
                closes = _reflect_walk(rng, plan.closes[0], _HISTORY_PLAN, 0.0004, 0.012, 1 << 40)
                lo_to, hi_to = prof.turnover if prof else (min(plan.turnover), max(plan.turnover))
            shares = [0] * _HISTORY_PLAN
            cur = plan.shares[0]
            for i in range(_HISTORY_PLAN - 1, -1, -1):  # walk back: the ETF grew into its size
                cur = max(1_000_000, cur - round(abs(rng.gauss(0.0012, 0.002)) * cur / 100) * 100)
                shares[i] = cur
            events = []
            prev = closes[0]
            for i, day in enumerate(plan_days):
                c = closes[i]
                o = max(1, prev + rng.randint(-3, 3))
                hi = max(o, c) + rng.randint(0, max(1, c // 120))
                lo = max(1, min(o, c) - rng.randint(0, max(1, c // 120)))
                if story:
                    hi = min(hi, _STORY_CAP_MILLS - 1)
                prev = c
                amount_cents = round(rng.uniform(lo_to, hi_to) * 100)
                vwap = (hi + lo + 2 * c) / 4  # mills
                volume = max(100, round(amount_cents * 10 / vwap / 100) * 100)
                nav = max(1, round(c * 10 * (1.0 + rng.gauss(0.0, 0.0015))))
                if day < days[0]:
                    continue
                iso = day.isoformat()
                ev = {"kind": "bar", "symbol": sym, "date": iso, "open": o / 1000, "high": hi / 1000, "low": lo / 1000,
                      "close": c / 1000, "volume": volume, "amount": amount_cents / 100,
                      "shares": shares[i], "nav": nav / 10_000}
                events.append(ev)
                self.truth["bars"][sym][iso] = {
                    "open": Decimal(o).scaleb(-3), "high": Decimal(hi).scaleb(-3), "low": Decimal(lo).scaleb(-3),
                    "close": Decimal(c).scaleb(-3), "volume": volume, "amount": _dec_cents(amount_cents),
                    "shares": shares[i], "nav": Decimal(nav).scaleb(-4)}
            per_symbol[sym] = events
        for i in range(len(days)):  # by date, every ETF's bar of a day together
            for sym in sc.etfs:
                yield per_symbol[sym][i]


def generate(scenario: Scenario | None = None) -> Iterator[Event]:
    """All events of all days in non-decreasing event time; identical for the same scenario."""
    return Simulation(scenario or Scenario()).events()


def truth(scenario: Scenario | None = None) -> dict[str, dict[str, Any]]:
    """Totals the simulator computed while generating (Decimal money), to assert consumers against.

    ``etf[sym][date]``: turnover, volume, last_price, buy, sell (side-initiated amounts; a trade
    without a side is one the tick rule classifies unambiguously). ``units[sym][date]``:
    shares_outstanding, nav, inflow (None on the first record). ``southbound[sym][date]``: net buy,
    from the daily record if one is published, else the tick sum; ``southbound_ticks``: tick sums.
    """
    sim = Simulation(scenario or Scenario())
    for _ in sim.events():
        pass
    return sim.truth


async def paced(
    events: Iterable[Event] | AsyncIterable[Event],
    speed: float,
    clock: Callable[[], float] = time.monotonic,
    *,
    realtime_from_ms: int | None = None,
    max_gap_s: float | None = None,
    sleep: Callable[[float], Any] = asyncio.sleep,
    batch: int = 500,
) -> AsyncIterator[Event]:
    """Yield events at ``speed`` x event time, so a replay looks like a live feed.

    ``speed <= 0`` or ``inf``: as fast as possible, yielding control every ``batch`` events.
    Events before ``realtime_from_ms`` (history) and events without an epoch-ms ``ts`` (units,
    dailies) go out without waiting. ``max_gap_s`` caps any single wait (lunch breaks, nights)
    in real seconds. ``sleep`` is injectable so tests can run on a fake clock.
    """
    fast = speed <= 0 or math.isinf(speed)
    anchor_ts: int | None = None
    anchor_clock = 0.0
    prev_ts: int | None = None
    count = 0

    async def _iter() -> AsyncIterator[Event]:
        if hasattr(events, "__aiter__"):
            async for e in events:
                yield e
        else:
            for e in events:
                yield e

    async for ev in _iter():
        ts = ev.get("ts")
        if fast or not isinstance(ts, int) or (realtime_from_ms is not None and ts < realtime_from_ms):
            count += 1
            if count % batch == 0:
                await sleep(0)
            yield ev
            continue
        if anchor_ts is None:
            anchor_ts, anchor_clock = ts, clock()
        elif max_gap_s is not None and prev_ts is not None and (ts - prev_ts) / 1000 / speed > max_gap_s:
            # Pretend the gap was max_gap_s: move the anchor so later events keep their spacing.
            anchor_clock -= (ts - prev_ts) / 1000 / speed - max_gap_s
        prev_ts = ts
        delay = anchor_clock + (ts - anchor_ts) / 1000 / speed - clock()
        if delay > 0:
            await sleep(delay)
        else:
            count += 1
            if count % batch == 0:
                await sleep(0)
        yield ev
