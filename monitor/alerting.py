"""The service's own view of its alert thresholds (for the board and the status API).

Prometheus and Grafana evaluate the shipped rules for paging; this mirrors
the business ones so a person looking at the service sees the same picture.
"""

from __future__ import annotations

from typing import Any

from consumers.engine import Engine
from monitor.config import AlertsConfig


def firing(engine: Engine, cfg: AlertsConfig) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for symbol in sorted(engine.sb):
        doc = engine.sb_doc(symbol)
        if doc is None:
            continue
        days = doc["streak_days"]
        if days >= cfg.streak_days:
            out.append({"alert": "FundflowSouthboundNetBuyStreak", "symbol": symbol, "value": days})
        elif -days >= cfg.streak_days:
            out.append({"alert": "FundflowSouthboundNetSellStreak", "symbol": symbol, "value": days})
    for symbol in sorted(engine.etf):
        doc = engine.etf_doc(symbol)
        if doc is None:
            continue
        same_time = doc["turnover_vs_prev_session_ratio"]["same_time"]
        if same_time is not None and same_time >= cfg.turnover_same_time_ratio:
            out.append({"alert": "FundflowEtfTurnoverSurge", "symbol": symbol, "value": same_time})
        if doc["volume_ratio"] is not None and doc["volume_ratio"] >= cfg.volume_ratio:
            out.append({"alert": "FundflowEtfVolumeRatioHigh", "symbol": symbol, "value": doc["volume_ratio"]})
        net_1d = doc["net_inflow_cny"].get("1d")
        if net_1d is not None and abs(net_1d) >= cfg.large_net_inflow_1d_cny:
            out.append({"alert": "FundflowEtfLargeNetInflow", "symbol": symbol, "value": net_1d})
    return out
