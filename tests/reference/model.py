"""An independent reference model of the issue-4 rules (exact fund-flow computations).

Written from the rules of the issue, not from the production code: it imports
nothing from ``consumers`` or ``monitor``. Trading days come straight from
exchange-calendars (XSHG for .SH and .SZ, XHKG for .HK), money is Decimal,
ratios are Fractions until the very end. The model is deliberately naive:
it keeps every event and recomputes each figure from the whole set when the
report is asked for, so what it computes is easy to read against the rules.

``Model(closures, grace_seconds).run(events)`` takes the tape as a list of
event dicts (exactly the NDJSON lines of ``fundflow replay``), in arrival
order, and returns the document ``fundflow replay --report json`` prints.

Readings of the rules where the issue leaves a choice (each is also what the
service does, and the tests pin it):

- The current trading day of a market is the latest trading day on or before
  the later of the clock's date and the latest date of a units or
  southbound-daily record (date-only records carry no time of day).
- ``prev_turnover`` is null while no trade of the symbol is known on or before
  the previous trading day (the symbol's history does not reach back that
  far); once it does, a previous day without trades has turnover 0, and the
  ratios to 0 are null.
- The volume ratio needs the 5 previous trading days to lie inside the known
  history (on or after the symbol's first trade day); their average per
  minute is their total volume over their total trading minutes.
- The tick rule's "last different price": the prices of the day in arrival
  order, preceded by the previous session's last price when the first trade
  of the day arrives; a trade compares with the latest of those that differs
  from its own price.
- Re-sent units / southbound-daily records identical to the current one are
  duplicates too; trade and tick duplicates are the rules' keys.
- A southbound day of a stock is closed for the streak when its daily record
  arrived or the clock is past the HKEX session end (cut at the mainland
  closure time when every open mainland exchange closed early that day).
- Only rejections the rules imply are modelled: ``outside_session`` for an
  event not on a trading day of its market (for a southbound tick: HKEX and
  the mainland exchange of its channel), or further than the session margin
  (default 60 min) outside its session; ``too_late`` for a trade or tick whose
  exchange day is before the last ``max_late_sessions + 1`` trading days of its
  market (southbound days for ticks) on or before the clock's date. The model
  reads one ordered stream, so its clock is the stream's.

The flows rules (order classes, IOPV premium, southbound quota, sectors) are
modelled from the issue text only; the readings taken where it leaves a choice:

- Order classes: the aggressor of a trade is its buy order for side B and its
  sell order for side S, the side being the field's or the tick rule's (above).
  An order's cumulative is kept per (symbol, exchange day of the trade, order
  id) -- the key has no side, as written -- over the applied trades (not
  rejected, not duplicates) in which it is the aggressor, in apply order, this
  trade included. Without an aggressor id a trade is classed by its own amount;
  a trade without a side has no class (it counts in turnover only). Classes
  and ``main`` use the active net inflow's windows; a class without trades in
  a window is 0, null only where the net inflow is null. ``main_ratio_1d`` is
  null when today's turnover is 0 (or there is no current day).
- IOPV and southbound quota records (an IOPV makes its ETF known): the latest of today by event time wins,
  equal event times going to the later arrival. One identical to the record
  held (IOPV: the symbol's latest; quota: the channel-day's latest), or older
  than it by event time, changes nothing and counts as a duplicate. They are not late and never too late; like every timed event, one
  applied moves the clock (the greatest event time).
- Channel net buy: the ticks of the channel only (a daily record has no
  channel), 1d/5d/20d southbound days; 0 when no tick, null with no current day.
- Sectors: every sector of the map is listed; ``symbols`` counts its symbols
  that have an ETF or a southbound part; a null window value adds 0; the top
  symbol is the ETF with the largest active net inflow when the sector has an
  ETF with data, else the stock with the largest net buy, ties to the first
  symbol by name, null without symbols; rows sorted by ETF net inflow desc,
  southbound net buy desc, sector name. Symbols not in the map are in no sector.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from itertools import pairwise
from typing import Any

UTC8 = dt.timezone(dt.timedelta(hours=8))
INTRADAY = (("1m", 60), ("5m", 300), ("15m", 900), ("1h", 3600))
MULTI = (("1d", 1), ("5d", 5), ("20d", 20))
CODES = {"SH": "XSHG", "SZ": "XSHG", "HK": "XHKG"}
CLASSES = ("small", "medium", "large", "super_large")
MAIN = ("large", "super_large")
CHANNELS = ("SH", "SZ")


# --------------------------------------------------------------------------- time helpers
def ts_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("ts")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value // 1)
    when = dt.datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC8)
    return round(when.timestamp() * 1000)


def exchange_date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, UTC8).date()


def exchange_ms(day: dt.date, hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":")[:2])
    return int(dt.datetime(day.year, day.month, day.day, h, m, tzinfo=UTC8).timestamp() * 1000)


def seconds_of_day(ms: int) -> int:
    t = dt.datetime.fromtimestamp(ms // 1000, UTC8)
    return t.hour * 3600 + t.minute * 60 + t.second


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, UTC8).isoformat(timespec="milliseconds")


def dec(value: Any) -> Decimal:
    """A JSON number as the decimal it was written as."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


