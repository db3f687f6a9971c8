"""The service's own view of its alert thresholds (for the board and the status API).

Prometheus and Grafana evaluate the shipped rules for paging; this mirrors
the business ones so a person looking at the service sees the same picture.
"""

from __future__ import annotations

from typing import Any

from consumers import views
from consumers.engine import Engine
from monitor.events import from_micro
from monitor.config import AlertsConfig


def firing(engine: Engine, cfg: AlertsConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for symbol in sorted(engine.sb):
        sb = views.southbound(engine, symbol)
        if sb is None:
            continue
        days = sb.streak_days
        if days >= cfg.streak_days:
            out.append({"alert": "FundflowSouthboundNetBuyStreak", "symbol": symbol, "value": days})
        elif -days >= cfg.streak_days:
            out.append({"alert": "FundflowSouthboundNetSellStreak", "symbol": symbol, "value": days})
    for symbol in sorted(engine.etf):
        etf = views.etf(engine, symbol)
        if etf is None:
            continue
        same_time = etf.turnover_vs_prev_session.same_time
        if same_time is not None and same_time >= cfg.turnover_same_time_ratio:
            out.append({"alert": "FundflowEtfTurnoverSurge", "symbol": symbol, "value": same_time})
        if etf.volume_ratio is not None and etf.volume_ratio >= cfg.volume_ratio:
            out.append({"alert": "FundflowEtfVolumeRatioHigh", "symbol": symbol, "value": etf.volume_ratio})
        net = etf.net_inflow.get("1d")
        net_1d = from_micro(net) if net is not None else None
        if net_1d is not None and abs(net_1d) >= cfg.large_net_inflow_1d_cny:
            out.append({"alert": "FundflowEtfLargeNetInflow", "symbol": symbol, "value": net_1d})
    return out
