"""Service configuration: one TOML file plus ``FUNDFLOW_*`` environment overrides.

Environment variables override the file so secrets (tokens, passwords) never
have to live in it: ``FUNDFLOW_HTTP__TOKEN`` sets ``[http] token``, double
underscore separating section and key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from consumers import basket, sectors

ENV_PREFIX = "FUNDFLOW_"


@dataclass
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = 6
    # applied when fundflow creates a topic, checked (warning) when it finds one: production is
    # replication_factor = 3 with min_insync_replicas = 2, so one broker may be down without a write lost
    replication_factor: int = 1
    min_insync_replicas: int = 1
    topic_configs: dict[str, str] = field(default_factory=dict)  # more configs of every topic created
    group_id: str = "fundflow"
    client_id: str = "fundflow"
    backend: str = "kafka-python"  # or "confluent" (extra `fast`)
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    retention_ms: int = -1  # event topics; records carry event time, so a finite value deletes replayed history
    linger_ms: int = 20
    batch_size: int = 262144
    buffer_max_events: int = 100_000
    # consumer state checkpoints (open days included): a restart replays only the events after the last one
    checkpoint_interval_s: float = 30.0

    def client_security(self) -> dict[str, Any]:
        """kafka-python keyword arguments for SASL/TLS; empty values are left out."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        pairs = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": self.sasl_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        opts.update({k: v for k, v in pairs.items() if v})
        return opts


@dataclass
class LogConfig:
    """``[log]``: ``format = "text" | "json"`` (JSON: one object per line), root level, per-logger levels."""

    format: str = "text"
    level: str = "INFO"
    levels: dict[str, str] = field(default_factory=dict)  # logger name -> level, e.g. {kafka = "WARNING"}


@dataclass
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    token: str = ""  # bearer token for /api, /metrics and POST /ingest; empty = open
    max_body_bytes: int = 8 * 1024 * 1024


@dataclass
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    topics: list[str] = field(default_factory=lambda: [
        "md/etf/trades/#", "md/etf/units/#", "md/etf/iopv/#", "md/southbound/#"])  # quota: md/southbound/quota/...
    client_id: str = "fundflow-ingest"
    username: str = ""
    password: str = ""
    tls: bool = False
    tls_ca: str = ""
    qos: int = 1
    backoff_max_s: float = 30.0


@dataclass
class Closure:
    """An extra exchange closure (typhoon, black rainstorm): whole day or from a time."""

    market: str  # SH, SZ or HK
    date: str  # YYYY-MM-DD
    from_time: str = ""  # HH:MM exchange time; empty = whole day


@dataclass
class ComputeConfig:
    grace_seconds: int = 60
    session_margin_minutes: int = 60
    max_payload_bytes: int = 64 * 1024
    live_clock: bool = False  # as_of = max(event time, wall clock)
    # trades and ticks are taken for the current session and this many before it; older ones are
    # dead-lettered as too_late (a daily bar corrects an older day)
    max_late_sessions: int = 1
    closures: list[Closure] = field(default_factory=list)


@dataclass
class AlertsConfig:
    streak_days: int = 10
    turnover_same_time_ratio: float = 1.5
    volume_ratio: float = 2.0
    large_net_inflow_1d_cny: float = 500_000_000.0
    feed_stall_seconds: int = 120
    consumer_lag_messages: int = 50_000
    deadletter_rate_per_second: float = 1.0
    new_high_volume_ratio: float = 2.0  # FundflowEtfNewHighOnHeavyVolume: volume ratio on a 250-day high
    state_recovery_seconds: float = 300.0  # FundflowStateRecoverySlow: last recovery took longer than this
    runbook_base_url: str = "https://github.com/fundflow/fundflow/blob/main/docs/runbook.md"
    webhook_url_env: str = "FUNDFLOW_ALERT_WEBHOOK_URL"
    # alert name -> pending duration (`for:`), e.g. {FundflowFeedStalled = "2m"}; the spec holds the defaults.
    # From the environment: FUNDFLOW_ALERTS__FOR_OVERRIDES="FundflowFeedStalled=2m,FundflowConsumerLagHigh=10m"
    for_overrides: dict[str, str] = field(default_factory=dict)
    evaluation_interval: str = "1m"  # Grafana-managed rule groups; Prometheus uses its global evaluation_interval
    main_net_inflow_1d_cny: float = 200_000_000.0  # FundflowEtfMainNetInflow / ...Outflow: |main net 1d| >= this
    premium_ratio: float = 0.01  # FundflowEtfPremiumHigh: |last / IOPV - 1| >= this
    quota_used_ratio: float = 0.8  # FundflowSouthboundQuotaNearlyUsed: 1 - balance / quota >= this


