"""The service's own evaluation of the business alerts of the spec (monitor.ops.spec), for the
board and /api/v1/status.

Prometheus and Grafana evaluate the shipped rules for paging. Here the same entries decide
(threshold and ``for:`` from the spec with the ``[alerts]`` config applied, the market
gate), over the typed views instead of PromQL, so that a person looking at the service
sees what the pager sees: a condition is "pending" from the first evaluation that finds it
true and "firing" once it has held for its ``for:``; an evaluation that finds it false
forgets it. Time is the market clock the service exports as ``fundflow_market_open``
(the wall clock, or the stream clock in the demo and a replay).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from consumers import views
from consumers.engine import Engine
from consumers.views import EtfView, SignalsView, SouthboundView
from monitor.calendars import MARKETS
from monitor.config import AlertsConfig
from monitor.events import from_micro
from monitor.ops.spec import ALERTS, Alert, MarketGate, parse_duration

_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt,
                                                   "<=": operator.le}


def _southbound_measures(v: SouthboundView) -> dict[str, float | None]:
    """The ``value`` of each southbound alert of the spec, for one stock."""
    return {"FundflowSouthboundNetBuyStreak": v.streak_days, "FundflowSouthboundNetSellStreak": -v.streak_days}


def _quota_measures(q: views.QuotaView) -> dict[str, float | None]:
    """The ``value`` of each quota alert of the spec, for one Stock Connect channel (SH, SZ)."""
    return {"FundflowSouthboundQuotaNearlyUsed": q.used_ratio}


def _etf_measures(e: EtfView, s: SignalsView | None) -> dict[str, float | None]:
    """The ``value`` of each ETF alert of the spec, for one ETF (None: no series, as in Prometheus)."""
    net = e.net_inflow.get("1d")
    net_1d = None if net is None else from_micro(net)
    main = e.main_net_inflow.get("1d")
    main_1d = None if main is None else from_micro(main)
    return {
        "FundflowEtfTurnoverSurge": e.turnover_vs_prev_session.same_time,
        "FundflowEtfVolumeRatioHigh": e.volume_ratio,
        "FundflowEtfLargeNetInflow": net_1d,
        "FundflowEtfLargeNetOutflow": None if net_1d is None else -net_1d,
        "FundflowEtfMainNetInflow": main_1d,
        "FundflowEtfMainNetOutflow": None if main_1d is None else -main_1d,
        "FundflowEtfPremiumHigh": None if e.premium_ratio is None else abs(e.premium_ratio),
        "FundflowEtfNewHighOnHeavyVolume": e.volume_ratio if s is not None and s.new_high.get("250d") == 1 else None,
        "FundflowEtfAumRecord": from_micro(s.aum) if s is not None and s.aum is not None and s.aum_at_record == 1
        else None,
    }


SOUTHBOUND_ALERTS = ("FundflowSouthboundNetBuyStreak", "FundflowSouthboundNetSellStreak")
QUOTA_ALERTS = ("FundflowSouthboundQuotaNearlyUsed",)
ETF_ALERTS = ("FundflowEtfTurnoverSurge", "FundflowEtfVolumeRatioHigh", "FundflowEtfLargeNetInflow",
              "FundflowEtfLargeNetOutflow", "FundflowEtfMainNetInflow", "FundflowEtfMainNetOutflow",
              "FundflowEtfPremiumHigh", "FundflowEtfNewHighOnHeavyVolume", "FundflowEtfAumRecord")


@dataclass(frozen=True, slots=True)
class Rule:
    """One business alert of the spec with the config applied."""

    name: str
    op: Callable[[float, float], bool]
    threshold: float
    for_ms: int
    gate: MarketGate | None

    @classmethod
    def of(cls, alert: Alert, cfg: AlertsConfig) -> Rule:
        resolved = alert.resolve(cfg)
        if alert.gate is not None and alert.gate.held_for:
            raise ValueError(f"{alert.name}: a gate held for a window is not evaluated in the service")
        return cls(alert.name, _OPS[resolved.op], float(resolved.threshold),
                   int(parse_duration(resolved.for_) * 1000), alert.gate)

    def gate_open(self, engine: Engine, symbol: str, now_ms: int) -> bool:
        if self.gate is None:
            return True
        if self.gate.market:
            return engine.cal[self.gate.market].is_open(now_ms)
        if self.gate.per_symbol:
            market = symbol.rsplit(".", 1)[-1]
            return market in MARKETS and engine.cal[market].is_open(now_ms)
        return any(engine.cal[m].is_open(now_ms) for m in MARKETS)


@dataclass(frozen=True, slots=True)
class AlertState:
    alert: str
    symbol: str  # what alerts: the symbol, or the Stock Connect channel (SH, SZ) of a per-channel alert
    value: float
    state: Literal["pending", "firing"]
    active_since_ms: int  # market clock when the condition was first found true


class AlertEvaluator:
    """Evaluates the business alerts of the spec, at most once per ``interval_s`` of wall time."""

    # An evaluation computes every symbol's view (as a /metrics render does, ~0.1 s for the whole market)
    # on the consumer's event loop; the alerts' ``for:`` are minutes, so every 30 s is precise enough.
    def __init__(self, cfg: AlertsConfig, interval_s: float = 30.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        evaluated = set(SOUTHBOUND_ALERTS + QUOTA_ALERTS + ETF_ALERTS)
        self.rules = {a.name: Rule.of(a, cfg) for a in ALERTS if a.name in evaluated}  # in spec order
        self.interval_s = interval_s
        self.monotonic = monotonic
        self._active: dict[tuple[str, str], int] = {}  # (alert, symbol) -> active since, market clock ms
        self._last: tuple[float, list[AlertState]] | None = None

    def states(self, engine: Engine, now_ms: int) -> list[AlertState]:
        """The alerts pending or firing, evaluated again when the last evaluation is older than the interval."""
        wall = self.monotonic()
        if self._last is None or wall - self._last[0] >= self.interval_s:
            self._last = (wall, self.evaluate(engine, now_ms))
        return self._last[1]

    def evaluate(self, engine: Engine, now_ms: int) -> list[AlertState]:
        """One evaluation of every rule and symbol (or channel), in spec order, then by symbol (channel)."""
        found: dict[str, list[tuple[str, float]]] = {name: [] for name in self.rules}
        for symbol in sorted(engine.sb):
            sb = views.southbound(engine, symbol)
            if sb is not None:
                self._check(engine, symbol, _southbound_measures(sb), now_ms, found)
        for quota in views.southbound_quota(engine):  # SH then SZ
            self._check(engine, quota.channel, _quota_measures(quota), now_ms, found)
        for symbol in sorted(engine.etf):
            etf = views.etf(engine, symbol)
            if etf is not None:
                self._check(engine, symbol, _etf_measures(etf, views.signals(engine, symbol)), now_ms, found)
        active: dict[tuple[str, str], int] = {}
        out: list[AlertState] = []
        for name, rows in found.items():
            for_ms = self.rules[name].for_ms
            for symbol, value in rows:
                since = active[(name, symbol)] = self._active.get((name, symbol), now_ms)
                out.append(AlertState(name, symbol, value, "firing" if now_ms - since >= for_ms else "pending", since))
        self._active = active  # conditions found false are forgotten, as Prometheus resets a pending alert
        return out

    def _check(self, engine: Engine, symbol: str, measures: dict[str, float | None], now_ms: int,
               found: dict[str, list[tuple[str, float]]]) -> None:
        for name, value in measures.items():
            rule = self.rules[name]
            if value is not None and rule.op(value, rule.threshold) and rule.gate_open(engine, symbol, now_ms):
                found[name].append((symbol, value))
