"""Prometheus exposition of the engine and the pipeline, built at scrape time.

The business gauges (23k series for 2,000 ETFs + 500 stocks) are formatted straight to
text: through prometheus_client's generic path (a Sample per series, label sorting and
validation) one scrape took ~200 ms of the event loop that also applies events. The few
pipeline families (counters, a histogram) still go through prometheus_client. Both halves
print the same bytes prometheus_client would (tests/unit/test_exposition.py checks it).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from consumers import sectors, views
from consumers.engine import Engine
from monitor.calendars import MARKETS
from monitor.documents import exact_money
from monitor.stats import LAG_BUCKETS, PipelineStats

P = "fundflow_"
# the order-class family's window: every class x window x ETF is a series (4 x 7 x 1,200 would be 34k, most of a
# market's /metrics budget); the JSON API has every window, and main (large + super_large) has them here
CLASS_WINDOWS = ("1d",)

MICRO = 1_000_000


def wall_ms() -> int:
    return int(time.time() * 1000)


def escape_label(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return value


class GaugeText:
    """One gauge family, rendered as samples are added."""

    __slots__ = ("name", "help", "lines")

    def __init__(self, name: str, help_: str) -> None:
        self.name = P + name
        self.help = help_
        self.lines: list[str] = []

    def add(self, labels: str, value: float) -> None:
        """``labels``: escaped ``name="value"`` pairs in label-name order, as prometheus_client sorts them."""
        d = float(value)
        # floatToGoString is repr() below a million (and not -inf or NaN: the comparisons are false for NaN)
        text = repr(d) if -1e300 < d < 1e6 else floatToGoString(d)
        self.lines.append(f"{self.name}{{{labels}}} {text}\n")

    def add_symbol(self, sym: str, value: float | None) -> None:
        """One sample labelled ``symbol`` (None: no sample)."""
        if value is not None:
            self.add(f'symbol="{sym}"', value)

    def add_money(self, sym: str, micros: int | None) -> None:
        """One sample labelled ``symbol``: integer micros as the currency unit (None: no sample)."""
        if micros is not None:
            self.add(f'symbol="{sym}"', micros / MICRO)

    def add_each(self, sym: str, label: str, values: Mapping[str, float | None], scale: int = 1,
                 first: str = "") -> None:
        """One sample per key of ``values`` / ``scale`` (None: no sample), labelled ``label`` = key and ``symbol``
        (``first``: escaped pairs that sort before both, with a trailing comma)."""
        for key, value in values.items():
            if value is not None:
                pair = f'{label}="{key}"'
                self.add(first + (f'{pair},symbol="{sym}"' if label < "symbol" else f'symbol="{sym}",{pair}'),
                         value / scale if scale != 1 else value)

    def add_money_each(self, sym: str, label: str, micros: Mapping[str, int | None], first: str = "") -> None:
        """``add_each`` of integer micros, as the currency unit."""
        self.add_each(sym, label, micros, MICRO, first)

    def add_labelled(self, labels: Mapping[str, str], value: float | None) -> None:
        """One sample with any labels (raw values: escaped and put in label-name order here); None: no sample."""
        if value is not None:
            self.add(",".join(f'{k}="{escape_label(v)}"' for k, v in sorted(labels.items())), value)

    def text(self, openmetrics: bool) -> str:
        help_ = self.help.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            help_ = help_.replace('"', r'\"')
        return f"# HELP {self.name} {help_}\n# TYPE {self.name} gauge\n" + "".join(self.lines)


def business_gauges(engine: Engine) -> list[GaugeText]:
    """Every business gauge family, from the typed views (the numbers the JSON API shows)."""
    families: list[GaugeText] = []
    for _ in business_steps(engine, families):
        pass
    return families


def business_steps(engine: Engine, families: list[GaugeText]) -> Iterator[None]:
    """Fills ``families``, yielding once per symbol so that a scrape can pause between symbols."""
    # the ETF and southbound views of this scrape, read again by the sector sums (sector symbols only)
    etf_seen: dict[str, views.EtfView] = {}
    sb_seen: dict[str, views.SouthboundView] = {}
    yield from _etf_gauges(engine, families, etf_seen)
    yield from _signal_gauges(engine, families)
    yield from _southbound_gauges(engine, families, sb_seen)
    yield from _quota_gauges(engine, families)
    yield from _sector_gauges(engine, families, etf_seen, sb_seen)


def _etf_gauges(engine: Engine, families: list[GaugeText], seen: dict[str, views.EtfView]) -> Iterator[None]:
    net = GaugeText("etf_net_inflow_cny", "Active net inflow (buyer- minus seller-initiated amount) over the window "
                    "(1m..1h by event time; 1d/5d/20d trading days), CNY.")
    creation = GaugeText("etf_creation_net_inflow_cny", "Creation/redemption net inflow (change in shares outstanding "
                         "x NAV) over the last 1/5/20 trading days, CNY.")
    ratio = GaugeText("etf_turnover_vs_prev_session_ratio", "Turnover today over the previous session's, whole day "
                      "or up to the same time of day (ratio).")
    turnover = GaugeText("etf_turnover_cny", "Turnover of the current trading day, CNY.")
    prev_turnover = GaugeText("etf_prev_turnover_cny", "Turnover of the previous trading day, CNY.")
    prev_same = GaugeText("etf_prev_turnover_same_time_cny",
                          "Turnover of the previous trading day up to the current time of day, CNY.")
    volume_ratio = GaugeText("etf_volume_ratio", "Volume per trading minute today over the average per minute of "
                             "the previous 5 sessions (ratio).")
    change = GaugeText("etf_price_change_ratio", "Last price over the previous session's last price, minus 1 (ratio).")
    last = GaugeText("etf_last_price_cny", "Last traded price today, CNY.")
    aum = GaugeText("etf_aum_cny", "Assets under management: latest shares outstanding x NAV, CNY.")
    main = GaugeText("etf_main_net_inflow_cny", "Active net inflow of large and super-large orders (by the aggressor "
                     "order's amount today) over the window, CNY.")
    by_class = GaugeText("etf_order_net_inflow_cny", "Active net inflow by order-size class of the aggressor order "
                         "(small, medium, large, super_large) over the session (window 1d), CNY.")
    iopv = GaugeText("etf_iopv_cny", "Latest IOPV (indicative value per share) published today, CNY.")
    premium = GaugeText("etf_premium_ratio", "Last price over today's latest IOPV, minus 1 (ratio; < 0 a discount).")
    families += [net, creation, ratio, turnover, prev_turnover, prev_same, volume_ratio, change, last, aum, main,
                 by_class, iopv, premium]
    for symbol in sorted(engine.etf):
        yield
        v = views.etf(engine, symbol)
        if v is None:
            continue
        if symbol in engine.sectors:
            seen[symbol] = v
        sym = escape_label(symbol)
        net.add_money_each(sym, "window", v.net_inflow)
        creation.add_money_each(sym, "window", v.creation_net_inflow)
        r = v.turnover_vs_prev_session
        ratio.add_each(sym, "basis", {"full_day": r.full_day, "same_time": r.same_time})
        turnover.add_money(sym, v.turnover)
        prev_turnover.add_money(sym, v.prev_turnover)
        prev_same.add_money(sym, v.prev_turnover_same_time)
        volume_ratio.add_symbol(sym, v.volume_ratio)
        change.add_symbol(sym, v.price_change_ratio)
        last.add_money(sym, v.last_price)
        aum.add_money(sym, v.aum)
        main.add_money_each(sym, "window", v.main_net_inflow)
        for cls, windows in v.order_net_inflow.items():
            by_class.add_money_each(sym, "window", {w: windows[w] for w in CLASS_WINDOWS}, f'class="{cls}",')
        iopv.add_money(sym, v.iopv)
        premium.add_symbol(sym, v.premium_ratio)


def _signal_gauges(engine: Engine, families: list[GaugeText]) -> Iterator[None]:
    """Market signals: new highs, AUM record, average turnover, MACD, basket look-through."""
    high = GaugeText("etf_new_high", "1 when today's high is >= the highest daily high of the previous 20/60/250 "
                     "trading days (all = all history held), else 0; absent while fewer days are held.")
    record = GaugeText("etf_aum_record_cny", "Highest AUM (shares outstanding x NAV) on record, CNY.")
    at_record = GaugeText("etf_aum_at_record", "1 when the latest AUM is the highest on record.")
    avg = GaugeText("etf_turnover_avg_cny", "Average turnover per closed trading day over the last 20 days or the "
                    "calendar year to date (today excluded), CNY.")
    avg_hkd = GaugeText("etf_turnover_avg_hkd", "Average turnover per closed trading day of an HK-listed ETF over the "
                        "last 20 days or the calendar year to date (today excluded), HKD.")
    dif = GaugeText("macd_dif", "MACD(12,26,9) DIF = EMA12 - EMA26 of daily closes (today's last price as today's "
                    "close).")
    dea = GaugeText("macd_dea", "MACD(12,26,9) DEA = EMA9 of DIF.")
    hist = GaugeText("macd_bar", "MACD(12,26,9) bar (histogram) = 2 x (DIF - DEA).")
    cross = GaugeText("macd_cross", "MACD cross on the current day: +1 golden (DIF crosses above DEA), -1 death, "
                      "0 none.")
    b_net = GaugeText("etf_basket_southbound_net_buy_hkd", "Sum over an ETF's holdings of weight x southbound net "
                      "buy over the last 1/5/20 southbound trading days, HKD.")
    b_top = GaugeText("etf_basket_top_weight_ratio", "Combined weight of the top n holdings (ratio).")
    families += [high, record, at_record, avg, avg_hkd, dif, dea, hist, cross, b_net, b_top]
    etfs = set(engine.etf)
    for symbol in sorted(etfs | set(engine.bars)):
        yield
        v = views.signals(engine, symbol)
        if v is None:
            continue
        sym = escape_label(symbol)
        if symbol in etfs:
            high.add_each(sym, "window", v.new_high)
            (avg_hkd if v.currency == "HKD" else avg).add_each(
                sym, "window", {k: exact_money(a) for k, a in v.turnover_avg.items()})
            record.add_money(sym, v.aum_record)
            at_record.add_symbol(sym, v.aum_at_record)
        m = v.macd  # all four are absent until 35 closes
        if m.dif is not None and m.dea is not None and m.histogram is not None:
            dif.add(f'symbol="{sym}"', float(m.dif))
            dea.add(f'symbol="{sym}"', float(m.dea))
            hist.add(f'symbol="{sym}"', float(m.histogram))
        cross.add_symbol(sym, m.cross)
    for symbol in sorted(engine.holdings):
        yield
        b = views.basket(engine, symbol)
        if b is None:
            continue
        sym = escape_label(symbol)
        b_net.add_each(sym, "window", {k: exact_money(n) for k, n in b.southbound_net_buy.items()})
        b_top.add_each(sym, "n", {k: float(w) for k, w in b.top_weight_ratio.items()})


def _southbound_gauges(engine: Engine, families: list[GaugeText],
                       seen: dict[str, views.SouthboundView]) -> Iterator[None]:
    sb_net = GaugeText("southbound_net_buy_hkd", "Southbound net buy (buy - sell) over the last 1/5/20 southbound "
                       "trading days, current day included, HKD.")
    streak = GaugeText("southbound_net_buy_streak_sessions", "Consecutive closed southbound trading sessions of net "
                       "buying (positive) or net selling (negative).")
    streak_sum = GaugeText("southbound_streak_net_buy_hkd", "Net buy summed over the current streak, HKD.")
    provisional = GaugeText("southbound_provisional_net_buy_hkd", "Net buy of the current, not yet closed "
                            "southbound day, HKD.")
    families += [sb_net, streak, streak_sum, provisional]
    for symbol in sorted(engine.sb):
        yield
        v = views.southbound(engine, symbol)
        if v is None:
            continue
        if symbol in engine.sectors:
            seen[symbol] = v
        sym = escape_label(symbol)
        sb_net.add_money_each(sym, "window", v.net_buy)
        streak.add_symbol(sym, v.streak_days)
        streak_sum.add_money(sym, v.streak_net_buy)
        provisional.add_money(sym, v.provisional_net_buy)


def _quota_gauges(engine: Engine, families: list[GaugeText]) -> Iterator[None]:
    """Per Stock Connect channel: today's quota record and the channel's net buy over its stocks."""
    balance = GaugeText("southbound_quota_balance_cny", "Southbound daily quota balance left on the Stock Connect "
                        "channel (SH or SZ), latest record by event time of the current southbound day, CNY.")
    used = GaugeText("southbound_quota_used_ratio", "Share of the channel's southbound daily quota used: 1 - "
                     "balance / quota of the current day's latest record (ratio).")
    net = GaugeText("southbound_channel_net_buy_hkd", "Southbound net buy (buy - sell) of the channel's intraday "
                    "ticks summed over stocks, over the last 1/5/20 southbound trading days, current day included, "
                    "HKD.")
    families += [balance, used, net]
    yield
    for v in views.southbound_quota(engine):
        channel = f'channel="{escape_label(v.channel)}"'
        if v.balance is not None:
            balance.add(channel, v.balance / MICRO)
        if v.used_ratio is not None:
            used.add(channel, v.used_ratio)
        for window, micros in v.net_buy.items():
            if micros is not None:
                net.add(f'{channel},window="{window}"', micros / MICRO)


def _sector_gauges(engine: Engine, families: list[GaugeText], etf_seen: Mapping[str, views.EtfView],
                   sb_seen: Mapping[str, views.SouthboundView]) -> Iterator[None]:
    """Per sector of ``[sectors] csv`` with data, the sums of consumers.sectors (the /api/v1/sectors rows), from
    the views the ETF and southbound families read in this scrape."""
    net = GaugeText("sector_net_inflow_cny", "Active net inflow summed over a sector's ETFs, last 1/5/20 trading "
                    "days, CNY.")
    main = GaugeText("sector_main_net_inflow_cny", "Main (large + super-large order) net inflow summed over a "
                     "sector's ETFs, last 1/5/20 trading days, CNY.")
    sb_net = GaugeText("sector_southbound_net_buy_hkd", "Southbound net buy summed over a sector's HK stocks, last "
                       "1/5/20 southbound trading days, HKD.")
    families += [net, main, sb_net]
    totals = sectors.SectorTotals(engine)
    for symbol in engine.sectors:
        yield
        totals.add(symbol, etf_seen, sb_seen)
    by_sector: dict[str, list[tuple[str, sectors.SectorRow]]] = {}
    for window in totals.windows:
        for row in totals.rows(window):
            if row.symbols:  # a sector none of whose symbols has data: no samples rather than zeros
                by_sector.setdefault(row.sector, []).append((window, row))
    for sector in sorted(by_sector):
        for window, row in by_sector[sector]:
            labels = {"sector": sector, "window": window}
            net.add_labelled(labels, row.etf_net_inflow / MICRO)
            main.add_labelled(labels, row.etf_main_net_inflow / MICRO)
            sb_net.add_labelled(labels, row.southbound_net_buy / MICRO)


class PipelineCollector(Collector):
    """Counters, lag and clocks of the pipeline: a few dozen series, through prometheus_client."""

    def __init__(self, engine: Engine, stats: PipelineStats, market_clock_ms: Callable[[], int]) -> None:
        self.engine = engine
        self.stats = stats
        self.market_clock_ms = market_clock_ms

    def collect(self) -> Iterator[Any]:
        engine, stats = self.engine, self.stats
        engine.gaps.evaluate(engine.now_ms())  # decide the holes whose grace has passed since the last prune
        for name, counts, help_ in (
            ("events_applied", engine.applied, "Events applied to state."),
            ("events_duplicate", engine.duplicates,
             "Events ignored as duplicates (same trade_id, or symbol+channel+seq)."),
            ("events_late", engine.late, "Events applied later than the grace behind the stream clock."),
            ("feed_gaps", engine.gaps.gaps, "Sequence numbers missing from a feed once a later one arrived and the "
             "grace passed (southbound per stock, channel and day; trades that carry seq per symbol and day)."),
            ("feed_gap_fills", engine.gaps.late_fills, "Sequence numbers that arrived after being counted as a gap "
             "(fundflow_feed_gaps_total does not go back)."),
        ):
            fam = CounterMetricFamily(P + name, help_, labels=["kind"])
            for kind, n in sorted(counts.items()):
                fam.add_metric([kind], n)
            yield fam
        pairs: tuple[tuple[str, Counter[tuple[str, str]], list[str], str], ...] = (
            ("events_ingested", stats.ingested, ["source", "kind"], "Events accepted by a source."),
            ("events_rejected", stats.rejected, ["source", "reason"], "Inputs rejected and dead-lettered, by reason."),
        )
        for name, pair_counts, labels, help_ in pairs:
            fam = CounterMetricFamily(P + name, help_, labels=labels)
            for key, n in sorted(pair_counts.items()):
                fam.add_metric(list(key), n)
            yield fam
        fam = CounterMetricFamily(P + "source_reconnects", "Reconnections of a source.", labels=["source"])
        for src, n in sorted(stats.reconnects.items()):
            fam.add_metric([src], n)
        yield fam
        last = GaugeMetricFamily(P + "last_event_timestamp_seconds", "Wall-clock time the last event was received, "
                                 "unix seconds.", labels=["source"])
        for src, t in sorted(stats.last_event_wall_s.items()):
            last.add_metric([src], t)
        yield last
        conn = GaugeMetricFamily(P + "source_connected", "1 when the source is connected.", labels=["source"])
        for src, up in sorted(stats.connected.items()):
            conn.add_metric([src], 1.0 if up else 0.0)
        yield conn
        yield GaugeMetricFamily(P + "ingest_buffered_events", "Events accepted but not yet acknowledged by the bus.",
                                value=stats.buffered)
        if stats.bus_available is not None:
            yield GaugeMetricFamily(P + "bus_available", "1 while the bus acknowledges the ingestors' writes, 0 while "
                                    "they fail (brokers down, fewer in-sync replicas than min.insync.replicas).",
                                    value=1.0 if stats.bus_available else 0.0)
        lag = GaugeMetricFamily(P + "consumer_lag_messages", "Messages behind the end of each partition.",
                                labels=["topic", "partition"])
        for (topic, part), n in sorted(stats.consumer_lag.items()):
            lag.add_metric([topic, str(part)], n)
        yield lag
        yield CounterMetricFamily(P + "events_replayed", "Events applied again to rebuild state after a rebalance "
                                  "(counted once already, not in events_applied).", value=stats.replayed)
        if stats.recovery_seconds is not None:
            yield GaugeMetricFamily(P + "state_recovery_seconds", "Time the last state recovery took, seconds.",
                                    value=stats.recovery_seconds)
        cum, buckets = 0, []
        for bound, n in zip(LAG_BUCKETS + (float("inf"),), stats.lag_counts, strict=True):
            cum += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cum))
        yield HistogramMetricFamily(P + "event_lag_seconds", "Event time to applied, seconds.", buckets=buckets,
                                    sum_value=stats.lag_sum)
        now_ms = self.market_clock_ms()
        market = GaugeMetricFamily(P + "market_open", "1 while the exchange is in a trading session.",
                                   labels=["market"])
        for m in MARKETS:
            market.add_metric([m], 1.0 if engine.cal[m].is_open(now_ms) else 0.0)
        yield market
        as_of = engine.now_ms()
        if as_of is not None:
            yield GaugeMetricFamily(P + "stream_as_of_timestamp_seconds", "The stream clock (greatest event time), "
                                    "unix seconds.", value=as_of / 1000)


class Exposition:
    """What /metrics serves: the business gauges, then the pipeline families.

    A page of 2,000 ETFs + 500 stocks is ~50 ms of CPU on the event loop that also applies
    events, so the served page (``render_async``) hands the loop back every
    ``SLICE_SYMBOLS`` symbols, and one page is rendered at a time: concurrent scrapes wait
    their turn (as they did when a render held the loop) instead of all holding a page.
    """

    SLICE_SYMBOLS = 100

    def __init__(self, engine: Engine, stats: PipelineStats, market_clock_ms: Callable[[], int] = wall_ms) -> None:
        """``market_clock_ms`` decides fundflow_market_open: the wall clock, or the stream clock in the demo."""
        self.engine = engine
        self.pipeline = CollectorRegistry(auto_describe=False)
        self.pipeline.register(PipelineCollector(engine, stats, market_clock_ms))
        self._one_at_a_time = asyncio.Lock()

    def render(self, openmetrics: bool = False) -> bytes:
        """Prometheus text format 0.0.4, or OpenMetrics 1.0 (which ends with ``# EOF``, after the pipeline)."""
        return self._page(business_gauges(self.engine), openmetrics)

    async def render_async(self, openmetrics: bool = False) -> bytes:
        """``render``, pausing between slices of symbols so that events keep being applied meanwhile."""
        async with self._one_at_a_time:
            families: list[GaugeText] = []
            for i, _ in enumerate(business_steps(self.engine, families), 1):
                if i % self.SLICE_SYMBOLS == 0:
                    await asyncio.sleep(0)
            return self._page(families, openmetrics)

    def _page(self, families: list[GaugeText], openmetrics: bool) -> bytes:
        business = "".join(fam.text(openmetrics) for fam in families).encode()
        return business + (generate_openmetrics if openmetrics else generate_latest)(self.pipeline)

    @staticmethod
    def content_type(openmetrics: bool) -> str:
        return OPENMETRICS_CONTENT_TYPE if openmetrics else CONTENT_TYPE_LATEST
