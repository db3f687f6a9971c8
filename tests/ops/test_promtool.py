"""promtool and amtool on the committed files.

``promtool check rules`` on the rendered rule file, ``promtool test rules``
on tests/ops/promtool/*.yml (each alert fires and does not fire, ``for:``
boundaries pinned), ``promtool check config`` / ``amtool check-config`` on
the compose stack's Prometheus and Alertmanager configs. promtool and amtool
come from the Debian ``prometheus`` / ``prometheus-alertmanager`` packages:
missing, the tests skip locally and fail under CI.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from monitor.ops import spec as S

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
