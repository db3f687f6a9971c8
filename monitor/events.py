"""Event types, the orjson codec and validation with a reason code for every rejection.

Money, prices, volumes and shares are held as integers in millionths of their
unit ("micros") so sums never drift; floats appear only on export. A JSON
number is turned into micros exactly whenever it carries at most six decimals.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, ClassVar, TypeVar, dataclass_transform

import orjson

from monitor.calendars import DAY_MS, EXCHANGE_TZ, Calendars, TradingCalendar, local_date

MICRO = 1_000_000
_UTC8_MS = 8 * 3_600_000  # exchange time offset, as in monitor.calendars.local_date
_FAST_LIMIT = 1e9  # below this, round(x * 1e6) recovers the exact decimal of a float
MAX_NUMBER = 1e15  # larger values are rejected as implausible
_SYMBOL_MEMO_MAX = 50_000  # valid symbols remembered by a Validator (a market has a few thousand)

TOPICS: dict[str, str] = {
    "trade": "fundflow.etf.trades",
    "units": "fundflow.etf.units",
    "southbound": "fundflow.southbound.flows",
    "southbound_daily": "fundflow.southbound.daily",
    "bar": "fundflow.bars",
    "iopv": "fundflow.etf.iopv",
    "southbound_quota": "fundflow.southbound.quota",
}
DATE_KINDS = frozenset({"units", "southbound_daily", "bar"})  # events keyed by a date, not a timestamp
KIND_OF_TOPIC = {topic: kind for kind, topic in TOPICS.items()}
DEADLETTER_TOPIC = "fundflow.deadletter"
STATE_TOPIC = "fundflow.state.daily"

# Every rejection reason, a closed set (it is a metric label).
REASONS = (
    "bad_json",
    "too_large",
    "unknown_kind",
    "missing_field",
    "wrong_type",
    "bad_number",
    "bad_value",
    "bad_symbol",
    "bad_timestamp",
    "outside_session",
)

# ASCII digits only, whole string (fullmatch: "$" would let a trailing newline through)
ETF_SYMBOL = re.compile(r"[0-9]{6}\.(SH|SZ)")
HK_SYMBOL = re.compile(r"[0-9]{5}\.HK")


_E = TypeVar("_E")


@dataclass_transform(frozen_default=True)
def _event(cls: type[_E]) -> type[_E]:
    """An event class: immutable to mypy, a plain slotted dataclass at run time.

    A frozen dataclass's ``__init__`` stores every field through ``object.__setattr__``, which
    costs ~2 µs a trade (an eighth of the consumer's per-event work); a plain one stores them
    directly. Hash and equality are the frozen ones (``unsafe_hash``), and mypy still refuses an
    assignment to a field.
    """
    return dataclass(slots=True, unsafe_hash=True)(cls)


class Rejected(Exception):
    """An input that cannot become an event; ``reason`` is one of REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@_event
class Trade:
    kind: ClassVar[str] = "trade"
    symbol: str
    ts_ms: int
    price: int  # micro-CNY
    volume: int  # micro-shares
    amount: int  # micro-CNY
    side: str | None  # "B", "S" or None (tick rule)
    trade_id: str
    seq: int | None = None  # the feed's sequence number per symbol and day, when it numbers trades (gap detection)
    buy_order_id: str | None = None  # tick-by-tick data: the order numbers of both sides
    sell_order_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "kind": "trade", "symbol": self.symbol, "ts": self.ts_ms, "price": from_micro(self.price),
            "volume": from_micro(self.volume), "amount": from_micro(self.amount), "trade_id": self.trade_id,
        }
        if self.side:
            d["side"] = self.side
        if self.seq is not None:
            d["seq"] = self.seq
        if self.buy_order_id is not None:
            d["buy_order_id"] = self.buy_order_id
        if self.sell_order_id is not None:
            d["sell_order_id"] = self.sell_order_id
        return d


@_event
class Units:
    kind: ClassVar[str] = "units"
    symbol: str
    date: dt.date
    shares: int  # micro-shares outstanding
    nav: int  # micro-CNY per share

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "units", "symbol": self.symbol, "date": self.date.isoformat(),
                "shares_outstanding": from_micro(self.shares), "nav": from_micro(self.nav)}


