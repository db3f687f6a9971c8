"""The one spec behind every alert, recording rule and dashboard panel.

Everything here is plain data; :mod:`monitor.ops.render` turns it into
Prometheus rule files and Grafana provisioning. Changing a threshold, a panel
or an alert happens in this file (or in the ``[alerts]`` config section), and
``fundflow rules render`` brings ``grafana/`` up to date.

Conventions (monitoring-mixin):

* recording rules are named ``level:metric:operation``;
* alerts are CamelCase with the ``Fundflow`` prefix, carry ``for:``, a
  ``severity`` label (``critical`` pages, ``warning``, ``info``), a static
  ``summary``, a templated ``description`` (``{{ $labels.symbol }}``,
  ``{{ $value }}``) and a ``runbook_url`` pointing at the section of
  ``docs/runbook.md`` named after the alert;
* alerts that only make sense while an exchange trades are gated on
  ``fundflow_market_open`` (the symbol's own market, one named market, or any market).

Placeholders: ``{field}`` or ``{field:format}`` in an alert's ``value``,
``threshold``, ``summary``, ``description`` or gate window, and in a panel
target's ``expr``, is replaced by that field of :class:`~monitor.config.AlertsConfig`
(``{streak_days}``, ``{large_net_inflow_1d_cny:,.0f}``). PromQL label matchers
(``{symbol="x"}``) and Go templates (``{{ $value }}``) are left alone. An
unknown name is an error, so a typo cannot slip into a rule.

Adding an alert is one :class:`Alert` entry in :data:`ALERTS` plus a section
in ``docs/runbook.md`` (the tests check both), for example (the real entry is in
:data:`ALERTS`)::

    Alert(
        name="FundflowEtfNewHighOnHeavyVolume",
        group="business",
        value='fundflow_etf_volume_ratio and on(symbol) fundflow_etf_new_high{window="250d"} == 1',
        op=">=", threshold="{new_high_volume_ratio}", for_="5m", severity="info",
        summary="An ETF reaches a 250-day high on heavy volume.",
        description="{{ $labels.symbol }} is at a 250-day high with volume ratio {{ printf \\"%.2f\\" $value }}.",
        gate=SYMBOL_MARKET,
    )
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.config import AlertsConfig, Config

__all__ = [
    "PREFIX",
    "SEVERITIES",
    "DATASOURCE_UID",
    "MarketGate",
    "SYMBOL_MARKET",
    "ANY_MARKET",
    "HK_MARKET",
    "RecordingRule",
    "Alert",
    "ResolvedAlert",
    "Target",
    "Panel",
    "Row",
    "Variable",
    "Dashboard",
    "Spec",
    "RECORDING_RULES",
    "ALERTS",
    "DASHBOARDS",
    "RULE_GROUPS",
    "build",
    "fill",
    "runbook_anchor",
    "parse_duration",
]

PREFIX = "Fundflow"
SEVERITIES = ("critical", "warning", "info")
DATASOURCE_UID = "prometheus"  # the provisioned Prometheus datasource; dashboards and Grafana rules refer to it
RULE_GROUPS = {  # Prometheus rule group (and Grafana rule group) names, in file order
    "recording": "fundflow.recording",
    "business": "fundflow.business",
    "pipeline": "fundflow.pipeline",
}

_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w|y))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}\"]*))?\}")


# --------------------------------------------------------------------------- helpers


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``90s``, ``1m30s``, ``0s``); raises ValueError."""
    if not isinstance(text, str) or not _DURATION.match(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def _num(value: Any) -> str:
    """A threshold as PromQL/readable text: 10, 1.5, 500000000 (no trailing .0)."""
    if isinstance(value, bool):
        raise TypeError("boolean threshold")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def fill(text: str, alerts: AlertsConfig) -> str:
    """Replace ``{field}`` / ``{field:spec}`` with fields of ``alerts`` (see module doc)."""
    values = dataclasses.asdict(alerts)

    def sub(m: re.Match[str]) -> str:
        name, spec = m.group(1), m.group(2)
        if name not in values:
            raise KeyError(f"unknown placeholder {{{name}}} in {text!r}; AlertsConfig has {sorted(values)}")
        value = values[name]
        return format(value, spec) if spec else _num(value)

    return _PLACEHOLDER.sub(sub, text)


def runbook_anchor(alert_name: str) -> str:
    """The GitHub anchor of the ``## <AlertName>`` heading in docs/runbook.md."""
    return alert_name.lower()


def _kebab(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).lower()


def _simple_selector(expr: str) -> bool:
    return re.fullmatch(r"-?[A-Za-z_:][A-Za-z0-9_:]*(\{[^{}]*\})?", expr.strip()) is not None


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class RecordingRule:
    """``record: expr`` in the ``fundflow.recording`` group. ``record`` is ``level:metric:operation``."""

    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_]*:[a-z_][a-z0-9_]*:[a-z0-9_]+", self.record):
            raise ValueError(f"recording rule {self.record!r} is not named level:metric:operation")


@dataclass(frozen=True)
class MarketGate:
    """Only alert while an exchange trades.

    ``per_symbol``: the symbol's own market, taken from its suffix (``513770.SH``
    -> ``SH``); the alert gains a ``market`` label. Otherwise: while ``market``
    is open when one is named (the southbound quota is only used while Hong Kong
    trades, whatever the series' labels), else while any market is open.
    ``held_for``: the market must have been open for this whole window
    (a PromQL duration, placeholders allowed), so an alert that measures "no
    event for N seconds" does not fire right after the open or the lunch break.
    """

    per_symbol: bool = True
    held_for: str = ""
    market: str = ""  # SH, SZ or HK: that market only (not with per_symbol)

    def __post_init__(self) -> None:
        if self.market and (self.per_symbol or self.market not in ("SH", "SZ", "HK")):
            raise ValueError(f"market gate {self.market!r}: one of SH/SZ/HK, and not per symbol")

    def source(self, alerts: AlertsConfig) -> str:
        """PromQL giving 1 while open: per market (label ``market``) or one series without labels."""
        base = "market:fundflow_market_open:max"
        if self.market:
            base += f'{{market="{self.market}"}}'
        if self.held_for:
            base = f"min_over_time({base}[{fill(self.held_for, alerts)}])"
        return base if self.per_symbol else f"max({base})"


SYMBOL_MARKET = MarketGate(per_symbol=True)
ANY_MARKET = MarketGate(per_symbol=False)
HK_MARKET = MarketGate(per_symbol=False, market="HK")

_SYMBOL_TO_MARKET = 'label_replace({expr}, "market", "$1", "symbol", ".+[.](SH|SZ|HK)")'


