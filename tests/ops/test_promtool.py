"""promtool and amtool on the committed files and on the /metrics page.

``promtool check rules`` on the rendered rule file, ``promtool test rules``
on tests/ops/promtool/*.yml (each alert fires and does not fire, ``for:``
boundaries pinned), ``promtool check config`` / ``amtool check-config`` on
the compose stack's Prometheus and Alertmanager configs, ``promtool check
metrics`` on the whole /metrics page of the demo's seed day. promtool and amtool
come from the Debian ``prometheus`` / ``prometheus-alertmanager`` packages:
missing, the tests skip locally and fail under CI.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from consumers.basket import from_mapping
from consumers.engine import Engine
from monitor.calendars import default_calendars, to_ms
from monitor.events import Validator
from monitor.metrics import Exposition, business_gauges
from monitor.ops import spec as S
from monitor.simulator import DEMO_HISTORY_DAYS, DEMO_HOLDINGS, Scenario, generate
from monitor.stats import PipelineStats

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "grafana" / "prometheus" / "rules.yml"
PROMTOOL_TESTS = sorted((REPO / "tests" / "ops" / "promtool").glob("*.yml"))


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules(require):
    promtool = require("promtool")
    r = _run(promtool, "check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(S.RECORDING_RULES) + len(S.ALERTS)
    assert f"SUCCESS: {n} rules found" in r.stdout + r.stderr


def test_promtool_test_rules(require):
    promtool = require("promtool")
    assert PROMTOOL_TESTS
    r = _run(promtool, "test", "rules", *map(str, PROMTOOL_TESTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAILED" not in r.stdout + r.stderr


def test_promtool_tests_fire_and_do_not_fire_every_alert():
    """Coverage of the promtool test files: each alert has a firing case and a not-firing case,
    and the not-firing case of a ``for:`` alert sits one evaluation before it fires (the boundary)."""
    fired: dict[str, set[str]] = {}
    quiet: dict[str, set[str]] = {}
    for path in PROMTOOL_TESTS:
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../../../grafana/prometheus/rules.yml"], path.name
        for case in doc["tests"]:
            for t in case.get("alert_rule_test", []):
                target = fired if t.get("exp_alerts") else quiet
                target.setdefault(t["alertname"], set()).add(t["eval_time"])
    spec = S.build()
    for a in spec.alerts:
        assert a.name in fired, f"{a.name}: no promtool case where it fires"
        assert a.name in quiet, f"{a.name}: no promtool case where it does not fire"
    # the streak alert on the seed scenario (15 days >= 10) is among them
    streaks = yaml.safe_load((REPO / "tests" / "ops" / "promtool" / "streaks_test.yml").read_text())
    values = [s["values"] for c in streaks["tests"] for s in c.get("input_series", [])
              if "09988.HK" in s["series"] and "streak_sessions" in s["series"]]
    assert any(v.startswith("15") for v in values), values
    # for: boundaries: quiet one 15 s step before a firing eval time
    for a in spec.alerts:
        for_s = S.parse_duration(a.for_)
        fire_times = {S.parse_duration(t) for t in fired[a.name]}
        quiet_times = {S.parse_duration(t) for t in quiet[a.name]}
        assert any(t - 15 in quiet_times for t in fire_times if t >= for_s), (
            f"{a.name}: pin the for: boundary (no alert one step before it fires)")


def _grafana_vars(expr: str) -> str:
    """A panel expression with Grafana's variables filled in, as tests/ops/test_live.py queries them."""
    for var, value in (("$__rate_interval", "1m"), ("$__interval", "15s"), ("$__range", "1h"),
                       ("$symbol", "513770.SH")):
        expr = expr.replace(var, value)
    return expr