@_event
class SouthboundTick:
    kind: ClassVar[str] = "southbound"
    symbol: str
    ts_ms: int
    channel: str  # "SH" or "SZ"
    buy: int  # micro-HKD
    sell: int  # micro-HKD
    seq: int

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "southbound", "symbol": self.symbol, "ts": self.ts_ms, "channel": self.channel,
                "buy_hkd": from_micro(self.buy), "sell_hkd": from_micro(self.sell), "seq": self.seq}


@_event
class SouthboundDaily:
    kind: ClassVar[str] = "southbound_daily"
    symbol: str
    date: dt.date
    buy: int  # micro-HKD
    sell: int  # micro-HKD

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "southbound_daily", "symbol": self.symbol, "date": self.date.isoformat(),
                "buy_hkd": from_micro(self.buy), "sell_hkd": from_micro(self.sell)}


@_event
class Bar:
    """One trading day of one symbol: stands in for that day's trades where none were seen."""

    kind: ClassVar[str] = "bar"
    symbol: str
    date: dt.date
    open: int  # micro-CNY (HKD for .HK)
    high: int
    low: int
    close: int
    volume: int  # micro-shares
    amount: int  # micro-CNY (HKD for .HK): the day's turnover
    shares: int | None = None  # micro-shares outstanding (ETFs), optional
    nav: int | None = None  # micro-CNY per share, optional

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "bar", "symbol": self.symbol, "date": self.date.isoformat(),
                             "open": from_micro(self.open), "high": from_micro(self.high),
                             "low": from_micro(self.low), "close": from_micro(self.close),
                             "volume": from_micro(self.volume), "amount": from_micro(self.amount)}
        if self.shares is not None:
            d["shares"] = from_micro(self.shares)
        if self.nav is not None:
            d["nav"] = from_micro(self.nav)
        return d


@_event
class Iopv:
    """An ETF's indicative optimized portfolio value, published by the exchange every 15 s."""

    kind: ClassVar[str] = "iopv"
    symbol: str
    ts_ms: int
    iopv: int  # micro-CNY per share

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "iopv", "symbol": self.symbol, "ts": self.ts_ms, "iopv": from_micro(self.iopv)}


@_event
class SouthboundQuota:
    """A Stock Connect southbound channel's daily quota and the balance left, published through the day."""

    kind: ClassVar[str] = "southbound_quota"
    channel: str  # "SH" or "SZ"
    ts_ms: int
    quota: int  # micro-CNY
    balance: int  # micro-CNY

    @property
    def symbol(self) -> str:
        """The channel's stream key, standing where other events have their symbol (not a listed symbol).

        It keys the channel's messages on the bus (one partition keeps a channel's records in order) and
        names its records in the state topic, so the consumer and the checkpoints treat a channel like
        a symbol: owned by the partition it arrives on.
        """
        return quota_key(self.channel)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "southbound_quota", "channel": self.channel, "ts": self.ts_ms,
                "quota_cny": from_micro(self.quota), "balance_cny": from_micro(self.balance)}


Event = Trade | Units | SouthboundTick | SouthboundDaily | Bar | Iopv | SouthboundQuota

QUOTA_KEY_PREFIX = "quota."  # a channel's stream key: no listed symbol starts so


def quota_key(channel: str) -> str:
    """The stream key of a southbound channel's quota records ("SH" -> "quota.SH")."""
    return QUOTA_KEY_PREFIX + channel


def from_micro(units: int) -> float:
    """Micros to a float for export (the only place floats appear)."""
    return units / MICRO


def to_micro(value: Any, name: str) -> int:
    """A non-negative JSON number to exact micros; raises Rejected otherwise."""
    # fast paths for the usual in-range value (exact types: bool is an int, NaN fails the comparison)
    vtype = type(value)
    if vtype is float and 0.0 <= value < _FAST_LIMIT:
        return round(value * MICRO)
    if vtype is int and 0 <= value <= MAX_NUMBER:
        return value * MICRO
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Rejected("wrong_type", f"{name} must be a number, got {type(value).__name__}")
    if isinstance(value, int):
        if value < 0 or value > MAX_NUMBER:
            raise Rejected("bad_number", f"{name} out of range: {value}")
        return value * MICRO
    if not math.isfinite(value) or value < 0 or value > MAX_NUMBER:
        raise Rejected("bad_number", f"{name} must be finite, >= 0 and <= 1e15, got {value!r}")
    if value < _FAST_LIMIT:
        return round(value * MICRO)
    return int((Decimal(repr(value)) * MICRO).to_integral_value(ROUND_HALF_EVEN))


