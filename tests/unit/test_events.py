"""Edge validation: every rejection has a reason code, and good input converts exactly."""

from __future__ import annotations

import math

import orjson
import pytest

from monitor.calendars import default_calendars
from monitor.events import (
    MICRO,
    REASONS,
    Rejected,
    SouthboundDaily,
    SouthboundTick,
    Trade,
    Units,
    Validator,
    encode,
    to_micro,
)

TS = 1757640600000 + 60_000  # 2025-09-12 09:31:00 +08:00, a trading day on XSHG and XHKG
GOOD_TRADE = {"kind": "trade", "symbol": "513770.SH", "ts": TS, "price": 1.072, "volume": 1000, "side": "B", "trade_id": "t1"}


@pytest.fixture(scope="module")
def v() -> Validator:
    return Validator(default_calendars(), session_margin_minutes=60, max_payload_bytes=1024)


def reason(v: Validator, obj: object = None, raw: bytes | None = None, kind: str | None = None) -> str:
    with pytest.raises(Rejected) as exc:
        if raw is not None:
            v.decode(raw, kind)
        else:
            v.validate(obj, kind)
    assert exc.value.reason in REASONS
    assert exc.value.detail
    return exc.value.reason


def with_(**kw: object) -> dict:
    d = dict(GOOD_TRADE)
    d.update(kw)
    return {k: val for k, val in d.items() if val is not ...}


def test_bad_json(v: Validator) -> None:
    assert reason(v, raw=b'{"symbol": "513770.SH", "price": 1.0') == "bad_json"
    assert reason(v, raw=b"\xff\xfe garbage") == "bad_json"
    assert reason(v, raw=b"[1, 2]") == "bad_json"
    assert reason(v, raw=b'{"price": NaN}') == "bad_json"


def test_too_large(v: Validator) -> None:
    assert reason(v, raw=b'{"pad": "' + b"x" * 2000 + b'"}') == "too_large"


def test_missing_field(v: Validator) -> None:
    assert reason(v, with_(price=...)) == "missing_field"
    assert reason(v, with_(trade_id=...)) == "missing_field"


def test_wrong_type(v: Validator) -> None:
    assert reason(v, with_(price="1.07")) == "wrong_type"
    assert reason(v, with_(volume=True)) == "wrong_type"
    assert reason(v, with_(symbol=513770)) == "wrong_type"


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, -5, 1e16])
def test_non_finite_negative_or_huge_number(v: Validator, value: float) -> None:
    assert reason(v, with_(price=value)) == "bad_number"


def test_zero_price_is_bad_number(v: Validator) -> None:
    assert reason(v, with_(price=0)) == "bad_number"


def test_bad_value(v: Validator) -> None:
    assert reason(v, with_(side="X")) == "bad_value"
    tick = {"kind": "southbound", "symbol": "09988.HK", "ts": TS, "channel": "HK", "buy_hkd": 1, "sell_hkd": 0, "seq": 1}
    assert reason(v, tick) == "bad_value"


@pytest.mark.parametrize("symbol", ["513770", "513770.SS", "9988.HK", "ABCDEF.SH", ""])
def test_unknown_symbol_format(v: Validator, symbol: str) -> None:
    assert reason(v, with_(symbol=symbol)) == "bad_symbol"


def test_southbound_needs_hk_symbol(v: Validator) -> None:
    tick = {"kind": "southbound", "symbol": "513770.SH", "ts": TS, "channel": "SH", "buy_hkd": 1, "sell_hkd": 0, "seq": 1}
    assert reason(v, tick) == "bad_symbol"


def test_bad_timestamp(v: Validator) -> None:
    assert reason(v, with_(ts="yesterday at noon")) == "bad_timestamp"
    units = {"kind": "units", "symbol": "513770.SH", "date": "2025-13-01", "shares_outstanding": 1, "nav": 1.0}
    assert reason(v, units) == "bad_timestamp"


@pytest.mark.parametrize("ts", [
    "2025-09-12T03:00:00+08:00",  # 3 am: far before the open
    "2025-09-12T20:00:00+08:00",  # evening
    "2025-10-01T10:00:00+08:00",  # National Day holiday
    "2025-09-13T10:00:00+08:00",  # Saturday
    0,  # 1970
    4102444800000,  # 2100
])
def test_timestamp_far_outside_the_session(v: Validator, ts: object) -> None:
    assert reason(v, with_(ts=ts)) == "outside_session"


def test_units_on_a_holiday_is_outside_session(v: Validator) -> None:
    units = {"kind": "units", "symbol": "513770.SH", "date": "2025-10-01", "shares_outstanding": 1, "nav": 1.0}
    assert reason(v, units) == "outside_session"


def test_unknown_kind(v: Validator) -> None:
    assert reason(v, {"kind": "quote", "symbol": "513770.SH"}) == "unknown_kind"
    assert reason(v, {"symbol": "513770.SH"}) == "unknown_kind"
    assert reason(v, dict(GOOD_TRADE), kind="units") == "unknown_kind"


def test_good_trade_is_exact_in_micros(v: Validator) -> None:
    ev = v.validate(with_(side=..., amount=...))
    assert isinstance(ev, Trade)
    assert ev.price == 1_072_000 and ev.volume == 1000 * MICRO
    assert ev.amount == 1072 * MICRO  # price x volume when amount is absent
    assert ev.side is None  # tick rule decides


def test_iso_timestamp_with_offset_and_naive_exchange_time(v: Validator) -> None:
    assert v.validate(with_(ts="2025-09-12T09:31:00+08:00")).ts_ms == TS
    assert v.validate(with_(ts="2025-09-12T01:31:00Z")).ts_ms == TS
    assert v.validate(with_(ts="2025-09-12T09:31:00")).ts_ms == TS  # naive = exchange time


def test_codec_roundtrip(v: Validator) -> None:
    events = [
        v.validate(dict(GOOD_TRADE)),
        v.validate({"kind": "units", "symbol": "513770.SH", "date": "2025-09-12", "shares_outstanding": 11696961300, "nav": 1.0698}),
        v.validate({"kind": "southbound", "symbol": "09988.HK", "ts": TS, "channel": "SZ", "buy_hkd": 123456789.12, "sell_hkd": 0.01, "seq": 7}),
        v.validate({"kind": "southbound_daily", "symbol": "09988.HK", "date": "2025-09-11", "buy_hkd": 12345678901.23, "sell_hkd": 9876543210.98}),
    ]
    assert [type(e) for e in events] == [Trade, Units, SouthboundTick, SouthboundDaily]
    for ev in events:
        assert v.decode(encode(ev)) == ev


@pytest.mark.parametrize("text, micros", [
    ("0.1", 100_000), ("1.072", 1_072_000), ("37100000000.01", 37_100_000_000_010_000),
    ("999999999.999999", 999_999_999_999_999), ("12345678901.23", 12_345_678_901_230_000),
])
def test_decimal_text_to_exact_micros(text: str, micros: int) -> None:
    assert to_micro(orjson.loads(text), "x") == micros