def test_every_dashboard_and_grafana_rule_query_parses(require, tmp_path):
    """Every panel target and Grafana-managed rule query is valid PromQL: ``promtool check rules`` parses
    each one as a recording rule (the live test runs them against data; this needs no running service)."""
    promtool = require("promtool")
    spec = S.build()
    queries = [_grafana_vars(spec.fill(t.expr)) for d in spec.dashboards for p in d.panels() for t in p.targets]
    queries += [q for a in spec.alerts for q in (a.value, a.gate) if q]
    rules = [{"record": f"check:query_{i}:parse", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    r = _run(promtool, "check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout + r.stderr


def test_promtool_check_compose_prometheus_config(require):
    promtool = require("promtool")
    r = _run(promtool, "check", "config", "--syntax-only", str(REPO / "deploy" / "prometheus" / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_amtool_check_compose_alertmanager_config(require):
    amtool = require("amtool")
    r = _run(amtool, "check-config", str(REPO / "deploy" / "alertmanager" / "alertmanager.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    # routes every severity somewhere, and inhibits only alerts that exist
    cfg = yaml.safe_load((REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text())
    names = {a.name for a in S.ALERTS}
    text = yaml.safe_dump(cfg["inhibit_rules"])
    for alt in re.findall(r"alertname=~?\"([^\"]+)\"", text):
        for name in alt.split("|"):
            assert name in names, name


# --------------------------------------------------------------------------- promtool check metrics

UTC8 = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture(scope="module")
def seed_day_page() -> tuple[str, Exposition]:
    """The demo's tape up to the seed day 2025-09-12 (fewer trades and ticks than the demo, the same kinds),
    its holdings and sectors, an HK-listed ETF (the HKD families) and pipeline stats that
    make every optional pipeline family appear: every family of the page has samples."""
    cal = default_calendars()
    validator, eng = Validator(cal), Engine(cal)
    for obj in generate(Scenario(trade_interval_s=30.0, tick_interval_s=600.0, history_days=DEMO_HISTORY_DAYS)):
        eng.apply(validator.validate(obj))
    for day in cal["HK"].before_n(dt.date(2025, 9, 12), 3):  # an HK-listed ETF: fundflow_etf_turnover_avg_hkd
        eng.apply(validator.validate({"kind": "bar", "symbol": "02800.HK", "date": day.isoformat(), "open": 25,
                                      "high": 25, "low": 25, "close": 25, "volume": 10, "amount": 250}))
    eng.apply(validator.validate({"kind": "trade", "symbol": "02800.HK", "price": 25.1, "volume": 10,
                                  "ts": to_ms(dt.datetime(2025, 9, 12, 10, 0, tzinfo=UTC8)), "trade_id": "hk1"}))
    eng.holdings = from_mapping(DEMO_HOLDINGS)
    # symbol -> sector, set like the holdings (the demo ships a sectors file): the sector families
    eng.sectors = {"513770.SH": "Internet", "513180.SH": "Internet", "09988.HK": "Internet",
                   "00700.HK": "Internet", "510300.SH": "Broad market", "159920.SZ": "Broad market"}
    stats = PipelineStats(buffered=3, bus_available=True, recovery_seconds=1.5, replayed=2)
    stats.ingested[("simulator", "trade")] += 10
    stats.rejected[("simulator", "missing_field")] += 1
    stats.reconnects["simulator"] += 1
    stats.last_event_wall_s["simulator"] = 1_757_642_400.0
    stats.connected["simulator"] = True
    stats.consumer_lag[("fundflow.etf.trades", 0)] = 5
    stats.observe_lag(0.02)
    exposition = Exposition(eng, stats, market_clock_ms=lambda: to_ms(dt.datetime(2025, 9, 12, 10, 0, tzinfo=UTC8)))
    return exposition.render().decode(), exposition


def test_promtool_check_metrics_reports_nothing_on_the_whole_page(require, seed_day_page):
    """``promtool check metrics`` lints names, units, types and HELP of every family: its output is empty.

    (It once flagged fundflow_southbound_net_buy_streak_days, "use base unit seconds", and
    fundflow_macd_histogram, "should not include type 'histogram'".)"""
    promtool = require("promtool")
    page, exposition = seed_day_page
    r = subprocess.run([promtool, "check", "metrics"], input=page, capture_output=True, text=True, timeout=120)
    assert (r.stdout + r.stderr, r.returncode) == ("", 0)
    # the page linted is the whole page: every business family with samples, the pipeline's optional ones present
    sampled = {f.name for f in text_string_to_metric_families(page) if f.samples}
    business = {g.name for g in business_gauges(exposition.engine)}
    assert not business - sampled, f"families without samples (populate them in seed_day_page): {business - sampled}"
    assert {"fundflow_bus_available", "fundflow_state_recovery_seconds", "fundflow_event_lag_seconds",
            "fundflow_stream_as_of_timestamp_seconds", "fundflow_market_open"} <= sampled