def _bar_number(value: Any, name: str) -> int:
    """A bar field: a JSON number, or a decimal string (CSV tapes keep price columns as text)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            dec = Decimal(text)
        except InvalidOperation:
            raise Rejected("wrong_type", f"{name} must be a number, got {text[:20]!r}") from None
        if not dec.is_finite() or dec < 0 or dec > Decimal(MAX_NUMBER):
            raise Rejected("bad_number", f"{name} must be finite, >= 0 and <= 1e15, got {text[:20]!r}")
        return int((dec * MICRO).to_integral_value(ROUND_HALF_EVEN))
    return to_micro(value, name)


def mul_micro(a: int, b: int) -> int:
    """The product of two micro quantities, in micros, rounded half to even."""
    q, r = divmod(a * b, MICRO)
    if 2 * r > MICRO or (2 * r == MICRO and q % 2):
        q += 1
    return q


def _order_id(value: Any, name: str) -> str | None:
    """An order number: absent, or a non-empty string or integer (as text), like trade_id."""
    if value is None:
        return None
    if type(value) is str and value:
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise Rejected("wrong_type", f"{name} must be a non-empty string or integer")
    return str(value)


def _seq(value: Any) -> int:
    """A sequence number: an integer (not a bool), >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected("wrong_type", "seq must be an integer")
    if value < 0:
        raise Rejected("bad_number", "seq must be >= 0")
    return int(value)