@dataclass(frozen=True)
class Alert:
    """One alert, rendered both as a Prometheus alerting rule and a Grafana-managed rule.

    The condition is ``value op threshold`` (plus the market gate): ``value`` is
    PromQL for the measured quantity, one series per thing that can alert (a
    symbol, a source, a topic), and it is what ``{{ $value }}`` shows. Grafana
    queries ``value`` as its query A, so it should return data while the
    service runs; the threshold is applied by a Grafana math expression.
    """

    name: str
    group: Literal["business", "pipeline"]
    value: str
    op: Literal[">", ">=", "<", "<="]
    threshold: str  # a number or a placeholder such as "{streak_days}"
    for_: str  # default pending duration; [alerts] for_overrides wins
    severity: Literal["critical", "warning", "info"]
    summary: str  # static sentence
    description: str  # Go template: {{ $labels.symbol }}, {{ $value }}
    gate: MarketGate | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(rf"{PREFIX}[A-Z][A-Za-z0-9]+", self.name):
            raise ValueError(f"alert {self.name!r}: CamelCase with the {PREFIX} prefix")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r} not in {SEVERITIES}")
        if self.op not in (">", ">=", "<", "<="):
            raise ValueError(f"alert {self.name}: op {self.op!r}")
        if self.group not in ("business", "pipeline"):
            raise ValueError(f"alert {self.name}: group {self.group!r}")
        parse_duration(self.for_)
        if "{{" in self.summary:
            raise ValueError(f"alert {self.name}: summary must be static")

    @property
    def grafana_uid(self) -> str:
        return _kebab(self.name)[:40]

    def resolve(self, alerts: AlertsConfig) -> ResolvedAlert:
        threshold = fill(self.threshold, alerts)
        float(threshold)  # must be a number once filled
        value = fill(self.value, alerts)
        if self.gate is not None and self.gate.per_symbol:
            value = _SYMBOL_TO_MARKET.format(expr=value)
        gate_source = self.gate.source(alerts) if self.gate else None
        lhs = value if _simple_selector(value) or value.startswith("label_replace(") else f"({value})"
        expr = f"{lhs} {self.op} {threshold}"
        if self.gate is not None:
            on = "market" if self.gate.per_symbol else ""
            expr += f" and on({on}) ({gate_source} == 1)"
        overrides = _for_overrides(alerts)
        for_ = overrides.get(self.name, self.for_)
        url = alerts.runbook_base_url.rstrip("#") + "#" + runbook_anchor(self.name)
        return ResolvedAlert(
            name=self.name,
            group=self.group,
            expr=expr,
            value=value,
            op=self.op,
            threshold=threshold,
            gate=gate_source,
            for_=for_,
            labels={**dict(self.labels), "severity": self.severity},
            annotations={
                "summary": fill(self.summary, alerts),
                "description": fill(self.description, alerts),
                "runbook_url": url,
            },
            grafana_uid=self.grafana_uid,
        )


@dataclass(frozen=True)
class ResolvedAlert:
    """An :class:`Alert` with the config applied: what the renderers write."""

    name: str
    group: str
    expr: str  # full Prometheus condition
    value: str  # the measured quantity (Grafana query A)
    op: str
    threshold: str
    gate: str | None  # PromQL, 1 while open (Grafana query G), or None
    for_: str
    labels: dict[str, str]
    annotations: dict[str, str]
    grafana_uid: str


def _for_overrides(alerts: AlertsConfig) -> dict[str, str]:
    raw: Any = alerts.for_overrides
    if isinstance(raw, str):  # FUNDFLOW_ALERTS__FOR_OVERRIDES="Name=5m,Other=1m"
        pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
        if any(len(p) != 2 for p in pairs):
            raise ValueError(f"[alerts] for_overrides: expected Name=duration pairs, got {raw!r}")
        raw = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(raw, Mapping):
        raise ValueError(f"[alerts] for_overrides must be a table of alert name = duration, got {raw!r}")
    known = {a.name for a in ALERTS}
    out: dict[str, str] = {}
    for name, value in raw.items():
        if name not in known:
            raise ValueError(f"[alerts] for_overrides: unknown alert {name!r} (known: {', '.join(sorted(known))})")
        parse_duration(str(value))
        out[name] = str(value)
    return out


# --------------------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel. ``may_be_empty``: series that exist only once
    something happened (a rejection of some reason); every other target must
    return data against a running service (the live test checks it)."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False  # format=table (one row per series, labels as columns)
    may_be_empty: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    kind: Literal["timeseries", "table", "stat", "bargauge"]
    targets: tuple[Target, ...]
    description: str = ""
    unit: str = ""
    decimals: int | None = None
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[str, str], ...] = ()  # (value or placeholder, color); first value "" = base
    mappings: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # value -> (text, color)
    sort_by: tuple[str, bool] | None = None  # table: (column, descending)
    transformations: tuple[Mapping[str, Any], ...] = ()
    link_symbol: bool = False  # table/bargauge rows link to the Symbol detail board
    # per-field overrides: (field display name, {property id: value}), e.g.
    # ("MACD bar", {"custom.drawStyle": "bars"}) or ("top 4 weight", {"unit": "percentunit"})
    overrides: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Variable:
    """A query template variable: ``label_values(<selector>, <label>)``."""

    name: str
    label: str
    selector: str
    label_name: str

    @property
    def query(self) -> str:
        return f"label_values({self.selector}, {self.label_name})"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...] = ()
    time_from: str = "now-6h"
    refresh: str = "30s"
    tags: tuple[str, ...] = ("fundflow",)

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"

    def panels(self) -> Iterable[Panel]:
        for row in self.rows:
            yield from row.panels


# --------------------------------------------------------------------------- the spec


RECORDING_RULES: tuple[RecordingRule, ...] = (
    RecordingRule("market:fundflow_market_open:max", "max by (market) (fundflow_market_open)"),
    RecordingRule("source:fundflow_events_ingested:rate1m",
                  "sum by (source) (rate(fundflow_events_ingested_total[1m]))"),
    RecordingRule("kind:fundflow_events_applied:rate1m", "sum by (kind) (rate(fundflow_events_applied_total[1m]))"),
    RecordingRule("reason:fundflow_events_rejected:rate5m",
                  "sum by (reason) (rate(fundflow_events_rejected_total[5m]))"),
    # no series at all until the first rejection: 0 then, so the dead-letter alert and panel always have data
    RecordingRule(":fundflow_events_rejected:rate5m", "sum(rate(fundflow_events_rejected_total[5m])) or vector(0)"),
    RecordingRule(":fundflow_event_lag_seconds:histogram_quantile",
                  "histogram_quantile(0.5, sum by (le) (rate(fundflow_event_lag_seconds_bucket[5m])))",
                  {"quantile": "0.5"}),
    RecordingRule(":fundflow_event_lag_seconds:histogram_quantile",
                  "histogram_quantile(0.99, sum by (le) (rate(fundflow_event_lag_seconds_bucket[5m])))",
                  {"quantile": "0.99"}),
    RecordingRule("topic:fundflow_consumer_lag_messages:sum", "sum by (topic) (fundflow_consumer_lag_messages)"),
    RecordingRule("source:fundflow_last_event_age_seconds:min",
                  "time() - max by (source) (fundflow_last_event_timestamp_seconds)"),
)

