"""Retention: what the engine keeps of each day, and for how long.

* ETF days: the last ``ETF_RETAIN_DAYS`` sessions in full; an older traded day is kept as its daily
  bar (a summary) for ``HISTORY_RETAIN_DAYS``, which the signals (MACD, new highs) read.
* The per-trade state: the current day holds its intraday curve with the net column (the windows
  are rebuilt from it after a restart) and its dedupe keys; the previous session holds a compacted
  curve (cumulative turnover, for the same-time comparison) and its dedupe keys while it still takes
  late trades; older days hold neither.
* Dedupe keys, and the per-order totals that class trades by order size, live as long as the slowest
  input stream still takes their day (``max_late_sessions``).
* Units records: those before the retained sessions fold into the AUM record, and the day's bar takes
  the record's shares and NAV (the units record wins over the bar, also once it is gone).
* Southbound days: ``SB_RETAIN_DAYS`` sessions (tiny; long streaks stay visible).
* Southbound quota records: ``QUOTA_RETAIN_DAYS`` sessions (only today's is shown; the few before it
  let a late record of a recent day still land on its own day instead of being refused).

Every day changed here is marked modified, so the next checkpoint writes it as it now is (or
deletes its records). Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from consumers.bars import DayBar
from monitor.calendars import local_date
from monitor.events import mul_micro, quota_key

if TYPE_CHECKING:  # the engine calls this module; only its type is needed here
    from consumers.engine import Engine

ETF_RETAIN_DAYS = 30  # trading days of ETF aggregates kept (20d window + volume-ratio look-back)
SB_RETAIN_DAYS = 260  # southbound days are tiny; kept long so long streaks stay visible
QUOTA_RETAIN_DAYS = 5  # southbound sessions of quota records kept, the current one included
HISTORY_RETAIN_DAYS = 1500  # trading days of daily bars / traded-day summaries held ("all" history, MACD)
# (EMA weights of closes older than that are below 1e-45: dropping them does not move a float)


def prune(engine: Engine) -> int:
    """Bound memory: expire window seconds and old days; compact the curves of days before the current
    one; forget the dedupe keys of sessions that no longer take trades or ticks. Returns how many
    day curves were compacted or dropped (a large release of memory when it is not 0).

    Every day changed here is marked modified, so the next checkpoint writes it as it now is.
    """
    now = engine.now_ms()
    if now is None:
        return 0
    released = 0
    engine.gaps.evaluate(now)
    now_sec = now // 1000
    # dedupe keys must outlive the slowest stream's accepted sessions (a lagging partition may still
    # send a duplicate of a day the others have left behind)
    clocks = engine.stream_clocks
    if any(s not in clocks for s in engine.expected_streams):
        slowest = None  # a partition not read yet may still hold any day's events: every key stays
    else:
        slowest = min(clocks.values()) if clocks else engine.as_of_ms
    slowest_day = local_date(slowest) if slowest is not None else None
    keys_from_of: dict[str, dt.date | None] = {}  # calendar -> oldest day whose keys are still needed

    def keys_from(cal_name: str) -> dt.date | None:
        if cal_name not in keys_from_of:
            keys_from_of[cal_name] = (engine.oldest_accepted_day(cal_name, slowest_day)
                                      if slowest_day is not None else None)
        return keys_from_of[cal_name]
    modified = engine.modified
    for sym, st in engine.etf.items():
        st.windows.advance(now_sec)
        cal = engine.cal.for_symbol(sym)
        cur = engine.current_day(cal, now)
        if cur is None:
            continue
        keep = cal.last_n(cur, ETF_RETAIN_DAYS)
        oldest = keep[0] if keep else cur
        prev = cal.previous(cur)
        hist = cal.last_n(cur, HISTORY_RETAIN_DAYS)
        hist_oldest = hist[0] if hist else cur
        etf_keys_from = keys_from(sym[-2:])
        for d in [d for d in st.days if d < oldest]:
            summary = DayBar.of_day(st.days.pop(d))  # the daily bar of a traded day outlives its trades
            modified.add((sym, d))  # its checkpoint records go too
            if summary is not None and d >= hist_oldest:
                st.summaries[d] = summary
        for d in [d for d in st.summaries if d < hist_oldest]:
            del st.summaries[d]
            modified.add((sym, d))
            engine.hist_version[sym] += 1
        for d, day in st.days.items():
            if d >= cur:
                continue
            if day.nets is not None:
                day.compact()
                released += 1
                modified.add((sym, d))
            if prev is not None and d < prev and len(day.secs):
                day.secs, day.amounts = type(day.secs)(day.secs.typecode), type(day.amounts)(day.amounts.typecode)
                released += 1
                modified.add((sym, d))
            if day.trade_ids is not None and etf_keys_from is not None and d < etf_keys_from:
                day.trade_ids = None
                day.orders = None  # the day takes no more trades: no order's amount can change
                modified.add((sym, d))
        old_units = sorted(d for d in st.units if d < oldest)
        for d in old_units[:-1]:  # the last one before the window is the baseline of the first inflow
            shares, nav = st.units.pop(d)
            modified.add((sym, d))
            engine.hist_version[sym] += 1
            aum = mul_micro(shares, nav)
            if st.aum_folded is None or aum > st.aum_folded:
                st.aum_folded = aum  # the AUM record survives the pruning of its day
            bar = engine.bars.get(sym, {}).get(d)
            if bar is not None and (bar.shares, bar.nav) != (shares, nav):
                # the units record wins over the bar's shares x NAV, also once the record is gone
                bar.shares, bar.nav = shares, nav
                engine.hist_version[sym] += 1
    for sym, bars in engine.bars.items():
        cal = engine.cal.for_symbol(sym)
        cur = engine.current_day(cal, now)
        hist = cal.last_n(cur, HISTORY_RETAIN_DAYS) if cur is not None else []
        if not hist:
            continue
        old = [d for d in bars if d < hist[0]]
        for d in old:
            del bars[d]
            modified.add((sym, d))
        if old:
            engine.hist_version[sym] += 1
    sb_cal = engine.cal["SB"]
    cur = engine.current_day(sb_cal, now)
    if cur is None:
        return released
    quota_keep = sb_cal.last_n(cur, QUOTA_RETAIN_DAYS)
    for channel, d in engine.quota.drop_before(quota_keep[0] if quota_keep else cur):
        modified.add((quota_key(channel), d))  # its checkpoint record goes too
    keep = sb_cal.last_n(cur, SB_RETAIN_DAYS)
    oldest = keep[0] if keep else cur
    sb_keys_from = keys_from("SB")
    for sym, sb in engine.sb.items():
        for d in [d for d in sb.days if d < oldest]:
            del sb.days[d]
            modified.add((sym, d))
        if sb_keys_from is not None:
            for d, sday in sb.days.items():
                if d < sb_keys_from and sday.seqs is not None:
                    sday.seqs = None
                    modified.add((sym, d))
    return released