def parse_ts(value: Any) -> int:
    """Epoch milliseconds, or ISO-8601 (naive = exchange time), to epoch ms."""
    if type(value) is int:  # the usual case first (exact type: bool is rejected below)
        return value
    if isinstance(value, bool):
        raise Rejected("wrong_type", "ts must be epoch milliseconds or an ISO-8601 string")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Rejected("bad_timestamp", f"ts is not finite: {value!r}")
        return math.floor(value)
    if isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value)
        except ValueError:
            raise Rejected("bad_timestamp", f"ts is not ISO-8601: {value[:40]!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=EXCHANGE_TZ)
        return round(when.timestamp() * 1000)
    raise Rejected("wrong_type", f"ts must be a number or string, got {type(value).__name__}")


def parse_date(value: Any, name: str = "date") -> dt.date:
    if not isinstance(value, str):
        raise Rejected("wrong_type", f"{name} must be a YYYY-MM-DD string, got {type(value).__name__}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise Rejected("bad_timestamp", f"{name} is not YYYY-MM-DD: {value[:40]!r}") from None


def infer_kind(obj: Mapping[str, Any]) -> str | None:
    """The kind of an event without a ``kind`` field, from the fields it has."""
    if "trade_id" in obj or "price" in obj:
        return "trade"
    if "close" in obj and "date" in obj:
        return "bar"
    if "shares_outstanding" in obj:
        return "units"
    if "quota_cny" in obj:
        return "southbound_quota"
    if "channel" in obj or "seq" in obj:
        return "southbound"
    if "buy_hkd" in obj and "date" in obj:
        return "southbound_daily"
    if "iopv" in obj:
        return "iopv"
    return None


class Validator:
    """Turns raw payloads into events, checking sessions against the calendars."""

    def __init__(self, calendars: Calendars, session_margin_minutes: int = 60,
                 max_payload_bytes: int = 64 * 1024) -> None:
        self.calendars = calendars
        self.margin_ms = session_margin_minutes * 60_000
        self.max_payload_bytes = max_payload_bytes
        # calendar name -> local day index -> (earliest, latest) accepted event time, None when closed
        self._bounds: dict[str, dict[int, tuple[int, int] | None]] = {}
        # symbols already found valid -> (matches the ETF pattern, the calendar of its exchange, that
        # calendar's bounds): a stream repeats a few thousand symbols, so the regexes and the suffix
        # lookup run once each
        self._symbols: dict[str, tuple[bool, TradingCalendar, dict[int, tuple[int, int] | None]]] = {}
        self._sb_bounds = self._bounds.setdefault(calendars["SB"].name, {})
        self._channel_open: dict[tuple[str, int], bool] = {}  # (channel, day index) -> exchange open that day
        self._builders: dict[str, Callable[[Mapping[str, Any]], Event]] = {
            "trade": self._trade,
            "units": self._units,
            "southbound": self._tick,
            "southbound_daily": self._daily,
            "bar": self._bar,
            "iopv": self._iopv,
            "southbound_quota": self._quota,
        }

    # -- entry points -------------------------------------------------------
    def decode(self, raw: bytes, kind: str | None = None) -> Event:
        """Bytes of one JSON event to an Event; ``kind`` comes from the topic when known."""
        if len(raw) > self.max_payload_bytes:
            raise Rejected("too_large", f"payload of {len(raw)} bytes exceeds {self.max_payload_bytes}")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise Rejected("bad_json", str(exc)[:120]) from None
        # the consumer's case, without the checks of validate: an object whose kind is the topic's
        builder = None
        if kind is not None and type(obj) is dict and obj.get("kind", kind) == kind:
            builder = self._builders.get(kind)
        if builder is None:
            return self.validate(obj, kind)
        try:
            return builder(obj)
        except KeyError as exc:  # the same mapping as in validate
            raise Rejected("missing_field", f"missing field {exc.args[0]!r}") from None
        except (TypeError, InvalidOperation, OverflowError) as exc:
            raise Rejected("wrong_type", str(exc)[:120]) from None

    def validate(self, obj: Any, kind: str | None = None) -> Event:
        if not isinstance(obj, dict):
            raise Rejected("bad_json", f"an event must be a JSON object, got {type(obj).__name__}")
        declared = obj.get("kind")
        if declared is not None and kind is not None and declared != kind:
            raise Rejected("unknown_kind", f"kind {str(declared)[:30]!r} on a {kind} stream")
        kind = kind or declared or infer_kind(obj)
        builder = self._builders.get(kind) if isinstance(kind, str) else None
        if builder is None:
            raise Rejected("unknown_kind", f"unknown event kind {str(kind)[:30]!r}")
        try:
            return builder(obj)
        except KeyError as exc:
            raise Rejected("missing_field", f"missing field {exc.args[0]!r}") from None
        except (TypeError, InvalidOperation, OverflowError) as exc:
            raise Rejected("wrong_type", str(exc)[:120]) from None

    # -- builders -----------------------------------------------------------
    def _trade(self, o: Mapping[str, Any]) -> Trade:
        symbol = o["symbol"]
        known = self._symbols.get(symbol) if type(symbol) is str else None
        if known is None:
            symbol = self._symbol(symbol, etf_ok=True, hk_ok=True)
            known = self._remember(symbol)
        ts = o["ts"]
        if type(ts) is not int:
            ts = parse_ts(ts)
        bounds = known[2].get((ts + _UTC8_MS) // DAY_MS)
        if bounds is None or not bounds[0] <= ts <= bounds[1]:  # not memoized yet, or outside: the full check
            self._in_session(ts, known[1], symbol)
        # to_micro's fast paths, inline (three numbers a trade)
        price = o["price"]
        if type(price) is float and 0.0 <= price < _FAST_LIMIT:
            price = round(price * MICRO)
        else:
            price = to_micro(price, "price")
        volume = o["volume"]
        if type(volume) is int and 0 <= volume <= MAX_NUMBER:
            volume *= MICRO
        else:
            volume = to_micro(volume, "volume")
        if price == 0 or volume == 0:
            raise Rejected("bad_number", "price and volume must be > 0")
        amount = o.get("amount")
        if amount is None:
            amount = mul_micro(price, volume)
        elif type(amount) is float and 0.0 <= amount < _FAST_LIMIT:
            amount = round(amount * MICRO)
        else:
            amount = to_micro(amount, "amount")
        side = o.get("side")
        if side is not None and side != "B" and side != "S":  # an upper-case side needs no checks
            if not isinstance(side, str):
                raise Rejected("wrong_type", "side must be 'B' or 'S'")
            side = side.upper()
            if side not in ("B", "S"):
                raise Rejected("bad_value", f"side must be 'B' or 'S', got {side[:10]!r}")
        tid = o["trade_id"]
        if type(tid) is not str or tid == "":  # the usual non-empty string needs no more checks
            if isinstance(tid, bool) or not isinstance(tid, (str, int)) or tid == "":
                raise Rejected("wrong_type", "trade_id must be a non-empty string or integer")
            tid = str(tid)
        seq = o.get("seq")
        if seq is not None and (type(seq) is not int or seq < 0):  # absent, or a plain int >= 0: no more checks
            seq = _seq(seq)
        buy_order = o.get("buy_order_id")
        sell_order = o.get("sell_order_id")
        if buy_order is not None or sell_order is not None:
            buy_order, sell_order = _order_id(buy_order, "buy_order_id"), _order_id(sell_order, "sell_order_id")
        return Trade(symbol, ts, price, volume, amount, side, tid, seq, buy_order, sell_order)

    def _iopv(self, o: Mapping[str, Any]) -> Iopv:
        symbol = self._symbol(o["symbol"], etf_ok=True, hk_ok=False)
        ts = self._in_session(parse_ts(o["ts"]), self.calendars.for_symbol(symbol), symbol)
        iopv = to_micro(o["iopv"], "iopv")
        if iopv == 0:
            raise Rejected("bad_number", "iopv must be > 0")
        return Iopv(symbol, ts, iopv)

    def _quota(self, o: Mapping[str, Any]) -> SouthboundQuota:
        channel = o["channel"]
        if channel != "SH" and channel != "SZ":
            raise Rejected("bad_value", f"channel must be 'SH' or 'SZ', got {str(channel)[:10]!r}")
        ts = self._in_session(parse_ts(o["ts"]), self.calendars["SB"], f"{channel} quota")
        if local_date(ts) not in self.calendars[channel]:  # as for ticks: the channel needs its exchange open
            raise Rejected("outside_session", f"{channel} quota while {channel} is closed")
        quota, balance = to_micro(o["quota_cny"], "quota_cny"), to_micro(o["balance_cny"], "balance_cny")
        if quota == 0:
            raise Rejected("bad_number", "quota_cny must be > 0")
        if balance > quota:
            raise Rejected("bad_value", "balance_cny must be <= quota_cny")
        return SouthboundQuota(channel, ts, quota, balance)

    def _units(self, o: Mapping[str, Any]) -> Units:
        symbol = self._symbol(o["symbol"], etf_ok=True, hk_ok=True)
        day = self._trading_date(o["date"], self.calendars.for_symbol(symbol))
        nav = to_micro(o["nav"], "nav")
        if nav == 0:
            raise Rejected("bad_number", "nav must be > 0")
        return Units(symbol, day, to_micro(o["shares_outstanding"], "shares_outstanding"), nav)

    def _tick(self, o: Mapping[str, Any]) -> SouthboundTick:
        symbol = o["symbol"]
        known = self._symbols.get(symbol) if type(symbol) is str else None
        if known is None or known[0]:  # unseen, or an ETF symbol (rejected here with its message)
            symbol = self._symbol(symbol, etf_ok=False, hk_ok=True)
            self._remember(symbol)
        channel = o["channel"]
        if channel != "SH" and channel != "SZ":
            raise Rejected("bad_value", f"channel must be 'SH' or 'SZ', got {str(channel)[:10]!r}")
        ts = o["ts"]
        if type(ts) is not int:
            ts = parse_ts(ts)
        day_index = (ts + _UTC8_MS) // DAY_MS  # the day index of local_date(ts)
        bounds = self._sb_bounds.get(day_index)
        if bounds is None or not bounds[0] <= ts <= bounds[1]:  # not memoized yet, or outside: the full check
            self._in_session(ts, self.calendars["SB"], symbol)
        key = (channel, day_index)
        is_open = self._channel_open.get(key)
        if is_open is None:
            is_open = self._channel_open[key] = local_date(ts) in self.calendars[channel]
        if not is_open:  # a southbound day needs the channel's exchange open
            raise Rejected("outside_session", f"{symbol} tick on the {channel} channel while {channel} is closed")
        seq = o["seq"]
        if type(seq) is not int or seq < 0:  # a plain int >= 0 needs no more checks
            seq = _seq(seq)
        buy, sell = o["buy_hkd"], o["sell_hkd"]  # to_micro's float fast path, inline
        buy = round(buy * MICRO) if type(buy) is float and 0.0 <= buy < _FAST_LIMIT else to_micro(buy, "buy_hkd")
        sell = round(sell * MICRO) if type(sell) is float and 0.0 <= sell < _FAST_LIMIT else to_micro(sell, "sell_hkd")
        return SouthboundTick(symbol, ts, channel, buy, sell, seq)

    def _daily(self, o: Mapping[str, Any]) -> SouthboundDaily:
        symbol = self._symbol(o["symbol"], etf_ok=False, hk_ok=True)
        day = self._trading_date(o["date"], self.calendars["SB"])
        return SouthboundDaily(symbol, day, to_micro(o["buy_hkd"], "buy_hkd"), to_micro(o["sell_hkd"], "sell_hkd"))

    def _bar(self, o: Mapping[str, Any]) -> Bar:
        symbol = self._symbol(o["symbol"], etf_ok=True, hk_ok=True)
        day = self._trading_date(o["date"], self.calendars.for_symbol(symbol))
        op, hi, lo, cl = (_bar_number(o[k], k) for k in ("open", "high", "low", "close"))
        if min(op, hi, lo, cl) == 0:
            raise Rejected("bad_number", "open, high, low and close must be > 0")
        if not (lo <= op <= hi and lo <= cl <= hi):
            raise Rejected("bad_value", "a bar needs low <= open, close <= high")
        volume, amount = _bar_number(o["volume"], "volume"), _bar_number(o["amount"], "amount")
        if (volume == 0) != (amount == 0):
            raise Rejected("bad_value", "volume and amount must both be 0 or both > 0")
        shares = o.get("shares", o.get("shares_outstanding"))
        nav = o.get("nav")
        if (shares is None) != (nav is None):
            raise Rejected("missing_field", "a bar carries both shares and nav, or neither")
        s_micro = _bar_number(shares, "shares") if shares is not None else None
        n_micro = _bar_number(nav, "nav") if nav is not None else None
        if n_micro == 0:
            raise Rejected("bad_number", "nav must be > 0")
        return Bar(symbol, day, op, hi, lo, cl, volume, amount, s_micro, n_micro)

    # -- checks -------------------------------------------------------------
    @staticmethod
    def _symbol(value: Any, etf_ok: bool, hk_ok: bool) -> str:
        if not isinstance(value, str):
            raise Rejected("wrong_type", f"symbol must be a string, got {type(value).__name__}")
        if (etf_ok and ETF_SYMBOL.fullmatch(value)) or (hk_ok and HK_SYMBOL.fullmatch(value)):
            return value
        want = " or ".join(w for w, ok in (("NNNNNN.SH/.SZ", etf_ok), ("NNNNN.HK", hk_ok)) if ok)
        raise Rejected("bad_symbol", f"symbol {value[:20]!r} is not {want}")

    def _remember(self, symbol: str) -> tuple[bool, TradingCalendar, dict[int, tuple[int, int] | None]]:
        """Record a symbol that passed ``_symbol``; returns its memo entry (bounded: past the cap, not stored)."""
        cal = self.calendars.for_symbol(symbol)
        entry = (ETF_SYMBOL.fullmatch(symbol) is not None, cal, self._bounds.setdefault(cal.name, {}))
        if len(self._symbols) < _SYMBOL_MEMO_MAX:
            self._symbols[symbol] = entry
        return entry

    def _in_session(self, ts: int, cal: TradingCalendar, symbol: str) -> int:
        """``ts`` when inside ``cal``'s session of its day (with the margin); memoizes the day's bounds."""
        day_index = (ts + _UTC8_MS) // DAY_MS
        by_day = self._bounds.setdefault(cal.name, {})
        try:
            bounds = by_day[day_index]
        except KeyError:
            day = dt.date.fromordinal(719163 + day_index) if 0 < 719163 + day_index < 3_652_059 else None
            session = cal.session(day) if day is not None else None
            bounds = (session.open_ms - self.margin_ms, session.close_ms + self.margin_ms) if session else None
            by_day[day_index] = bounds
        if bounds is None:
            raise Rejected("outside_session", f"{symbol} event at ts={ts} is not on a {cal.name} trading day")
        if not bounds[0] <= ts <= bounds[1]:
            raise Rejected("outside_session", f"{symbol} event at ts={ts} is far outside the {cal.name} session")
        return ts

    @staticmethod
    def _trading_date(value: Any, cal: TradingCalendar) -> dt.date:
        day = parse_date(value)
        if day not in cal:
            raise Rejected("outside_session", f"{day} is not a {cal.name} trading day")
        return day


def encode(event: Event) -> bytes:
    """The canonical wire form of a validated event."""
    return orjson.dumps(event.to_dict())