_MONEY = "{{ $value | humanize }}"
_RATIO = '{{ printf "%.2f" $value }}'

ALERTS: tuple[Alert, ...] = (
    # -- business signals ---------------------------------------------------------------
    Alert(
        name="FundflowSouthboundNetBuyStreak",
        group="business",
        value="fundflow_southbound_net_buy_streak_sessions",
        op=">=",
        threshold="{streak_days}",
        for_="5m",
        severity="info",
        summary="Southbound funds have net-bought a stock on many consecutive trading days.",
        description="Southbound funds net-bought {{ $labels.symbol }} on {{ $value }} consecutive closed "
                    "trading days (threshold {streak_days}).",
    ),
    Alert(
        name="FundflowSouthboundNetSellStreak",
        group="business",
        value="-fundflow_southbound_net_buy_streak_sessions",
        op=">=",
        threshold="{streak_days}",
        for_="5m",
        severity="info",
        summary="Southbound funds have net-sold a stock on many consecutive trading days.",
        description="Southbound funds net-sold {{ $labels.symbol }} on {{ $value }} consecutive closed "
                    "trading days (threshold {streak_days}).",
    ),
    Alert(
        name="FundflowEtfTurnoverSurge",
        group="business",
        value='fundflow_etf_turnover_vs_prev_session_ratio{basis="same_time"}',
        op=">=",
        threshold="{turnover_same_time_ratio}",
        for_="5m",
        severity="warning",
        summary="ETF turnover is well above the previous session's at the same time of day.",
        description="{{ $labels.symbol }} has turned over " + _RATIO + "x the previous session's turnover "
                    "at the same time of day (threshold {turnover_same_time_ratio}x).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfVolumeRatioHigh",
        group="business",
        value="fundflow_etf_volume_ratio",
        op=">=",
        threshold="{volume_ratio}",
        for_="5m",
        severity="warning",
        summary="ETF volume per minute is well above its 5-session average.",
        description="{{ $labels.symbol }} volume ratio is " + _RATIO + ": volume per minute today over the "
                    "average of the previous 5 sessions (threshold {volume_ratio}).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfLargeNetInflow",
        group="business",
        value='fundflow_etf_net_inflow_cny{window="1d"}',
        op=">=",
        threshold="{large_net_inflow_1d_cny}",
        for_="1m",
        severity="warning",
        summary="Large active net inflow into an ETF today.",
        description="{{ $labels.symbol }} active net inflow this session is " + _MONEY + " CNY "
                    "(threshold {large_net_inflow_1d_cny:,.0f} CNY).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfLargeNetOutflow",
        group="business",
        value='-fundflow_etf_net_inflow_cny{window="1d"}',
        op=">=",
        threshold="{large_net_inflow_1d_cny}",
        for_="1m",
        severity="warning",
        summary="Large active net outflow from an ETF today.",
        description="{{ $labels.symbol }} active net outflow this session is " + _MONEY + " CNY "
                    "(threshold {large_net_inflow_1d_cny:,.0f} CNY).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfMainNetInflow",
        group="business",
        # main force = large + super-large orders (classed by the aggressor order's amount today)
        value='fundflow_etf_main_net_inflow_cny{window="1d"}',
        op=">=",
        threshold="{main_net_inflow_1d_cny}",
        for_="1m",
        severity="warning",
        summary="Large main-force net inflow into an ETF today.",
        description="{{ $labels.symbol }} main-force (large and super-large order) net inflow this session is "
                    + _MONEY + " CNY (threshold {main_net_inflow_1d_cny:,.0f} CNY).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfMainNetOutflow",
        group="business",
        value='-fundflow_etf_main_net_inflow_cny{window="1d"}',  # main net 1d <= -threshold
        op=">=",
        threshold="{main_net_inflow_1d_cny}",
        for_="1m",
        severity="warning",
        summary="Large main-force net outflow from an ETF today.",
        description="{{ $labels.symbol }} main-force (large and super-large order) net outflow this session is "
                    + _MONEY + " CNY (threshold {main_net_inflow_1d_cny:,.0f} CNY).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfPremiumHigh",
        group="business",
        # premium (> 0) or discount (< 0) of the last price to the IOPV; 15 s IOPVs, so 5m is ~20 of them
        value="abs(fundflow_etf_premium_ratio)",
        op=">=",
        threshold="{premium_ratio}",
        for_="5m",
        severity="warning",
        summary="An ETF trades far from its IOPV (premium or discount).",
        description="{{ $labels.symbol }} last price is {{ $value | humanizePercentage }} away from its IOPV "
                    "(premium or discount, threshold {premium_ratio:.2%}).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowSouthboundQuotaNearlyUsed",
        group="business",
        value="fundflow_southbound_quota_used_ratio",  # 1 - balance / quota, per channel (SH, SZ)
        op=">=",
        threshold="{quota_used_ratio}",
        for_="1m",
        severity="warning",
        summary="Most of a Stock Connect channel's daily southbound quota is used.",
        description="The {{ $labels.channel }} channel has used {{ $value | humanizePercentage }} of today's "
                    "southbound quota (threshold {quota_used_ratio:.1%}).",
        gate=HK_MARKET,
    ),
    # -- market signals (issue 11: new highs, AUM records) -------------------------------
    Alert(
        name="FundflowEtfNewHighOnHeavyVolume",
        group="business",
        # the volume ratio of ETFs whose high today reaches the 250-day high ("==" binds before "and")
        value='fundflow_etf_volume_ratio and on(symbol) fundflow_etf_new_high{window="250d"} == 1',
        op=">=",
        threshold="{new_high_volume_ratio}",
        for_="5m",
        severity="info",
        summary="An ETF reaches a 250-day high on heavy volume.",
        description="{{ $labels.symbol }} is at a 250-trading-day high with volume ratio " + _RATIO +
                    " (threshold {new_high_volume_ratio}).",
        gate=SYMBOL_MARKET,
    ),
    Alert(
        name="FundflowEtfAumRecord",
        group="business",
        # AUM (shares outstanding x NAV) of ETFs whose AUM is the highest on record
        value="fundflow_etf_aum_cny and on(symbol) fundflow_etf_aum_at_record == 1",
        op=">",
        threshold="0",
        for_="5m",
        severity="info",
        summary="An ETF's assets under management reach a record.",
        description="{{ $labels.symbol }} AUM is " + _MONEY + " CNY, the highest on record.",
    ),
    # -- pipeline -----------------------------------------------------------------------
    Alert(
        name="FundflowFeedStalled",
        group="pipeline",
        value="source:fundflow_last_event_age_seconds:min",
        op=">",
        threshold="{feed_stall_seconds}",
        for_="1m",
        severity="critical",
        summary="A market-data source has delivered no event while the market is open.",
        description="No event from source {{ $labels.source }} for {{ $value | humanizeDuration }} while a "
                    "market has been open (threshold {feed_stall_seconds}s).",
        gate=MarketGate(per_symbol=False, held_for="{feed_stall_seconds}s"),
    ),
    Alert(
        name="FundflowFeedGap",
        group="pipeline",
        # missing seqs counted in the last 10 minutes, over all consumers; no market gate: the counter
        # moves only when events arrive, and a gap found just after the close matters as much
        value="sum by (kind) (increase(fundflow_feed_gaps_total[10m]))",
        op=">",
        threshold="0",
        for_="1m",
        severity="warning",
        summary="A market-data feed skipped sequence numbers.",
        description="About {{ printf \"%.0f\" $value }} {{ $labels.kind }} sequence numbers went missing in the last "
                    "10 minutes (a later one arrived and the grace passed without them): today's figures lack "
                    "those events.",
    ),
    Alert(
        name="FundflowSourceDisconnected",
        group="pipeline",
        value="fundflow_source_connected",
        op="<",
        threshold="1",
        for_="2m",
        severity="warning",
        summary="A market-data source is disconnected during market hours.",
        description="Source {{ $labels.source }} on {{ $labels.instance }} has been disconnected "
                    "during market hours (connected = {{ $value }}).",
        gate=ANY_MARKET,
    ),
    Alert(
        name="FundflowConsumerLagHigh",
        group="pipeline",
        value="topic:fundflow_consumer_lag_messages:sum",
        op=">",
        threshold="{consumer_lag_messages}",
        for_="5m",
        severity="warning",
        summary="The fundflow consumers are falling behind Kafka.",
        description="The consumer group is {{ $value | humanize }} messages behind on topic {{ $labels.topic }} "
                    "(threshold {consumer_lag_messages:,}).",
    ),
    Alert(
        name="FundflowDeadLetterRateHigh",
        group="pipeline",
        value=":fundflow_events_rejected:rate5m",
        op=">",
        threshold="{deadletter_rate_per_second}",
        for_="5m",
        severity="warning",
        summary="Many input events are rejected to the dead-letter topic.",
        description="{{ printf \"%.2f\" $value }} events per second are rejected to fundflow.deadletter "
                    "(threshold {deadletter_rate_per_second}/s).",
    ),
    Alert(
        name="FundflowStateRecoverySlow",
        group="pipeline",
        value="fundflow_state_recovery_seconds",
        op=">",
        threshold="{state_recovery_seconds}",
        for_="1m",
        severity="warning",
        summary="A consumer took long to recover its state on start or rebalance.",
        description="The last state recovery of {{ $labels.instance }} took {{ $value | humanizeDuration }} "
                    "(threshold {state_recovery_seconds}s).",
    ),
    Alert(
        name="FundflowTargetDown",
        group="pipeline",
        value='up{job=~"fundflow.*"}',
        op="<",
        threshold="1",
        for_="5m",
        severity="critical",
        summary="Prometheus cannot scrape a fundflow process.",
        description="Prometheus has failed to scrape {{ $labels.job }} at {{ $labels.instance }} "
                    "(up = {{ $value }}).",
    ),
)