@dataclass
class BasketConfig:
    """ETF holdings for the basket look-through: a CSV (etf,constituent,weight) and/or inline tables.

    ``[baskets.holdings."513770.SH"]`` maps constituent -> weight (0.145 or "14.5%"); inline holdings
    replace the CSV's for the same ETF.
    """

    holdings_csv: str = ""
    holdings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class FlowsConfig:
    """``[flows]``: order-size classes by the aggressor order's amount today, CNY (small < b0 <= medium < b1 <=
    large < b2 <= super_large)."""

    order_class_bounds: list[float] = field(default_factory=lambda: [50_000.0, 200_000.0, 1_000_000.0])


@dataclass
class SectorsConfig:
    """``[sectors]``: a CSV with columns ``symbol,sector`` (ETFs and HK stocks; one sector a symbol)."""

    csv: str = ""


@dataclass
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    baskets: BasketConfig = field(default_factory=BasketConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    sectors: SectorsConfig = field(default_factory=SectorsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-source options, free-form

    def secrets(self) -> list[str]:
        """The secret values set (passwords, token), for log redaction."""
        return [v for v in (self.kafka.sasl_password, self.http.token, self.mqtt.password) if v]

    def redacted(self) -> dict[str, Any]:
        """The config as a dict with secrets masked, safe to log."""
        data = dataclasses.asdict(self)
        for section, key in (("kafka", "sasl_password"), ("http", "token"), ("mqtt", "password")):
            if data[section][key]:
                data[section][key] = "***"
        return data


def _coerce(value: str, like: Any) -> Any:
    if isinstance(like, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    if isinstance(like, list):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(like, dict):  # "name=value,name=value"
        pairs = (v.partition("=") for v in value.split(",") if v.strip())
        return {k.strip(): v.strip() for k, _, v in pairs}
    return value


def _apply(section: Any, values: Mapping[str, Any], where: str) -> None:
    names = {f.name for f in dataclasses.fields(section)}
    for key, value in values.items():
        attr = key.replace("-", "_")
        if attr == "from":
            attr = "from_time"
        if attr not in names:
            raise ValueError(f"unknown config key {where}.{key}")
        setattr(section, attr, value)


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (optional), then apply ``FUNDFLOW_SECTION__KEY`` variables."""
    cfg = Config()
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        for name, values in data.items():
            if name == "sources":
                cfg.sources = dict(values)
            elif name == "compute" and "closures" in values:
                values = dict(values)
                cfg.compute.closures = [_closure(c) for c in values.pop("closures")]
                _apply(cfg.compute, values, name)
            elif hasattr(cfg, name) and dataclasses.is_dataclass(getattr(cfg, name)):
                _apply(getattr(cfg, name), values, name)
            else:
                raise ValueError(f"unknown config section [{name}]")
    env = os.environ if env is None else env
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section_name, _, attr = key[len(ENV_PREFIX):].lower().partition("__")
        section = getattr(cfg, section_name, None)
        if section is None or not dataclasses.is_dataclass(section) or not hasattr(section, attr):
            continue
        setattr(section, attr, _coerce(value, getattr(section, attr)))
    return cfg


def _closure(raw: Mapping[str, Any]) -> Closure:
    c = Closure(market="", date="")
    _apply(c, raw, "compute.closures")
    return c


def load_holdings(cfg: Config) -> dict[str, list[tuple[str, Any]]]:
    """The ETF holdings of ``[baskets]``: the CSV file first, inline tables replacing an ETF's rows."""
    parts = []
    if cfg.baskets.holdings_csv:
        parts.append(basket.from_csv(Path(cfg.baskets.holdings_csv).read_text(encoding="utf-8")))
    if cfg.baskets.holdings:
        parts.append(basket.from_mapping(cfg.baskets.holdings))
    return basket.merge(*parts)


def load_sectors(cfg: Config) -> dict[str, str]:
    """The symbol -> sector map of ``[sectors] csv`` (empty without a file); a bad file raises ValueError
    naming the file and the line."""
    if not cfg.sectors.csv:
        return {}
    path = Path(cfg.sectors.csv)
    try:
        return sectors.from_csv(path.read_text(encoding="utf-8"))
    except sectors.SectorsError as exc:
        raise sectors.SectorsError(f"[sectors] csv {path}: {exc}") from None
