"""The committed grafana/ files: up to date with the spec, and well formed.

* a fresh render (``fundflow rules render --out TMP``) equals the committed files;
* every alert has ``for:``, a severity, a static summary, a templated
  description and a ``runbook_url`` whose anchor is a heading of docs/runbook.md;
* Grafana provisioning parses and refers to dashboards and datasources that exist;
* dashboards are structurally valid (unique panel ids, known datasource uids,
  template variables defined before use).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from monitor.cli import main as cli_main
from monitor.config import AlertsConfig, Config, load_config
from monitor.ops import render as R
from monitor.ops import spec as S

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
RUNBOOK = REPO / "docs" / "runbook.md"


def _committed() -> dict[str, str]:
    return {
        str(p.relative_to(REPO)): p.read_text(encoding="utf-8")
        for p in sorted(GRAFANA.rglob("*"))
        if p.is_file()
    }


def _runbook_anchors() -> set[str]:
    """GitHub anchors of the runbook's headings (lower case, punctuation dropped, spaces -> -)."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if m:
            text = re.sub(r"[^\w\- ]", "", m.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


# --------------------------------------------------------------------------- (a) up to date


def test_committed_files_equal_a_fresh_render(tmp_path):
    assert cli_main(["rules", "render", "--out", str(tmp_path)]) == 0
    fresh = {
        str(p.relative_to(tmp_path)): p.read_text(encoding="utf-8")
        for p in sorted((tmp_path / "grafana").rglob("*"))
        if p.is_file()
    }
    committed = _committed()
    assert sorted(fresh) == sorted(committed), "files differ: run `fundflow rules render` and commit grafana/"
    stale = [rel for rel in fresh if fresh[rel] != committed[rel]]
    assert not stale, f"{stale} differ from a fresh render: run `fundflow rules render` and commit grafana/"


def test_render_check_mode_reports_drift(tmp_path):
    assert R.main(["--out", str(tmp_path)]) == 0
    assert R.main(["--out", str(tmp_path), "--check"]) == 0
    rules = tmp_path / "grafana" / "prometheus" / "rules.yml"
    rules.write_text(rules.read_text() + "# edited by hand\n")
    (tmp_path / "grafana" / "dashboards" / "old-board.json").write_text("{}")
    problems = R.check(Config(), tmp_path)
    assert any("rules.yml" in p and "differs" in p for p in problems)
    assert any("old-board.json" in p for p in problems)
    assert R.main(["--out", str(tmp_path), "--check"]) == 1
    R.render(Config(), tmp_path)  # a render removes the stale dashboard
    assert R.check(Config(), tmp_path) == []


def test_render_is_deterministic():
    assert R.render_files(Config()) == R.render_files(Config())


def test_thresholds_and_for_overrides_come_from_config(tmp_path):
    cfg_file = tmp_path / "fundflow.toml"
    cfg_file.write_text(
        "[alerts]\n"
        "streak_days = 8\n"
        "new_high_volume_ratio = 3.5\n"
        'for_overrides = { FundflowFeedStalled = "2m", FundflowEtfAumRecord = "0s" }\n'
    )
    cfg = load_config(cfg_file, env={})
    rules = yaml.safe_load(R.render_files(cfg)["grafana/prometheus/rules.yml"])
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert by_name["FundflowSouthboundNetBuyStreak"]["expr"].endswith(">= 8")
    assert "threshold 8" in by_name["FundflowSouthboundNetBuyStreak"]["annotations"]["description"]
    assert ">= 3.5 and on(market)" in by_name["FundflowEtfNewHighOnHeavyVolume"]["expr"]
    assert by_name["FundflowFeedStalled"]["for"] == "2m"
    assert by_name["FundflowEtfAumRecord"]["for"] == "0s"
    assert by_name["FundflowConsumerLagHigh"]["for"] == "5m"  # default kept
    # the same from the environment
    cfg = load_config(None, env={"FUNDFLOW_ALERTS__FOR_OVERRIDES": "FundflowTargetDown=30s"})
    assert S.build(cfg).alert("FundflowTargetDown").for_ == "30s"


@pytest.mark.parametrize("overrides", [{"NoSuchAlert": "1m"}, {"FundflowFeedStalled": "soon"}])
def test_bad_for_overrides_are_errors(overrides):
    with pytest.raises(ValueError):
        S.build(AlertsConfig(for_overrides=overrides))


def test_unknown_placeholder_is_an_error():
    with pytest.raises(KeyError):
        S.fill("threshold {no_such_field}", AlertsConfig())
    # PromQL matchers and Go templates are left alone
    assert S.fill('x{symbol="a"} {{ $value }}', AlertsConfig()) == 'x{symbol="a"} {{ $value }}'


# --------------------------------------------------------------------------- (d) alerts


def _prometheus_alerts() -> list[dict]:
    data = yaml.safe_load((GRAFANA / "prometheus" / "rules.yml").read_text())
    return [r for g in data["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_is_complete_and_has_a_runbook_section():
    anchors = _runbook_anchors()
    alerts = _prometheus_alerts()
    assert {a["alert"] for a in alerts} == {a.name for a in S.ALERTS}
    for a in alerts:
        name = a["alert"]
        assert re.fullmatch(r"Fundflow[A-Z][A-Za-z0-9]+", name), name
        assert S.parse_duration(a["for"]) > 0, f"{name}: for: must be set"
        assert a["labels"]["severity"] in S.SEVERITIES, name
        ann = a["annotations"]
        assert ann["summary"] and "{{" not in ann["summary"], f"{name}: static summary"
        assert "$value" in ann["description"], f"{name}: description shows the value"
        if "symbol" in ann["description"] or "symbol" in a["expr"]:
            assert "$labels.symbol" in ann["description"], f"{name}: description names the symbol"
        url = ann["runbook_url"]
        assert url.startswith(AlertsConfig().runbook_base_url + "#"), url
        anchor = url.split("#", 1)[1]
        assert anchor == name.lower()
        assert anchor in anchors, f"{name}: docs/runbook.md has no section '## {name}'"


def test_runbook_section_says_meaning_check_and_action():
    text = RUNBOOK.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)
    by_title = {s.split("\n", 1)[0].strip(): s for s in sections[1:]}
    for a in S.ALERTS:
        body = by_title.get(a.name)
        assert body, f"no runbook section for {a.name}"
        assert "**Meaning.**" in body, a.name
        assert "check" in body.lower() and "what to do" in body.lower(), a.name


def test_market_hours_alerts_are_gated_on_market_open():
    gated = {a.name for a in S.ALERTS if a.gate is not None}
    assert {"FundflowEtfTurnoverSurge", "FundflowEtfVolumeRatioHigh", "FundflowEtfLargeNetInflow",
            "FundflowEtfLargeNetOutflow", "FundflowFeedStalled", "FundflowSourceDisconnected",
            "FundflowEtfNewHighOnHeavyVolume", "FundflowEtfMainNetInflow", "FundflowEtfMainNetOutflow",
            "FundflowEtfPremiumHigh", "FundflowSouthboundQuotaNearlyUsed"} <= gated
    for a in _prometheus_alerts():
        if a["alert"] in gated:
            assert "fundflow_market_open" in a["expr"], a["alert"]


def test_issue_11_alerts():
    spec = S.build()
    high = spec.alert("FundflowEtfNewHighOnHeavyVolume")
    assert high.labels["severity"] == "info"
    assert 'fundflow_etf_new_high{window="250d"} == 1' in high.expr
    assert "fundflow_etf_volume_ratio" in high.expr and high.threshold == "2"
    assert "fundflow_market_open" in high.expr
    assert S.build(AlertsConfig(new_high_volume_ratio=2.5)).alert("FundflowEtfNewHighOnHeavyVolume").threshold == "2.5"
    aum = spec.alert("FundflowEtfAumRecord")
    assert aum.labels["severity"] == "info"
    assert "fundflow_etf_aum_at_record == 1" in aum.expr


def test_main_force_premium_and_quota_alerts():
    """Thresholds from [alerts]; the ETF alerts gated on the symbol's market, the quota alert on Hong Kong's."""
    spec = S.build()
    inflow, outflow = spec.alert("FundflowEtfMainNetInflow"), spec.alert("FundflowEtfMainNetOutflow")
    assert inflow.value == 'label_replace(fundflow_etf_main_net_inflow_cny{window="1d"}, "market", "$1", ' \
                           '"symbol", ".+[.](SH|SZ|HK)")'
    assert inflow.expr.endswith(">= 200000000 and on(market) (market:fundflow_market_open:max == 1)")
    assert outflow.value.startswith('label_replace(-fundflow_etf_main_net_inflow_cny{window="1d"}')
    assert outflow.threshold == "200000000" and outflow.op == ">="  # main <= -200M
    premium = spec.alert("FundflowEtfPremiumHigh")
    assert premium.value.startswith("label_replace(abs(fundflow_etf_premium_ratio)")
    assert (premium.op, premium.threshold, premium.for_) == (">=", "0.01", "5m")
    quota = spec.alert("FundflowSouthboundQuotaNearlyUsed")
    assert quota.expr == ('fundflow_southbound_quota_used_ratio >= 0.8 and on() '
                          '(max(market:fundflow_market_open:max{market="HK"}) == 1)')
    assert quota.gate == 'max(market:fundflow_market_open:max{market="HK"})'  # Grafana query G
    cfg = AlertsConfig(main_net_inflow_1d_cny=3e8, premium_ratio=0.02, quota_used_ratio=0.9)
    custom = S.build(cfg)
    assert custom.alert("FundflowEtfMainNetInflow").threshold == "300000000"
    assert "threshold 300,000,000 CNY" in custom.alert("FundflowEtfMainNetOutflow").annotations["description"]
    assert custom.alert("FundflowEtfPremiumHigh").threshold == "0.02"
    assert "threshold 2.00%" in custom.alert("FundflowEtfPremiumHigh").annotations["description"]
    assert custom.alert("FundflowSouthboundQuotaNearlyUsed").threshold == "0.9"
    with pytest.raises(ValueError):
        S.MarketGate(per_symbol=True, market="HK")


# --------------------------------------------------------------------------- (d) Grafana provisioning


def _yaml_file(rel: str) -> dict:
    path = GRAFANA / rel
    text = path.read_text(encoding="utf-8")
    assert text.startswith(R.GENERATED_HEADER), f"{rel}: generated header missing"
    return yaml.safe_load(text)


def _dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def test_provisioning_files_parse_and_refer_to_what_exists():
    ds = _yaml_file("provisioning/datasources/prometheus.yml")
    uids = {d["uid"] for d in ds["datasources"]}
    assert S.DATASOURCE_UID in uids
    assert [d["uid"] for d in ds["datasources"] if d.get("isDefault")] == [S.DATASOURCE_UID]

    providers = _yaml_file("provisioning/dashboards/fundflow.yml")["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    assert providers[0]["options"]["path"] == R.DASHBOARDS_PATH
    boards = _dashboards()
    assert sorted(boards) == sorted(d.filename for d in S.DASHBOARDS)

    contact = _yaml_file("provisioning/alerting/contact-points.yml")["contactPoints"]
    receivers = {r["uid"] for c in contact for r in c["receivers"]}
    names = {c["name"] for c in contact}
    assert contact[0]["receivers"][0]["settings"]["url"] == "${FUNDFLOW_ALERT_WEBHOOK_URL}"

    policies = _yaml_file("provisioning/alerting/policies.yml")["policies"]

    def walk(policy):
        yield policy
        for child in policy.get("routes", []):
            yield from walk(child)

    for root in policies:
        for p in walk(root):
            assert p["receiver"] in names, p

    rules = _yaml_file("provisioning/alerting/rules.yml")
    grafana_rules = [r for g in rules["groups"] for r in g["rules"]]
    assert {r["title"] for r in grafana_rules} == {a.name for a in S.ALERTS}
    assert len({r["uid"] for r in grafana_rules}) == len(grafana_rules)
    assert all(len(r["uid"]) <= 40 for r in grafana_rules)
    assert receivers  # a receiver exists for the policy tree
    for g in rules["groups"]:
        assert S.parse_duration(g["interval"]) > 0
    for r in grafana_rules:
        refs = {q["refId"] for q in r["data"]}
        assert r["condition"] in refs, r["title"]
        assert r["for"] and r["labels"]["severity"] in S.SEVERITIES
        assert r["annotations"]["runbook_url"].endswith("#" + r["title"].lower())
        for q in r["data"]:
            assert q["datasourceUid"] in uids | {"__expr__"}, (r["title"], q)
            model = q["model"]
            if q["datasourceUid"] == "__expr__":
                for ref in re.findall(r"\$([A-Z])\b", model.get("expression", "")) + (
                    [model["expression"]] if model.get("type") == "reduce" else []
                ):
                    assert ref in refs, (r["title"], ref)
            else:
                assert model["expr"], r["title"]


def test_dashboards_are_structurally_valid():
    ds_uids = {d["uid"] for d in _yaml_file("provisioning/datasources/prometheus.yml")["datasources"]}
    boards = _dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert len(set(uids)) == len(uids)
    for fname, board in boards.items():
        assert board["uid"] + ".json" == fname
        assert board["title"] and board["panels"], fname
        variables = {v["name"] for v in board["templating"]["list"]}
        for v in board["templating"]["list"]:
            assert v["datasource"]["uid"] in ds_uids, (fname, v["name"])
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids), f"{fname}: duplicate panel ids"
        for p in board["panels"]:
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] in ds_uids, (fname, p["title"])
            assert p["targets"], (fname, p["title"])
            assert p["gridPos"]["w"] <= 24
            refs = [t["refId"] for t in p["targets"]]
            assert len(set(refs)) == len(refs), (fname, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] in ds_uids, (fname, p["title"])
                assert t["expr"].strip(), (fname, p["title"])
                assert "{" + "symbol}" not in t["expr"]
                used = set(re.findall(r"\$(?!__)(\w+)", t["expr"])) - {"1"}
                assert used <= variables, f"{fname} / {p['title']}: undefined variables {used - variables}"
            for link in p.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                target_uid = re.match(r"/d/([\w-]+)/", link["url"]).group(1)
                assert target_uid in uids, (fname, p["title"], link["url"])


def test_dashboards_have_the_panels_the_issues_ask_for():
    boards = {b["uid"]: b for b in _dashboards().values()}

    def titles(uid):
        return {p["title"] for p in boards[uid]["panels"]}

    def exprs(uid):
        return " ".join(t["expr"] for p in boards[uid]["panels"] for t in p.get("targets", []))

    assert {"Top southbound net buys, 5 days", "Top southbound net buys, 20 days", "Current streaks",
            "ETF active net inflow by window", "Turnover today vs previous session", "Volume ratio",
            "Fundflow alerts firing"} <= titles("fundflow-overview")
    # main force, order classes, premium, quota and sectors
    assert {"Main-force net inflow today, top and bottom 5", "Net inflow by order class today, all ETFs",
            "Order classes of the top 10 ETFs by main-force flow", "Premium to IOPV, top 10 by size",
            "Southbound quota used", "Southbound quota balance", "Southbound net buy per channel",
            "Sector ETF net inflow today", "Sector flows today"} <= titles("fundflow-overview")
    for metric in ('fundflow_etf_main_net_inflow_cny{window="1d"}', 'fundflow_etf_order_net_inflow_cny{window="1d"}',
                   "fundflow_etf_premium_ratio", "fundflow_southbound_quota_used_ratio",
                   "fundflow_southbound_quota_balance_cny", "fundflow_southbound_channel_net_buy_hkd",
                   'fundflow_sector_net_inflow_cny{window="1d"}', 'fundflow_sector_main_net_inflow_cny{window="1d"}',
                   'fundflow_sector_southbound_net_buy_hkd{window="1d"}'):
        assert metric in exprs("fundflow-overview"), metric
    for metric in ("fundflow_etf_main_net_inflow_cny", "fundflow_etf_order_net_inflow_cny", "fundflow_etf_iopv_cny",
                   "fundflow_etf_premium_ratio"):
        assert f'{metric}{{symbol="$symbol"' in exprs("fundflow-symbol"), metric
    units = {p["title"]: p.get("fieldConfig", {}).get("defaults", {}).get("unit") for b in boards.values()
             for p in b["panels"]}
    assert units["Southbound quota used"] == units["Premium to IOPV"] == units["Premium now"] == "percentunit"
    assert units["Southbound quota balance"] == units["Main-force net inflow by window"] == "currencyCNY"
    assert units["Southbound net buy per channel"] == "currencyHKD"
    assert {"Ingest rate per source", "Rejected by reason", "Event lag p50 / p99", "Consumer lag",
            "Last event age", "Source connected"} <= titles("fundflow-pipeline")
    symbol = boards["fundflow-symbol"]
    assert [v["name"] for v in symbol["templating"]["list"]] == ["symbol"]
    assert "ETF signals" in titles("fundflow-symbol")  # the row
    for metric in ("fundflow_etf_new_high", "fundflow_macd_dif", "fundflow_macd_dea", "fundflow_macd_bar",
                   "fundflow_macd_cross", "fundflow_etf_basket_southbound_net_buy_hkd",
                   "fundflow_etf_basket_top_weight_ratio", "fundflow_etf_price_change_ratio",
                   "fundflow_etf_creation_net_inflow_cny", "fundflow_southbound_net_buy_streak_sessions"):
        assert metric in exprs("fundflow-symbol"), metric