# dashboards ------------------------------------------------------------------------------

_SYM = '{symbol="$symbol"}'
_MAIN_1D = 'fundflow_etf_main_net_inflow_cny{window="1d"}'
TO_SYMBOL_DETAIL = "/d/fundflow-symbol/symbol-detail?var-symbol=${__data.fields.symbol}&${__url_time_range}"

_OVERVIEW = Dashboard(
    uid="fundflow-overview",
    title="Fund flow overview",
    description="Southbound net buys and streaks, ETF net inflows, main-force flows by order class, premiums to "
                "IOPV, the southbound quota, sector flows, turnover against the previous session, volume ratio "
                "and the fundflow alerts that are firing.",
    time_from="now-12h",
    rows=(
        Row("Southbound (Stock Connect)", (
            Panel("Top southbound net buys, 5 days", "bargauge",
                  (Target('topk(10, fundflow_southbound_net_buy_hkd{window="5d"})', "{{symbol}}", instant=True),),
                  description="Net buy (buy - sell) over the last 5 southbound trading days, today included.",
                  unit="currencyHKD", width=8, height=9, link_symbol=True),
            Panel("Top southbound net buys, 20 days", "bargauge",
                  (Target('topk(10, fundflow_southbound_net_buy_hkd{window="20d"})', "{{symbol}}", instant=True),),
                  description="Net buy over the last 20 southbound trading days, today included.",
                  unit="currencyHKD", width=8, height=9, link_symbol=True),
            Panel("Current streaks", "table",
                  (Target("max by (symbol) (fundflow_southbound_net_buy_streak_sessions != 0)", instant=True,
                          table=True),
                   Target("max by (symbol) (fundflow_southbound_streak_net_buy_hkd) "
                          "and on(symbol) (fundflow_southbound_net_buy_streak_sessions != 0)", instant=True,
                          table=True)),
                  description="Consecutive closed trading days of southbound net buying (positive) or "
                              "selling (negative), with the net buy summed over the streak. "
                              "Alerts at {streak_days} days.",
                  width=8, height=9, sort_by=("Streak (days)", True), link_symbol=True,
                  thresholds=(("", "text"), ("{streak_days}", "orange")),
                  transformations=(
                      {"id": "merge", "options": {}},
                      {"id": "organize", "options": {
                          "excludeByName": {"Time": True},
                          "indexByName": {"symbol": 0, "Value #A": 1, "Value #B": 2},
                          "renameByName": {"Value #A": "Streak (days)", "Value #B": "Net buy over streak (HKD)"},
                      }},
                  )),
        )),
        Row("ETFs", (
            Panel("ETF active net inflow by window", "table",
                  (Target("fundflow_etf_net_inflow_cny", instant=True, table=True),),
                  description="Buyer- minus seller-initiated amount, CNY: 1m..1h by event time, "
                              "1d/5d/20d in trading days.",
                  unit="currencyCNY", width=12, height=8, link_symbol=True,
                  transformations=(
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "window", "rowField": "symbol", "valueField": "Value"}},
                      {"id": "organize", "options": {
                          "indexByName": {"symbol\\window": 0, "1m": 1, "5m": 2, "15m": 3, "1h": 4,
                                          "1d": 5, "5d": 6, "20d": 7},
                          "renameByName": {"symbol\\window": "symbol"}}},
                  )),
            Panel("Volume ratio", "bargauge",
                  (Target("fundflow_etf_volume_ratio", "{{symbol}}", instant=True),),
                  description="Volume per minute today over the average per minute of the previous 5 sessions. "
                              "Alerts at {volume_ratio}.",
                  decimals=2, width=12, height=8, link_symbol=True,
                  thresholds=(("", "green"), ("{volume_ratio}", "orange"))),
            Panel("Turnover today vs previous session", "timeseries",
                  (Target("fundflow_etf_turnover_cny", "{{symbol}} today"),
                   Target("fundflow_etf_prev_turnover_same_time_cny", "{{symbol}} previous session, same time")),
                  description="Today's turnover and the previous session's turnover up to the same time of day.",
                  unit="currencyCNY", width=12, height=9),
            Panel("Turnover vs previous session, same time of day", "timeseries",
                  (Target('fundflow_etf_turnover_vs_prev_session_ratio{basis="same_time"}', "{{symbol}}"),),
                  description="Ratio of today's turnover to the previous session's at the same time of day. "
                              "Alerts at {turnover_same_time_ratio}x.",
                  decimals=2, width=12, height=9,
                  thresholds=(("", "green"), ("{turnover_same_time_ratio}", "orange"))),
        )),
        Row("ETFs: main force, order classes, premium", (
            Panel("Main-force net inflow today, top and bottom 5", "bargauge",
                  (Target(f"topk(5, {_MAIN_1D}) or bottomk(5, {_MAIN_1D})", "{{symbol}}", instant=True),),
                  description="Net inflow of large and super-large orders this session (each trade classed by its "
                              "aggressor order's amount today), CNY: the 5 largest inflows and outflows. Red in, "
                              "green out (mainland convention). Alerts at +/-{main_net_inflow_1d_cny:,.0f} CNY.",
                  unit="currencyCNY", width=8, height=9, link_symbol=True,
                  thresholds=(("", "green"), ("0", "red"))),
            Panel("Net inflow by order class today, all ETFs", "bargauge",
                  (Target('sum by (class) (fundflow_etf_order_net_inflow_cny{window="1d"})', "{{class}}",
                          instant=True),),
                  description="Net inflow this session summed over the ETFs, by the aggressor order's size: "
                              "small < 50k <= medium < 200k <= large < 1M <= super_large CNY "
                              "([flows] order_class_bounds). Main force = large + super_large.",
                  unit="currencyCNY", width=6, height=9, thresholds=(("", "green"), ("0", "red"))),
            Panel("Order classes of the top 10 ETFs by main-force flow", "table",
                  (Target('fundflow_etf_order_net_inflow_cny{window="1d"} and on(symbol) '
                          f'topk(10, abs({_MAIN_1D}))', instant=True, table=True),),
                  description="Net inflow this session by order class (CNY) of the 10 ETFs with the largest "
                              "main-force inflow or outflow.",
                  unit="currencyCNY", width=10, height=9, link_symbol=True,
                  transformations=(
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "class", "rowField": "symbol", "valueField": "Value"}},
                      {"id": "organize", "options": {
                          "indexByName": {"symbol\\class": 0, "small": 1, "medium": 2, "large": 3,
                                          "super_large": 4},
                          "renameByName": {"symbol\\class": "symbol"}}},
                  )),
            Panel("Premium to IOPV, top 10 by size", "bargauge",
                  (Target("fundflow_etf_premium_ratio and on(symbol) topk(10, abs(fundflow_etf_premium_ratio))",
                          "{{symbol}}", instant=True),),
                  description="Last price / IOPV - 1 (latest IOPV of today) of the 10 ETFs furthest from their "
                              "IOPV: premium > 0, discount < 0. Alerts at +/-{premium_ratio:.2%} held for 5 minutes "
                              "while the market is open.",
                  unit="percentunit", decimals=2, width=24, height=7, link_symbol=True,
                  thresholds=(("", "orange"), ("-{premium_ratio}", "green"), ("{premium_ratio}", "orange"))),
        )),
        Row("Southbound quota and sectors", (
            Panel("Southbound quota used", "timeseries",
                  (Target("fundflow_southbound_quota_used_ratio", "{{channel}}"),),
                  description="1 - balance / quota of today's southbound daily quota, per Stock Connect channel "
                              "(SH: Shanghai-HK, SZ: Shenzhen-HK). Buying through a channel stops for the day "
                              "when its balance runs out. Alerts at {quota_used_ratio:.0%} while Hong Kong trades.",
                  unit="percentunit", decimals=1, width=8, height=8,
                  thresholds=(("", "green"), ("{quota_used_ratio}", "red"))),
            Panel("Southbound quota balance", "timeseries",
                  (Target("fundflow_southbound_quota_balance_cny", "{{channel}}"),),
                  description="Today's southbound quota left per channel, CNY (latest record by event time).",
                  unit="currencyCNY", width=8, height=8),
            Panel("Southbound net buy per channel", "bargauge",
                  (Target("fundflow_southbound_channel_net_buy_hkd", "{{channel}} {{window}}", instant=True),),
                  description="Net buy (buy - sell) summed over the stocks of each channel over the last 1, 5 and "
                              "20 southbound trading days, today included, HKD.",
                  unit="currencyHKD", width=8, height=8),
            Panel("Sector ETF net inflow today", "bargauge",
                  (Target('sort_desc(fundflow_sector_net_inflow_cny{window="1d"})', "{{sector}}", instant=True),),
                  description="Active net inflow this session summed over each sector's ETFs ([sectors] csv), CNY.",
                  unit="currencyCNY", width=8, height=9, thresholds=(("", "green"), ("0", "red"))),
            Panel("Sector flows today", "table",
                  (Target('label_replace(fundflow_sector_net_inflow_cny{window="1d"}, '
                          '"column", "ETF net inflow", "window", ".*") '
                          'or label_replace(fundflow_sector_main_net_inflow_cny{window="1d"}, '
                          '"column", "ETF main-force net inflow", "window", ".*") '
                          'or label_replace(fundflow_sector_southbound_net_buy_hkd{window="1d"}, '
                          '"column", "southbound net buy", "window", ".*")', instant=True, table=True),),
                  description="Per sector this session: active and main-force net inflow of its ETFs (CNY) and "
                              "southbound net buy of its Hong Kong stocks (HKD). Top symbol per sector: "
                              "/api/v1/sectors?window=1d.",
                  width=16, height=9, sort_by=("ETF net inflow", True),
                  transformations=(
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "column", "rowField": "sector", "valueField": "Value"}},
                      {"id": "organize", "options": {
                          "indexByName": {"sector\\column": 0, "ETF net inflow": 1,
                                          "ETF main-force net inflow": 2, "southbound net buy": 3},
                          "renameByName": {"sector\\column": "sector"}}},
                  ),
                  overrides=(("ETF net inflow", {"unit": "currencyCNY"}),
                             ("ETF main-force net inflow", {"unit": "currencyCNY"}),
                             ("southbound net buy", {"unit": "currencyHKD"}))),
        )),
        Row("Alerts", (
            Panel("Fundflow alerts firing", "table",
                  (Target('sum by (alertname, severity, symbol, source, topic) '
                          '(ALERTS{alertstate="firing", alertname=~"Fundflow.+"})', instant=True, table=True),),
                  description="Prometheus alerts from grafana/prometheus/rules.yml that are firing now.",
                  width=24, height=7, sort_by=("severity", False),
                  transformations=({"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}},)),
        )),
    ),
)

_SYMBOL = Dashboard(
    uid="fundflow-symbol",
    title="Symbol detail",
    description="One symbol: price change, turnover against the previous session, net inflow windows, "
                "main-force net inflow and order classes, IOPV and premium, "
                "creation/redemption inflow and market signals (new highs, AUM record, MACD, basket "
                "look-through) for an ETF; southbound net buy and streak history for a Hong Kong stock.",
    time_from="now-7d",
    variables=(
        Variable("symbol", "Symbol",
                 '{__name__=~"fundflow_etf_last_price_cny|fundflow_southbound_net_buy_streak_sessions"}', "symbol"),
    ),
    rows=(
        Row("ETF: price and turnover", (
            Panel("Price change", "stat", (Target(f"fundflow_etf_price_change_ratio{_SYM}", instant=True),),
                  description="Last price over the previous session's last price, minus 1. "
                              "Red up, green down (mainland convention).",
                  unit="percentunit", decimals=2, width=4, height=5,
                  thresholds=(("", "green"), ("0", "red"))),
            Panel("Last price", "stat", (Target(f"fundflow_etf_last_price_cny{_SYM}", instant=True),),
                  unit="currencyCNY", decimals=3, width=4, height=5),
            Panel("Turnover vs previous session", "stat",
                  (Target(f"fundflow_etf_turnover_vs_prev_session_ratio{_SYM}", "{{basis}}", instant=True),),
                  description="Today's turnover over the previous session's: up to the same time of day "
                              "(same_time) and over the whole previous day (full_day). "
                              "Alerts at {turnover_same_time_ratio}x same time.",
                  decimals=2, width=6, height=5,
                  thresholds=(("", "green"), ("{turnover_same_time_ratio}", "orange"))),
            Panel("Volume ratio", "stat", (Target(f"fundflow_etf_volume_ratio{_SYM}", instant=True),),
                  decimals=2, width=4, height=5, thresholds=(("", "green"), ("{volume_ratio}", "orange"))),
            Panel("AUM", "stat", (Target(f"fundflow_etf_aum_cny{_SYM}", instant=True),),
                  description="Shares outstanding x NAV.", unit="currencyCNY", width=6, height=5),
            Panel("Turnover today vs previous session", "timeseries",
                  (Target(f"fundflow_etf_turnover_cny{_SYM}", "today"),
                   Target(f"fundflow_etf_prev_turnover_same_time_cny{_SYM}", "previous session, same time"),
                   Target(f"fundflow_etf_prev_turnover_cny{_SYM}", "previous session, full day")),
                  unit="currencyCNY", width=24, height=8),
        )),
        Row("ETF: net inflow", (
            Panel("Active net inflow, intraday windows", "timeseries",
                  (Target('fundflow_etf_net_inflow_cny{symbol="$symbol", window=~"1m|5m|15m|1h"}', "{{window}}"),),
                  unit="currencyCNY", width=12, height=8),
            Panel("Active net inflow, trading-day windows", "bargauge",
                  (Target('fundflow_etf_net_inflow_cny{symbol="$symbol", window=~"1d|5d|20d"}', "{{window}}",
                          instant=True),),
                  description="Active net inflow over the session (1d) and the last 5 and 20 trading days.",
                  unit="currencyCNY", width=6, height=8),
            Panel("Creation/redemption net inflow", "bargauge",
                  (Target(f"fundflow_etf_creation_net_inflow_cny{_SYM}", "{{window}}", instant=True),),
                  description="Change in shares outstanding x NAV over the last 1, 5 and 20 trading days: "
                              "what exchanges publish as net capital inflow.",
                  unit="currencyCNY", width=6, height=8),
        )),
        Row("ETF: main force and order classes", (
            Panel("Main-force net inflow, intraday windows", "timeseries",
                  (Target('fundflow_etf_main_net_inflow_cny{symbol="$symbol", window=~"1m|5m|15m|1h"}',
                          "{{window}}"),),
                  description="Net inflow of large and super-large orders (classed by the aggressor order's "
                              "amount today) over the last 1m, 5m, 15m and 1h, CNY.",
                  unit="currencyCNY", width=12, height=8),
            Panel("Main-force net inflow by window", "bargauge",
                  (Target('fundflow_etf_main_net_inflow_cny{symbol="$symbol", window=~"1d|5d|20d"}', "{{window}}",
                          instant=True),),
                  description="Main-force net inflow over the session (1d) and the last 5 and 20 trading days. "
                              "Alerts at +/-{main_net_inflow_1d_cny:,.0f} CNY on 1d.",
                  unit="currencyCNY", width=6, height=8, thresholds=(("", "green"), ("0", "red"))),
            Panel("Net inflow by order class", "bargauge",
                  (Target('fundflow_etf_order_net_inflow_cny{symbol="$symbol", window="1d"}', "{{class}}",
                          instant=True),),
                  description="Net inflow this session by the aggressor order's size: small < 50k <= medium < "
                              "200k <= large < 1M <= super_large CNY; the four sum to the active net inflow.",
                  unit="currencyCNY", width=6, height=8, thresholds=(("", "green"), ("0", "red"))),
            Panel("Net inflow by order class, today", "timeseries",
                  (Target('fundflow_etf_order_net_inflow_cny{symbol="$symbol", window="1d"}', "{{class}}"),),
                  description="How each order class's net inflow built up through the session.",
                  unit="currencyCNY", width=12, height=8),
            Panel("Order classes today", "table",
                  (Target(f"fundflow_etf_order_net_inflow_cny{_SYM}", instant=True, table=True),),
                  description="Net inflow by order class this session, CNY. Every window of each class (1m to "
                              "20d) is in /api/v1/symbols/$symbol: Prometheus carries the session's only.",
                  unit="currencyCNY", width=12, height=8,
                  transformations=(
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "window", "rowField": "class", "valueField": "Value"}},
                      {"id": "organize", "options": {
                          "indexByName": {"class\\window": 0, "5m": 1, "1d": 2, "5d": 3, "20d": 4},
                          "renameByName": {"class\\window": "class"}}},
                  )),
        )),
        Row("ETF: IOPV and premium", (
            Panel("IOPV and last price", "timeseries",
                  (Target(f"fundflow_etf_iopv_cny{_SYM}", "IOPV"),
                   Target(f"fundflow_etf_last_price_cny{_SYM}", "last price")),
                  description="The latest IOPV of today (published every 15 s) and the last trade price, CNY.",
                  unit="currencyCNY", decimals=4, width=12, height=8),
            Panel("Premium to IOPV", "timeseries",
                  (Target(f"fundflow_etf_premium_ratio{_SYM}", "premium"),),
                  description="Last price / IOPV - 1: premium > 0, discount < 0. Alerts at +/-{premium_ratio:.2%} "
                              "held for 5 minutes while the market is open.",
                  unit="percentunit", decimals=2, width=8, height=8,
                  thresholds=(("", "orange"), ("-{premium_ratio}", "green"), ("{premium_ratio}", "orange"))),
            Panel("Premium now", "stat",
                  (Target(f"fundflow_etf_premium_ratio{_SYM}", "premium", instant=True),),
                  unit="percentunit", decimals=2, width=4, height=8,
                  thresholds=(("", "orange"), ("-{premium_ratio}", "green"), ("{premium_ratio}", "orange"))),
        )),
        Row("ETF signals", (
            Panel("New high", "stat",
                  (Target(f"fundflow_etf_new_high{_SYM}", "{{window}}", instant=True),),
                  description="1 when today's high reaches the highest daily high of the previous 20, 60, 250 "
                              "trading days (or all history held). Alerts on a 250-day high with volume ratio "
                              ">= {new_high_volume_ratio}.",
                  decimals=0, width=8, height=5,
                  mappings={"0": ("no", "text"), "1": ("new high", "red")},
                  thresholds=(("", "text"), ("1", "red"))),
            Panel("MACD cross today", "stat",
                  (Target(f"fundflow_macd_cross{_SYM}", "MACD cross", instant=True),),
                  description="MACD(12,26,9) on daily closes, today's last price standing as today's close: "
                              "golden cross (DIF crosses above DEA), death cross (DIF crosses below DEA).",
                  decimals=0, width=4, height=5,
                  mappings={"1": ("golden cross", "red"), "0": ("none", "text"), "-1": ("death cross", "green")}),
            Panel("AUM record", "stat",
                  (Target(f"fundflow_etf_aum_record_cny{_SYM}", "record AUM", instant=True),
                   Target(f"fundflow_etf_aum_at_record{_SYM}", "at record now", instant=True)),
                  description="Highest AUM on record (shares outstanding x NAV) and whether today's AUM is it.",
                  width=6, height=5,
                  overrides=(("record AUM", {"unit": "currencyCNY"}),
                             ("at record now", {"mappings": [{"type": "value", "options": {
                                 "0": {"text": "no", "color": "text", "index": 0},
                                 "1": {"text": "yes", "color": "red", "index": 1}}}]}))),
            Panel("Average daily turnover", "bargauge",
                  (Target(f"fundflow_etf_turnover_avg_cny{_SYM}", "{{window}}", instant=True),
                   Target(f"fundflow_etf_turnover_avg_hkd{_SYM}", "{{window}} (HKD)", instant=True,
                          may_be_empty=True)),
                  description="Average turnover per closed trading day: the last 20 days and the calendar "
                              "year to date (today excluded). HK-listed ETFs in HKD.",
                  unit="currencyCNY", width=6, height=5,
                  overrides=tuple((f"{w} (HKD)", {"unit": "currencyHKD"}) for w in ("20d", "ytd"))),
            Panel("MACD (12, 26, 9)", "timeseries",
                  (Target(f"fundflow_macd_dif{_SYM}", "DIF"),
                   Target(f"fundflow_macd_dea{_SYM}", "DEA"),
                   Target(f"fundflow_macd_bar{_SYM}", "MACD bar")),
                  description="DIF = EMA12 - EMA26 of daily closes, DEA = EMA9 of DIF, MACD bar (histogram) "
                              "= 2 x (DIF - DEA).",
                  decimals=4, width=14, height=8,
                  overrides=(("MACD bar", {"custom.drawStyle": "bars", "custom.fillOpacity": 80}),)),
            Panel("Basket look-through", "table",
                  (Target(f'label_replace(fundflow_etf_basket_southbound_net_buy_hkd{_SYM}, '
                          f'"column", "southbound net buy $1", "window", "(.+)") '
                          f'or label_replace(fundflow_etf_basket_top_weight_ratio{_SYM}, '
                          f'"column", "top $1 weight", "n", "(.+)")', instant=True, table=True),),
                  description="The ETF's holdings seen through: southbound net buy of each constituent over "
                              "1d/5d/20d, weighted by its weight in the basket (HKD), and the combined weight "
                              "of the top 4 and top 10 holdings. Holdings per constituent: "
                              "/api/v1/symbols/<etf>.",
                  width=10, height=8,
                  transformations=(
                      {"id": "groupingToMatrix", "options": {
                          "columnField": "column", "rowField": "symbol", "valueField": "Value"}},
                      {"id": "organize", "options": {
                          "indexByName": {"symbol\\column": 0, "southbound net buy 1d": 1,
                                          "southbound net buy 5d": 2, "southbound net buy 20d": 3,
                                          "top 4 weight": 4, "top 10 weight": 5},
                          "renameByName": {"symbol\\column": "ETF"}}},
                  ),
                  overrides=tuple((f"southbound net buy {w}", {"unit": "currencyHKD"}) for w in ("1d", "5d", "20d"))
                  + tuple((f"top {n} weight", {"unit": "percentunit", "decimals": 1}) for n in ("4", "10"))),
        )),
        Row("Southbound (Hong Kong stocks)", (
            Panel("Southbound streak history", "timeseries",
                  (Target(f"fundflow_southbound_net_buy_streak_sessions{_SYM}", "streak (days)"),),
                  description="Consecutive closed trading days of net buying (positive) or selling (negative). "
                              "Alerts at +/-{streak_days}.",
                  decimals=0, width=12, height=8,
                  thresholds=(("", "green"), ("{streak_days}", "orange"))),
            Panel("Net buy over the streak", "timeseries",
                  (Target(f"fundflow_southbound_streak_net_buy_hkd{_SYM}", "over the streak"),
                   Target(f"fundflow_southbound_provisional_net_buy_hkd{_SYM}", "today (provisional)")),
                  unit="currencyHKD", width=12, height=8),
            Panel("Southbound net buy by window", "bargauge",
                  (Target(f"fundflow_southbound_net_buy_hkd{_SYM}", "{{window}}", instant=True),),
                  unit="currencyHKD", width=24, height=6),
        )),
    ),
)

