"""A seeded generator of malformed payloads, one category at a time, and the good events around them.

Every payload is something a feed could send by mistake or on purpose; none of them may become an
event, crash a process or vanish: each is dead-lettered with a reason. Categories follow issue 10:
truncated JSON, wrong types, NaN/Infinity, huge numbers, negative volumes, unknown kinds, bad
symbols, timestamps far in the past or future, 2 MB payloads, invalid UTF-8 (plus non-objects,
deep nesting, missing fields, bad enums and days without a session).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson

OPEN = 1757640600000  # 2025-09-12 09:30:00 +08:00, a trading day on XSHG and XHKG
HK_MID = OPEN + 3_600_000  # 10:30
ETFS = ("513770.SH", "510300.SH", "159920.SZ", "513180.SH")
STOCKS = ("09988.HK", "00700.HK")
TWO_MB = 2 * 1024 * 1024


def good_trade(i: int, prefix: str, symbol: str | None = None) -> dict[str, Any]:
    return {"kind": "trade", "symbol": symbol or ETFS[i % len(ETFS)], "ts": OPEN + 1000 * (i % 14_000),
            "price": 1.0 + (i % 50) / 1000, "volume": 100 * (1 + i % 9), "side": "B" if i % 3 else "S",
            "trade_id": f"{prefix}-{i}"}


def good_tick(i: int, prefix_seq: int) -> dict[str, Any]:
    return {"kind": "southbound", "symbol": STOCKS[i % 2], "ts": HK_MID + 1000 * (i % 3000),
            "channel": "SH" if i % 2 else "SZ", "buy_hkd": 1000.0 + i, "sell_hkd": 10.0 * (i % 7), "seq": prefix_seq + i}


def _base(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.7:
        return good_trade(rng.randrange(10**6), "fuzz")
    return good_tick(rng.randrange(10**6), 0)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def truncated(rng: random.Random) -> bytes:
    raw = _dumps(_base(rng))
    return raw[: rng.randrange(1, len(raw) - 1)]


WRONG = [0, 1.5, "x", "", None, True, [], [1], {}, {"a": 1}, "1.07", "NaN"]


def wrong_type(rng: random.Random) -> bytes:
    ev = _base(rng)
    field = rng.choice([k for k in ev if k != "kind"])
    choices = [w for w in WRONG if type(w) is not type(ev[field]) and not (isinstance(w, int) and isinstance(ev[field], float))]
    if field in ("price", "volume", "buy_hkd", "sell_hkd"):
        choices = [w for w in choices if not isinstance(w, (int, float)) or isinstance(w, bool)]
    if field == "side":  # null is an absent side (tick rule)
        choices = [w for w in choices if w is not None]
    if field == "trade_id":
        choices = [w for w in choices if not isinstance(w, (str, int)) or isinstance(w, bool) or w == ""]
    if field == "ts":
        choices = [w for w in choices if not isinstance(w, (int, float)) or isinstance(w, bool)]
        choices = [w for w in choices if not (isinstance(w, str) and w[:4].isdigit())]
    ev[field] = rng.choice(choices)
    return _dumps(ev)


def nan_inf(rng: random.Random) -> bytes:
    raw = _dumps(_base(rng)).decode()
    word = rng.choice(["NaN", "Infinity", "-Infinity", "nan", "inf", "1e400", "-1e400"])
    for field in ('"price":', '"volume":', '"buy_hkd":', '"sell_hkd":', '"ts":'):
        if field in raw:
            head, _, tail = raw.partition(field)
            rest = tail.split(",", 1)
            return (head + field + word + ("," + rest[1] if len(rest) > 1 else "}")).encode()
    return raw.encode()


def huge(rng: random.Random) -> bytes:
    ev = _base(rng)
    field = rng.choice([f for f in ("price", "volume", "amount", "buy_hkd", "sell_hkd") if f in ev or f == "amount"])
    if field == "amount" and ev.get("kind") != "trade":
        field = "buy_hkd"
    value = rng.choice([10**16, 10**19, 1e16, 1.7e308, 2**63, 10**30])
    if value == 10**30 or value == 2**63:  # beyond 64 bits: written by hand
        ev[field] = 7777777
        return _dumps(ev).replace(b":7777777", b":" + str(value).encode())
    ev[field] = value
    return _dumps(ev)


def negative(rng: random.Random) -> bytes:
    ev = _base(rng)
    fields = [f for f in ("price", "volume", "amount", "buy_hkd", "sell_hkd", "seq") if f in ev]
    ev[rng.choice(fields)] = rng.choice([-1, -100, -0.01, -1e9])
    return _dumps(ev)


def unknown_kind(rng: random.Random) -> bytes:
    ev = _base(rng)
    choice = rng.randrange(4)
    if choice == 0:
        ev["kind"] = rng.choice(["quote", "TRADE", "order", "units ", "southbound_weekly", "💥"])
    elif choice == 1:
        ev["kind"] = rng.choice([1, 2.5, ["trade"], {"k": "trade"}])
    elif choice == 2:  # no kind and nothing to infer it from
        ev = {"symbol": ev["symbol"], "ts": ev["ts"], "what": "ever"}
    else:
        ev = {"kind": None, "foo": 1}
    return _dumps(ev)


BAD_SYMBOLS = ["513770", "ALIBABA", "9988.HK", "513770.sh", "", "513770.SHX", "51377.SH", "09988.HK ",
               "0998.HK", "513770.HK", "../../etc/passwd", "513770.SH\x00", "x" * 500]
# Unicode digits and a trailing newline: a \d / "$" regex would accept them (test_fuzz.py pins that it does not).
SYMBOLS_LOOKALIKE = ["٥١٣٧٧٠.SH", "𝟓𝟏𝟑𝟕𝟕𝟎.SH", "09988.HK\n", "٠٩٩٨٨.HK"]
BAD_SYMBOLS += SYMBOLS_LOOKALIKE


def bad_symbol(rng: random.Random) -> bytes:
    ev = _base(rng)
    ev["symbol"] = rng.choice(BAD_SYMBOLS)
    if ev["kind"] == "southbound" and rng.random() < 0.5:
        ev["symbol"] = "513770.SH"  # an ETF is not a southbound stock
    return _dumps(ev)


def far_time(rng: random.Random) -> bytes:
    ev = _base(rng)
    ev["ts"] = rng.choice([
        0, -1, -(10**15), 1, 10**15, 2**62, 253402300799000, 99999999999999, 1e300, -1e300,
        "1900-01-01T10:00:00+08:00", "9999-12-31T10:00:00+08:00", "0001-01-01T00:00:00",
        "2999-09-12T10:00:00+08:00", "1970-01-01", "2025-09-12T10:00:00+25:00", "2025-13-45T10:00:00",
        "yesterday", "2025-09-12 10:00:00 CST", "9999-12-31T23:59:59.999999-23:59",
    ])
    return _dumps(ev)


def bad_date(rng: random.Random) -> bytes:
    kind = rng.choice(["units", "southbound_daily"])
    date = rng.choice(["0001-01-01", "9999-12-31", "2025-02-30", "2025-09-13", "2025/09/12", "", "2025-10-01"])
    if kind == "units":
        ev = {"kind": "units", "symbol": "513770.SH", "date": date, "shares_outstanding": 1e9, "nav": 1.07}
    else:
        ev = {"kind": "southbound_daily", "symbol": "09988.HK", "date": date, "buy_hkd": 1e8, "sell_hkd": 1e7}
    return _dumps(ev)


def big(rng: random.Random) -> bytes:
    ev = _base(rng)
    choice = rng.randrange(3)
    if choice == 0:
        ev["pad"] = "x" * TWO_MB
    elif choice == 1:
        ev["symbol"] = "9" * TWO_MB
    else:
        ev["trade_id"] = "t" * TWO_MB
    return _dumps(ev)


def invalid_utf8(rng: random.Random) -> bytes:
    raw = _dumps(_base(rng))
    bad = rng.choice([b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80",
                      b"\xe2\x82"])
    choice = rng.randrange(3)
    if choice == 0:  # inside a string value
        i = raw.index(b'"symbol":"') + len(b'"symbol":"')
        return raw[:i] + bad + raw[i:]
    if choice == 1:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))).replace(b"\n", b"\xff") + bad
    return bad + raw  # before the object


def not_object(rng: random.Random) -> bytes:
    return rng.choice([b"1", b'"trade"', b"null", b"true", b"[1, 2]", b'"\\ud800"', b"{}", b"{,}",
                       b"{" * 5000 + b"}" * 5000, b"[" * 100_000, b'{"a": ' * 2000, b"\x00", b"  x  "])


def missing(rng: random.Random) -> bytes:
    ev = _base(rng)
    required = [f for f in ("symbol", "ts", "price", "volume", "trade_id", "channel", "buy_hkd", "sell_hkd", "seq")
                if f in ev]
    del ev[rng.choice(required)]
    if len(ev) <= 2:
        ev["kind"] = "trade"
    return _dumps(ev)


def bad_value(rng: random.Random) -> bytes:
    ev = _base(rng)
    if ev["kind"] == "trade":
        if rng.random() < 0.5:
            ev["side"] = rng.choice(["X", "buy", "", "BS", "N"])
        else:
            ev[rng.choice(["price", "volume"])] = 0
    else:
        ev["channel"] = rng.choice(["HK", "sh", "", "SHSZ", "NB"])
    return _dumps(ev)


def no_session(rng: random.Random) -> bytes:
    """Well-formed, on a holiday, a weekend or in the middle of the night."""
    ev = _base(rng)
    day = rng.choice(["2025-10-01T10:00:00+08:00", "2025-09-13T10:00:00+08:00", "2025-09-12T03:00:00+08:00",
                      "2025-09-12T22:30:00+08:00", "2025-01-29T10:00:00+08:00", "2025-12-25T11:00:00+08:00"])
    ev["ts"] = day
    if ev["kind"] == "trade" and day.startswith("2025-12-25"):
        ev["symbol"] = "02800.HK"
    return _dumps(ev)


CATEGORIES: dict[str, Callable[[random.Random], bytes]] = {
    "truncated_json": truncated,
    "wrong_type": wrong_type,
    "nan_infinity": nan_inf,
    "huge_number": huge,
    "negative": negative,
    "unknown_kind": unknown_kind,
    "bad_symbol": bad_symbol,
    "far_timestamp": far_time,
    "bad_date": bad_date,
    "invalid_utf8": invalid_utf8,
    "not_an_object": not_object,
    "missing_field": missing,
    "bad_value": bad_value,
    "no_session": no_session,
}


def payloads(seed: int, n: int, big_every: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` bad payloads, round-robin over the categories; a 2 MB one every ``big_every`` (0: none)."""
    rng = random.Random(seed)
    names = list(CATEGORIES)
    for i in range(n):
        if big_every and i % big_every == big_every - 1:
            yield "two_mb", big(rng)
            continue
        name = names[i % len(names)]
        yield name, CATEGORIES[name](rng)


def check_rejected(raw: bytes) -> str:
    """The reason the edge gives (raises AssertionError if the payload would be accepted)."""
    from monitor.calendars import default_calendars
    from monitor.events import Rejected, Validator

    v = Validator(default_calendars())
    try:
        ev = v.decode(raw)
    except Rejected as exc:
        return exc.reason
    raise AssertionError(f"generator produced a valid event: {ev!r} from {raw[:200]!r}")


__all__ = ["payloads", "good_trade", "good_tick", "check_rejected", "CATEGORIES", "dt"]