# --------------------------------------------------------------------------- calendars
@lru_cache(maxsize=4)
def _schedule(code: str) -> dict[dt.date, tuple[tuple[int, int], ...]]:
    """date -> trading intervals [start, end) in epoch ms (morning and afternoon, or one)."""
    import exchange_calendars as xcals

    sched = xcals.get_calendar(code, start="2020-01-02").schedule
    out = {}
    for day, row in sched.iterrows():
        o, c = row["open"].value // 1_000_000, row["close"].value // 1_000_000
        bs, be = row["break_start"], row["break_end"]
        if bs is None or bs != bs:  # NaT: no lunch break (half day)
            out[day.date()] = ((o, c),)
        else:
            out[day.date()] = ((o, bs.value // 1_000_000), (be.value // 1_000_000, c))
    return out


def _clip(intervals: Iterable[tuple[int, int]], until: int) -> tuple[tuple[int, int], ...]:
    return tuple((a, min(b, until)) for a, b in intervals if a < min(b, until))


class Calendars:
    """SH, SZ, HK and SB (southbound) days as {date: intervals}, with configured closures."""

    def __init__(self, closures: Iterable[Any] = ()) -> None:
        rules: dict[tuple[str, dt.date], str | None] = {}
        for c in closures:
            get = c.get if isinstance(c, Mapping) else (lambda k, d=None, c=c: getattr(c, k, d))
            rules[(str(get("market")).upper(), dt.date.fromisoformat(str(get("date"))))] = get("from_time") or None
        self.days: dict[str, dict[dt.date, tuple[tuple[int, int], ...]]] = {}
        for market, code in CODES.items():
            days = {}
            for day, iv in _schedule(code).items():
                if (market, day) in rules:
                    cut = rules[(market, day)]
                    if cut is None:
                        continue  # closed the whole day
                    iv = _clip(iv, exchange_ms(day, cut))
                    if not iv:
                        continue  # closed before the open: no trading that day
                days[day] = iv
            self.days[market] = days
        sb = {}
        for day, iv in self.days["HK"].items():
            mainland = [m for m in ("SH", "SZ") if day in self.days[m]]
            if not mainland:
                continue
            cuts = [rules.get((m, day)) for m in mainland]
            if all(cuts):  # every open mainland exchange stopped early: so does southbound
                iv = _clip(iv, max(exchange_ms(day, c) for c in cuts))  # type: ignore[arg-type]  # all(cuts): no None
                if not iv:
                    continue
            sb[day] = iv
        self.days["SB"] = sb
        self.sorted = {m: sorted(d) for m, d in self.days.items()}

    @staticmethod
    def market(symbol: str) -> str:
        return symbol.rsplit(".", 1)[1]

    def is_day(self, market: str, day: dt.date) -> bool:
        return day in self.days[market]

    def close(self, market: str, day: dt.date) -> int:
        return self.days[market][day][-1][1]

    def open(self, market: str, day: dt.date) -> int:
        return self.days[market][day][0][0]

    def trading_ms(self, market: str, day: dt.date, until: int | None = None) -> int:
        """Trading time of ``day`` up to ``until`` (whole session when None): lunch excluded."""
        total = 0
        for a, b in self.days[market][day]:
            end = b if until is None else min(b, until)
            if end > a:
                total += end - a
        return total

    def at_or_before(self, market: str, day: dt.date) -> dt.date | None:
        days = self.sorted[market]
        i = bisect.bisect_right(days, day)
        return days[i - 1] if i else None

    def previous(self, market: str, day: dt.date) -> dt.date | None:
        days = self.sorted[market]
        i = bisect.bisect_left(days, day)
        return days[i - 1] if i else None

    def last_n(self, market: str, day: dt.date, n: int) -> list[dt.date]:
        """The n trading days ending at ``day`` (included when it trades)."""
        out: list[dt.date] = []
        d = self.at_or_before(market, day)
        while d is not None and len(out) < n:
            out.append(d)
            d = self.previous(market, d)
        return out[::-1]


# --------------------------------------------------------------------------- order classes
def order_id(value: Any) -> str | None:
    """An order number as text (integers as their decimal text), None when absent."""
    return None if value is None else str(value)


def class_of(amount: Decimal, bounds: tuple[Decimal, Decimal, Decimal]) -> str:
    """small < bounds[0] <= medium < bounds[1] <= large < bounds[2] <= super_large."""
    for name, bound in zip(CLASSES, bounds, strict=False):
        if amount < bound:
            return name
    return CLASSES[-1]


def classify_orders(trades: list[dict[str, Any]], bounds: tuple[Decimal, Decimal, Decimal]) -> None:
    """Sets ``cls`` on each applied trade (in apply order): the class of its aggressor order's cumulative
    amount of the day including this trade, of its own amount without an aggressor id, None without a side."""
    cumulative: dict[tuple[str, dt.date, str], Decimal] = defaultdict(Decimal)
    for tr in trades:
        side = tr["side"]
        if side is None:
            tr["cls"] = None
            continue
        aggressor = tr["buy_order_id"] if side == "B" else tr["sell_order_id"]
        if aggressor is None:
            tr["cls"] = class_of(tr["amount"], bounds)
            continue
        key = (tr["symbol"], tr["day"], aggressor)
        cumulative[key] += tr["amount"]
        tr["cls"] = class_of(cumulative[key], bounds)


def _floats(values: Mapping[str, Decimal | None]) -> dict[str, float | None]:
    return {k: None if v is None else float(v) for k, v in values.items()}


# --------------------------------------------------------------------------- the model
class Model:
    def __init__(self, closures: Iterable[Any] = (), grace_seconds: int = 60, session_margin_minutes: int = 60,
                 top: int = 10, calendars: Calendars | None = None, max_late_sessions: int = 1,
                 order_class_bounds: Iterable[Any] = (50_000, 200_000, 1_000_000),
                 sectors: Mapping[str, str] | None = None) -> None:
        self.cal = calendars or Calendars(closures)
        small, medium, large = (dec(b) for b in order_class_bounds)
        assert small <= medium <= large
        self.bounds = (small, medium, large)
        self.sectors = dict(sectors or {})
        self.max_late_sessions = max_late_sessions
        self.grace_ms = grace_seconds * 1000
        self.margin_ms = session_margin_minutes * 60_000
        self.top = top

    # -- intake: validation, duplicates, clock, tick rule (the one order-dependent rule) ----
    def _valid(self, e: Mapping[str, Any]) -> bool:
        kind, sym = e["kind"], e.get("symbol", "")
        market = "SB" if kind in ("southbound", "southbound_daily", "southbound_quota") else self.cal.market(sym)
        if kind in ("units", "southbound_daily"):
            return self.cal.is_day(market, dt.date.fromisoformat(e["date"]))
        t = ts_ms(e["ts"])
        day = exchange_date(t)
        if not self.cal.is_day(market, day):
            return False
        if kind == "southbound" and not self.cal.is_day(e["channel"], day):
            return False  # a southbound day needs the mainland exchange *of the channel* open
        return self.cal.open(market, day) - self.margin_ms <= t <= self.cal.close(market, day) + self.margin_ms

    def run(self, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        rejected: Counter[str] = Counter()
        duplicates = late = 0
        as_of: int | None = None
        latest_date: dt.date | None = None
        seen_trades: set[tuple[str, str]] = set()
        seen_ticks: set[tuple[str, str, int]] = set()
        units: dict[str, dict[dt.date, tuple[Decimal, Decimal]]] = defaultdict(dict)
        dailies: dict[str, dict[dt.date, Decimal]] = defaultdict(dict)
        daily_recs: dict[tuple[str, dt.date], tuple[Decimal, Decimal]] = {}
        trades: list[dict[str, Any]] = []  # applied trades with their side
        ticks: list[dict[str, Any]] = []
        arrived: dict[tuple[str, dt.date], list[Decimal]] = defaultdict(list)  # tick rule: prices in arrival order
        last_known: dict[tuple[str, dt.date], tuple[int, int, str, Decimal]] = {}  # (sym, day) -> max trade key + price
        iopvs: list[dict[str, Any]] = []  # accepted IOPV records in arrival order
        quotas: list[dict[str, Any]] = []  # accepted southbound quota records in arrival order
        latest_iopv: dict[str, dict[str, Any]] = {}  # symbol -> its latest IOPV (event time, then arrival)
        latest_quota: dict[tuple[str, dt.date], dict[str, Any]] = {}  # (channel, day) -> its latest record

        self.too_late_at: list[int] = []  # positions of the events refused as too_late
        for i, e in enumerate(events):
            if not self._valid(e):
                rejected["outside_session"] += 1
                continue
            kind, sym = e["kind"], e.get("symbol", "")
            if kind == "iopv":
                t = ts_ms(e["ts"])
                rec = {"symbol": sym, "ts": t, "day": exchange_date(t), "iopv": dec(e["iopv"]), "arrival": i}
                latest = latest_iopv.get(sym)
                if latest is not None and ((latest["ts"], latest["iopv"]) == (t, rec["iopv"]) or t < latest["ts"]):
                    duplicates += 1  # the same as the record held, or older: changes nothing
                else:
                    iopvs.append(rec)
                    if latest is None or t >= latest["ts"]:
                        latest_iopv[sym] = rec
                    as_of = t if as_of is None or t > as_of else as_of  # a timed event: the clock moves
                continue
            if kind == "southbound_quota":
                t = ts_ms(e["ts"])
                rec = {"channel": e["channel"], "ts": t, "day": exchange_date(t), "arrival": i,
                       "quota": dec(e["quota_cny"]), "balance": dec(e["balance_cny"])}
                qkey = (rec["channel"], rec["day"])
                latest = latest_quota.get(qkey)
                if latest is not None and (all(latest[k] == rec[k] for k in ("ts", "quota", "balance"))
                                           or t < latest["ts"]):
                    duplicates += 1  # the same as the channel-day's record held, or older: changes nothing
                else:
                    quotas.append(rec)
                    if latest is None or t >= latest["ts"]:
                        latest_quota[qkey] = rec
                    as_of = t if as_of is None or t > as_of else as_of  # a timed event: the clock moves
                continue
            if kind == "units":
                day, rec = dt.date.fromisoformat(e["date"]), (dec(e["shares_outstanding"]), dec(e["nav"]))
                if units[sym].get(day) == rec:
                    duplicates += 1
                    continue
                units[sym][day] = rec
                latest_date = day if latest_date is None or day > latest_date else latest_date
                continue
            if kind == "southbound_daily":
                day, net = dt.date.fromisoformat(e["date"]), dec(e["buy_hkd"]) - dec(e["sell_hkd"])
                rec2 = (dec(e["buy_hkd"]), dec(e["sell_hkd"]))
                if daily_recs.get((sym, day)) == rec2:
                    duplicates += 1
                    continue
                daily_recs[(sym, day)] = rec2
                dailies[sym][day] = net
                latest_date = day if latest_date is None or day > latest_date else latest_date
                continue
            t = ts_ms(e["ts"])
            if as_of is not None:
                market = "SB" if kind == "southbound" else self.cal.market(sym)
                accepted = self.cal.last_n(market, exchange_date(as_of), self.max_late_sessions + 1)
                if accepted and exchange_date(t) < accepted[0]:
                    rejected["too_late"] += 1
                    self.too_late_at.append(i)
                    continue
            if kind == "trade":
                key = (sym, str(e["trade_id"]))
                if key in seen_trades:
                    duplicates += 1
                    continue
                seen_trades.add(key)
            else:
                key3 = (sym, e["channel"], int(e["seq"]))
                if key3 in seen_ticks:
                    duplicates += 1
                    continue
                seen_ticks.add(key3)
            if as_of is not None and as_of - t > self.grace_ms:
                late += 1
            as_of = t if as_of is None or t > as_of else as_of
            day = exchange_date(t)
            if kind == "southbound":
                ticks.append({"symbol": sym, "day": day, "channel": e["channel"],
                              "net": dec(e["buy_hkd"]) - dec(e["sell_hkd"])})
                continue
            price, volume = dec(e["price"]), dec(e["volume"])
            amount = dec(e["amount"]) if e.get("amount") is not None else price * volume
            seq = arrived[(sym, day)]
            if not seq:  # first trade of the day: the previous session's last price, as known now
                prev = self.cal.previous(self.cal.market(sym), day)
                ref = last_known.get((sym, prev)) if prev else None
                if ref is not None:
                    seq.append(ref[3])
            side = e.get("side")
            side = side.upper() if isinstance(side, str) else None
            tick = None
            for q in reversed(seq):
                if q != price:
                    tick = "B" if price > q else "S"
                    break
            seq.append(price)
            tid = str(e["trade_id"])
            order = (t, len(tid), tid)
            if (sym, day) not in last_known or order > last_known[(sym, day)][:3]:
                last_known[(sym, day)] = (*order, price)
            trades.append({"symbol": sym, "day": day, "ts": t, "order": order, "price": price, "volume": volume,
                           "amount": amount, "side": side or tick, "buy_order_id": order_id(e.get("buy_order_id")),
                           "sell_order_id": order_id(e.get("sell_order_id"))})
        self.iopvs, self.quotas, self.trades = iopvs, quotas, trades
        classify_orders(trades, self.bounds)
        return self.report(as_of, latest_date, trades, ticks, units, dailies, rejected, duplicates, late)

    # -- the report: every figure recomputed from the sets ---------------------------------------
    def _current(self, market: str, as_of: int | None, latest_date: dt.date | None) -> dt.date | None:
        ref = exchange_date(as_of) if as_of is not None else None
        if latest_date is not None and (ref is None or latest_date > ref):
            ref = latest_date
        return self.cal.at_or_before(market, ref) if ref is not None else None

    def report(self, as_of, latest_date, trades, ticks, units, dailies, rejected, duplicates, late) -> dict[str, Any]:
        by_sym: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for tr in trades:
            by_sym[tr["symbol"]].append(tr)
        etf_syms = set(by_sym) | {s for s in units if units[s]} | {r["symbol"] for r in self.iopvs}  # an IOPV: an ETF
        sb_ticks: dict[str, dict[dt.date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        for tk in ticks:
            sb_ticks[tk["symbol"]][tk["day"]] += tk["net"]
        sb_syms = set(sb_ticks) | {s for s in dailies if dailies[s]}
        symbols: dict[str, Any] = {}
        self.etf_values: dict[str, dict[str, Any]] = {}  # exact figures per ETF, for the sectors
        self.sb_values: dict[str, dict[str, Decimal | None]] = {}  # exact net buys per stock
        for sym in sorted(etf_syms | sb_syms):
            doc: dict[str, Any] = {}
            if sym in etf_syms:
                doc["etf"] = self._etf(sym, by_sym.get(sym, []), units.get(sym, {}), as_of, latest_date)
            if sym in sb_syms:
                self._last_sb_values: dict[str, Decimal | None] = {n: None for n, _ in MULTI}
                doc["southbound"] = self._sb(sb_ticks.get(sym, {}), dailies.get(sym, {}), as_of, latest_date)
                self.sb_values[sym] = self._last_sb_values
            symbols[sym] = doc
        ranking = []
        cur = self._current("SB", as_of, latest_date)
        if cur is not None:
            for sym in sb_syms:
                total = sum((self._sb_net(sb_ticks.get(sym, {}), dailies.get(sym, {}), d) or Decimal(0)
                             for d in self.cal.last_n("SB", cur, 20)), Decimal(0))
                ranking.append((-total, sym))
        ranking.sort()
        self.quota = self._quota(ticks, as_of, latest_date)
        self.sector_rows = {name: self._sectors(name, etf_syms, sb_syms) for name, _ in MULTI}
        return {
            "as_of": iso(as_of) if as_of is not None else None,
            "symbols": symbols,
            "top_southbound_20d": [[s, float(-neg)] for neg, s in ranking[: self.top]],
            "sectors": {name: [{"sector": r["sector"], "symbols": r["symbols"],
                                "etf_net_inflow_cny": float(r["etf_net_inflow"]),
                                "etf_main_net_inflow_cny": float(r["etf_main_net_inflow"]),
                                "southbound_net_buy_hkd": float(r["southbound_net_buy"]),
                                "top_symbol": r["top_symbol"]} for r in rows]
                        for name, rows in self.sector_rows.items()},
            "southbound_quota": self.quota_doc()["channels"],
            "rejected": dict(sorted(rejected.items())),
            "duplicates": duplicates,
            "late": late,
        }

    def _windows(self, market: str, signed: list[tuple[dict[str, Any], Decimal]], as_of: int | None,
                 cur: dt.date | None) -> dict[str, Decimal | None]:
        """Signed amounts summed per window: 1m..1h by event time (the trade's second after now - width),
        1d/5d/20d over the market's trading days ending today."""
        out: dict[str, Decimal | None] = {}
        for name, width in INTRADAY:
            if as_of is None:
                out[name] = None
            else:
                now_s = as_of // 1000
                out[name] = sum((v for tr, v in signed if tr["ts"] // 1000 > now_s - width), Decimal(0))
        day_net: dict[dt.date, Decimal] = defaultdict(Decimal)
        for tr, v in signed:
            day_net[tr["day"]] += v
        for name, n in MULTI:
            out[name] = sum((day_net[d] for d in self.cal.last_n(market, cur, n)), Decimal(0)) if cur else None
        return out

    def _etf(self, sym, trades, units, as_of, latest_date) -> dict[str, Any]:
        market = self.cal.market(sym)
        cur = self._current(market, as_of, latest_date)
        signed = [(tr, tr["amount"] if tr["side"] == "B" else -tr["amount"] if tr["side"] == "S" else Decimal(0))
                  for tr in trades]
        net = self._windows(market, signed, as_of, cur)
        by_class = {c: self._windows(market, [(tr, v) for tr, v in signed if tr["cls"] == c], as_of, cur)
                    for c in CLASSES}
        main = {w: None if v is None else v + by_class["super_large"][w]  # type: ignore[operator]  # null together
                for w, v in by_class["large"].items()}
        self.etf_values[sym] = {"net_inflow": net, "main_net_inflow": main, "order_net_inflow": by_class}
        doc: dict[str, Any] = {"net_inflow_cny": _floats(net), "creation_net_inflow_cny": self._creation(market, units),
                               "order_net_inflow_cny": {c: _floats(by_class[c]) for c in CLASSES},
                               "main_net_inflow_cny": _floats(main)}

        per_day: dict[dt.date, list[dict[str, Any]]] = defaultdict(list)
        for tr in trades:
            per_day[tr["day"]].append(tr)
        first_day = min(per_day) if per_day else None
        today = per_day.get(cur, []) if cur else []
        prev = self.cal.previous(market, cur) if cur else None
        known_prev = prev is not None and first_day is not None and first_day <= prev
        prev_trades = per_day.get(prev, []) if known_prev else []
        turnover = sum((tr["amount"] for tr in today), Decimal(0))
        prev_turnover = sum((tr["amount"] for tr in prev_trades), Decimal(0)) if known_prev else None
        if not known_prev:
            prev_same = None
        elif as_of is not None and exchange_date(as_of) == cur:
            cut = seconds_of_day(as_of)
            prev_same = sum((tr["amount"] for tr in prev_trades if seconds_of_day(tr["ts"]) <= cut), Decimal(0))
        else:
            prev_same = prev_turnover
        doc["turnover_cny"] = float(turnover) if cur else None
        main_amount = sum((tr["amount"] for tr in today if tr["cls"] in MAIN), Decimal(0))
        doc["main_ratio_1d"] = float(Fraction(main_amount) / Fraction(turnover)) if cur and turnover else None
        doc["prev_turnover_cny"] = None if prev_turnover is None else float(prev_turnover)
        doc["prev_turnover_same_time_cny"] = None if prev_same is None else float(prev_same)
        doc["turnover_vs_prev_session_ratio"] = {
            "full_day": float(Fraction(turnover) / Fraction(prev_turnover)) if prev_turnover else None,
            "same_time": float(Fraction(turnover) / Fraction(prev_same)) if prev_same else None,
        }
        doc["volume_ratio"] = self._volume_ratio(market, cur, per_day, first_day, as_of)
        last = max(today, key=lambda tr: tr["order"])["price"] if today else None
        prev_last = max(prev_trades, key=lambda tr: tr["order"])["price"] if prev_trades else None
        doc["last_price_cny"] = None if last is None else float(last)
        doc["price_change_ratio"] = float(Fraction(last) / Fraction(prev_last) - 1) if last is not None and prev_last else None
        todays = [r for r in self.iopvs if r["symbol"] == sym and cur is not None and r["day"] == cur]
        iopv = max(todays, key=lambda r: (r["ts"], r["arrival"]))["iopv"] if todays else None
        doc["iopv_cny"] = None if iopv is None else float(iopv)
        doc["premium_ratio"] = None if iopv is None or last is None else float(Fraction(last) / Fraction(iopv) - 1)
        if units:
            shares, nav = units[max(units)]
            doc["aum_cny"] = float(shares * nav)
        else:
            doc["aum_cny"] = None
        return doc

    def _creation(self, market: str, units: dict[dt.date, tuple[Decimal, Decimal]]) -> dict[str, Any]:
        if len(units) < 2:  # the first record has no inflow: nothing is defined yet
            return {name: None for name, _ in MULTI}
        dates = sorted(units)
        inflow = {d: (units[d][0] - units[p][0]) * units[d][1] for p, d in pairwise(dates)}
        return {name: float(sum((inflow.get(d, Decimal(0)) for d in self.cal.last_n(market, dates[-1], n)), Decimal(0)))
                for name, n in MULTI}

    def _volume_ratio(self, market, cur, per_day, first_day, as_of) -> float | None:
        if cur is None or first_day is None:
            return None
        before = self.cal.last_n(market, cur, 6)[:-1]  # cur is a trading day: the 5 before it
        if len(before) < 5 or before[0] < first_day:
            return None
        vol5 = sum((tr["volume"] for d in before for tr in per_day.get(d, [])), Decimal(0))
        ms5 = sum(self.cal.trading_ms(market, d) for d in before)
        if as_of is not None and exchange_date(as_of) == cur:
            elapsed = self.cal.trading_ms(market, cur, as_of)
        else:
            elapsed = self.cal.trading_ms(market, cur)
        if not vol5 or not ms5 or elapsed <= 0:
            return None
        vol = sum((tr["volume"] for tr in per_day.get(cur, [])), Decimal(0))
        return float((Fraction(vol) / elapsed) / (Fraction(vol5) / ms5))

    @staticmethod
    def _sb_net(ticks: Mapping[dt.date, Decimal], dailies: Mapping[dt.date, Decimal], day: dt.date) -> Decimal | None:
        if day in dailies:
            return dailies[day]
        if day in ticks:
            return ticks[day]
        return None

    def _sb(self, ticks, dailies, as_of, latest_date) -> dict[str, Any]:
        cur = self._current("SB", as_of, latest_date)
        if cur is None:
            return {"net_buy_hkd": {n: None for n, _ in MULTI}, "streak_days": 0, "streak_net_buy_hkd": 0.0,
                    "provisional_net_buy_hkd": None}
        net_values: dict[str, Decimal | None] = {name: sum((self._sb_net(ticks, dailies, d) or Decimal(0) for d in self.cal.last_n("SB", cur, n)),
                                Decimal(0)) for name, n in MULTI}
        self._last_sb_values = net_values
        nets = _floats(net_values)
        closed = cur in dailies or (as_of is not None and as_of > self.cal.close("SB", cur))
        day = cur if closed else self.cal.previous("SB", cur)
        count, total, sign = 0, Decimal(0), 0
        while day is not None:
            net = self._sb_net(ticks, dailies, day)
            if not net:  # missing or zero breaks the streak
                break
            s = 1 if net > 0 else -1
            if sign and s != sign:
                break
            sign, count, total = s, count + 1, total + net
            day = self.cal.previous("SB", day)
        cur_net = self._sb_net(ticks, dailies, cur)
        return {"net_buy_hkd": nets, "streak_days": sign * count, "streak_net_buy_hkd": float(total),
                "provisional_net_buy_hkd": None if closed else float(cur_net or 0)}

    # -- southbound quota and sectors ------------------------------------------------------------
    def _quota(self, ticks: list[dict[str, Any]], as_of: int | None, latest_date: dt.date | None) -> list[dict[str, Any]]:
        """Per channel (SH, SZ): the latest quota record of today by event time (later arrival on a tie) and
        the net buy of the channel's ticks over 1d/5d/20d southbound days (exact: Decimal, Fraction)."""
        cur = self._current("SB", as_of, latest_date)
        out = []
        for ch in CHANNELS:
            today = [q for q in self.quotas if q["channel"] == ch and cur is not None and q["day"] == cur]
            rec = max(today, key=lambda q: (q["ts"], q["arrival"])) if today else None
            per_day: dict[dt.date, Decimal] = defaultdict(Decimal)
            for tk in ticks:
                if tk["channel"] == ch:
                    per_day[tk["day"]] += tk["net"]
            net = {name: sum((per_day[d] for d in self.cal.last_n("SB", cur, n)), Decimal(0)) if cur else None
                   for name, n in MULTI}
            out.append({"channel": ch, "date": rec["day"] if rec else None, "ts": rec["ts"] if rec else None,
                        "quota": rec["quota"] if rec else None, "balance": rec["balance"] if rec else None,
                        "used_ratio": 1 - Fraction(rec["balance"]) / Fraction(rec["quota"]) if rec else None,
                        "net_buy": net})
        return out

    def quota_doc(self) -> dict[str, Any]:
        """The channels of ``GET /api/v1/southbound/quota`` (after ``run``), floats as the API renders them."""
        return {"channels": [{"channel": q["channel"], "date": q["date"].isoformat() if q["date"] else None,
                              "ts": iso(q["ts"]) if q["ts"] is not None else None,
                              "quota_cny": None if q["quota"] is None else float(q["quota"]),
                              "balance_cny": None if q["balance"] is None else float(q["balance"]),
                              "used_ratio": None if q["used_ratio"] is None else float(q["used_ratio"]),
                              "net_buy_hkd": _floats(q["net_buy"])} for q in self.quota]}

    def _sectors(self, window: str, etf_syms: set[str], sb_syms: set[str]) -> list[dict[str, Any]]:
        """One row per sector of the map (exact sums; a null window value adds 0)."""
        members: dict[str, list[str]] = defaultdict(list)
        for sym, sector in self.sectors.items():
            members[sector].append(sym)
        rows: list[dict[str, Any]] = []
        for sector, syms in members.items():
            # an HK-listed ETF trades in HKD: not summed with the mainland ETFs' CNY (nor counted)
            etfs = sorted(s for s in syms if s in etf_syms and not s.endswith(".HK"))
            stocks = sorted(s for s in syms if s in sb_syms)
            net = {s: self.etf_values[s]["net_inflow"][window] or Decimal(0) for s in etfs}
            main = {s: self.etf_values[s]["main_net_inflow"][window] or Decimal(0) for s in etfs}
            sb = {s: self.sb_values[s][window] or Decimal(0) for s in stocks}
            if etfs:
                top = min(etfs, key=lambda s: (-net[s], s))
            elif stocks:
                top = min(stocks, key=lambda s: (-sb[s], s))
            else:
                top = None
            rows.append({"sector": sector, "symbols": len(set(etfs) | set(stocks)),
                         "etf_net_inflow": sum(net.values(), Decimal(0)),
                         "etf_main_net_inflow": sum(main.values(), Decimal(0)),
                         "southbound_net_buy": sum(sb.values(), Decimal(0)), "top_symbol": top})
        rows.sort(key=lambda r: (-r["etf_net_inflow"], -r["southbound_net_buy"], r["sector"]))
        return rows