_PIPELINE = Dashboard(
    uid="fundflow-pipeline",
    title="Pipeline health",
    description="Ingest and consume: event rates, rejections, lag, consumer lag, feed freshness, "
                "source connections.",
    time_from="now-3h",
    rows=(
        Row("Throughput", (
            Panel("Ingest rate per source", "timeseries",
                  (Target("source:fundflow_events_ingested:rate1m", "{{source}}"),),
                  unit="ops", width=12),
            Panel("Applied events per kind", "timeseries",
                  (Target("kind:fundflow_events_applied:rate1m", "{{kind}}"),),
                  unit="ops", width=12),
            Panel("Rejected by reason", "timeseries",
                  (Target("reason:fundflow_events_rejected:rate5m", "{{reason}}", may_be_empty=True),
                   Target(":fundflow_events_rejected:rate5m", "all reasons")),
                  description="Inputs dead-lettered per second. Alerts above {deadletter_rate_per_second}/s.",
                  unit="ops", width=12, thresholds=(("", "green"), ("{deadletter_rate_per_second}", "red"))),
            Panel("Duplicates, late events and feed gaps", "timeseries",
                  (Target("sum(rate(fundflow_events_duplicate_total[$__rate_interval])) or vector(0)", "duplicates"),
                   Target("sum(rate(fundflow_events_late_total[$__rate_interval])) or vector(0)", "late"),
                   Target("sum by (kind) (rate(fundflow_feed_gaps_total[$__rate_interval]))", "feed gaps {{kind}}")),
                  description="Feed gaps: sequence numbers missing once a later one arrived and the grace passed "
                              "(alert FundflowFeedGap); which symbols: /api/v1/status, feed_gaps.open.",
                  unit="ops", width=12),
        )),
        Row("Latency and lag", (
            Panel("Event lag p50 / p99", "timeseries",
                  (Target(':fundflow_event_lag_seconds:histogram_quantile{quantile="0.5"}', "p50"),
                   Target(':fundflow_event_lag_seconds:histogram_quantile{quantile="0.99"}', "p99")),
                  description="Event time to applied.", unit="s", width=12),
            Panel("Consumer lag", "timeseries",
                  (Target("topic:fundflow_consumer_lag_messages:sum", "{{topic}}"),),
                  description="Messages behind the end of each topic, summed over partitions. "
                              "Alerts above {consumer_lag_messages}.",
                  unit="short", width=12, thresholds=(("", "green"), ("{consumer_lag_messages}", "red"))),
            Panel("Last event age", "timeseries",
                  (Target("source:fundflow_last_event_age_seconds:min", "{{source}}"),),
                  description="Seconds since the last event of each source. Alerts above {feed_stall_seconds}s "
                              "while a market is open.",
                  unit="s", width=12, thresholds=(("", "green"), ("{feed_stall_seconds}", "red"))),
            Panel("Stream clock behind wall clock", "timeseries",
                  (Target("time() - fundflow_stream_as_of_timestamp_seconds", "{{instance}}"),),
                  description="Wall clock minus the greatest event time applied (large in a replay).",
                  unit="s", width=12),
        )),
        Row("Connections and state", (
            Panel("Source connected", "stat",
                  (Target("fundflow_source_connected", "{{source}}", instant=True),),
                  width=6, height=5, mappings={"0": ("disconnected", "red"), "1": ("connected", "green")},
                  thresholds=(("", "red"), ("1", "green"))),
            Panel("Market open", "stat",
                  (Target("market:fundflow_market_open:max", "{{market}}", instant=True),),
                  width=6, height=5, mappings={"0": ("closed", "text"), "1": ("open", "green")}),
            Panel("Buffered events", "stat", (Target("sum(fundflow_ingest_buffered_events)", instant=True),),
                  description="Accepted by a source, not yet acknowledged by Kafka.", unit="short", width=4, height=5),
            Panel("State recovery time", "stat",
                  (Target("fundflow_state_recovery_seconds", "{{instance}}", instant=True),),
                  unit="s", width=4, height=5,
                  thresholds=(("", "green"), ("{state_recovery_seconds}", "orange"))),
            Panel("Targets up", "stat", (Target('up{job=~"fundflow.*"}', "{{job}} {{instance}}", instant=True),),
                  width=4, height=5, mappings={"0": ("down", "red"), "1": ("up", "green")}),
        )),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (_OVERVIEW, _SYMBOL, _PIPELINE)


# --------------------------------------------------------------------------- resolved spec


@dataclass(frozen=True)
class Spec:
    """The spec with one config applied: what :mod:`monitor.ops.render` writes."""

    alerts_config: AlertsConfig
    recording_rules: tuple[RecordingRule, ...]
    alerts: tuple[ResolvedAlert, ...]
    dashboards: tuple[Dashboard, ...]

    def alert(self, name: str) -> ResolvedAlert:
        for a in self.alerts:
            if a.name == name:
                return a
        raise KeyError(name)

    def fill(self, text: str) -> str:
        return fill(text, self.alerts_config)


def build(config: Config | AlertsConfig | None = None) -> Spec:
    """Apply a config (thresholds, ``for:`` overrides, runbook URL) to the spec."""
    if config is None:
        alerts = AlertsConfig()
    elif isinstance(config, Config):
        alerts = config.alerts
    else:
        alerts = config
    names = [a.name for a in ALERTS]
    if len(set(names)) != len(names):
        raise ValueError("duplicate alert names in the spec")
    return Spec(
        alerts_config=alerts,
        recording_rules=RECORDING_RULES,
        alerts=tuple(a.resolve(alerts) for a in ALERTS),
        dashboards=DASHBOARDS,
    )


def _check_placeholders() -> None:
    """Fail at import when a panel or alert names a config field that does not exist."""
    defaults = AlertsConfig()
    for a in ALERTS:
        a.resolve(defaults)
    for d in DASHBOARDS:
        for p in d.panels():
            fill(p.description, defaults)
            for value, _ in p.thresholds:
                fill(value, defaults)
            for t in p.targets:
                fill(t.expr, defaults)


_check_placeholders()
