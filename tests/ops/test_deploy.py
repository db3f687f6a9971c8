"""deploy/: every YAML parses, the compose stack refers to files and services that exist,
the Alertmanager entrypoint substitutes the webhook URL, and the Kubernetes manifests
have probes, resources, scrape annotations, a ConfigMap and a Secret."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from monitor.cli import build_parser
from monitor.config import AlertsConfig, load_config
from monitor.ops import render as R
from tests.conftest import missing

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _volumes(service: dict) -> dict[str, str]:
    """Bind mounts of a compose service: container path -> host path (relative to deploy/)."""
    out = {}
    for v in service.get("volumes", []):
        src, dst = v.split(":")[:2]
        if src.startswith("."):
            out[dst] = src
    return out


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(env) if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def test_every_yaml_under_deploy_and_grafana_parses():
    files = sorted(p for d in (DEPLOY, REPO / "grafana") for ext in ("*.yml", "*.yaml") for p in d.rglob(ext))
    assert len(files) >= 10
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path}: empty"


def test_compose_has_the_whole_stack():
    services = _compose()["services"]
    assert {"kafka", "mosquitto", "prometheus", "alertmanager", "grafana", "ingest", "consume"} <= set(services)
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(_env(kafka)["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}  # KRaft
    assert services["ingest"]["command"][0] == "ingest"
    assert services["consume"]["command"][0] == "consume"


def test_compose_refers_to_files_that_exist():
    compose = _compose()
    for name, svc in compose["services"].items():
        for dst, src in _volumes(svc).items():
            assert (DEPLOY / src).exists(), f"{name}: {src} (mounted at {dst}) does not exist"
        build = svc.get("build")
        if build:
            context = DEPLOY / build["context"]
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name


def test_dockerfile_copies_files_that_exist():
    text = (DEPLOY / "Dockerfile").read_text()
    sources = []
    for line in text.splitlines():
        m = re.match(r"^COPY\s+(?!--from)(.+)$", line.strip())
        if m:
            sources += m.group(1).split()[:-1]
    assert "pyproject.toml" in sources
    missing = [s for s in sources if not (REPO / s).exists()]
    assert not missing, missing
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not [s for s in sources if s in ignored], "the Dockerfile copies what .dockerignore leaves out"


def test_compose_prometheus_alertmanager_grafana_are_wired_together():
    services = _compose()["services"]
    # Prometheus: the rendered rules are mounted where prometheus.yml looks for rule files
    prom_cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mounts = _volumes(services["prometheus"])
    rule_mounts = [dst for dst, src in mounts.items() if src == "../grafana/prometheus/rules.yml"]
    assert rule_mounts
    assert any(Path(rule_mounts[0]).match(pattern) for pattern in prom_cfg["rule_files"])
    assert "/etc/prometheus/prometheus.yml" in mounts
    # scrape targets are compose services on the ports they listen on
    targets = {t for sc in prom_cfg["scrape_configs"] for g in sc["static_configs"] for t in g["targets"]}
    for name, port in (("consume", "8000"), ("ingest", "8001")):
        assert f"{name}:{port}" in targets
        assert _env(services[name])["FUNDFLOW_HTTP__PORT"] == port
        assert f"{port}:{port}" in services[name]["ports"]
    am_targets = [t for a in prom_cfg["alerting"]["alertmanagers"] for g in a["static_configs"] for t in g["targets"]]
    assert am_targets == ["alertmanager:9093"]
    # Grafana: provisioning and dashboards where the rendered provider expects them
    g_mounts = _volumes(services["grafana"])
    assert g_mounts["/etc/grafana/provisioning"] == "../grafana/provisioning"
    assert g_mounts[R.DASHBOARDS_PATH] == "../grafana/dashboards"
    home = _env(services["grafana"])["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(R.DASHBOARDS_PATH + "/")
    assert (REPO / "grafana" / "dashboards" / Path(home).name).is_file()
    for url in (R.PROMETHEUS_URL, R.ALERTMANAGER_URL):
        assert re.match(r"http://([\w-]+):\d+", url).group(1) in services
    # the webhook URL reaches both alerting paths
    env_name = AlertsConfig().webhook_url_env
    assert env_name in _env(services["grafana"]) and env_name in _env(services["alertmanager"])
    am_mounts = _volumes(services["alertmanager"])
    entry = services["alertmanager"]["entrypoint"]
    assert entry[-1] in am_mounts and am_mounts[entry[-1]] == "./alertmanager/entrypoint.sh"


def test_compose_commands_exist_in_the_cli():
    parser = build_parser()
    services = _compose()["services"]
    parser.parse_args(services["consume"]["command"])
    parser.parse_args(services["ingest"]["command"])


def test_alertmanager_entrypoint_puts_the_webhook_url_in(tmp_path, require):
    amtool = require("amtool")
    out = tmp_path / "alertmanager.yml"
    url = "https://hooks.example.com/fundflow?team=ops&x=a|b"
    env = dict(os.environ, ALERTMANAGER_CONFIG_IN=str(DEPLOY / "alertmanager" / "alertmanager.yml"),
               ALERTMANAGER_CONFIG_OUT=str(out), ALERTMANAGER_BIN="/bin/echo", FUNDFLOW_ALERT_WEBHOOK_URL=url)
    r = subprocess.run(["sh", str(DEPLOY / "alertmanager" / "entrypoint.sh")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert f"--config.file={out}" in r.stdout
    cfg = yaml.safe_load(out.read_text())
    urls = [w["url"] for rcv in cfg["receivers"] for w in rcv.get("webhook_configs", [])]
    assert urls == [url]
    r = subprocess.run([amtool, "check-config", str(out)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- Kubernetes


def _k8s_docs() -> list[dict]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for rel in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / rel).read_text()) if d]
    return docs


def test_k8s_kustomization_refers_to_files_that_exist():
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for rel in kust["resources"]:
        assert (K8S / rel).is_file(), rel
    for gen in kust.get("configMapGenerator", []):
        for f in gen["files"]:
            assert (K8S / f.split("=")[-1]).is_file(), f
    cfg = load_config(K8S / "fundflow.toml", env={})  # valid keys only
    assert cfg.http.host == "0.0.0.0"


def test_k8s_deployments_have_probes_resources_scrape_annotations_config_and_secrets():
    docs = _k8s_docs()
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    configmaps = {g["name"] for g in kust.get("configMapGenerator", [])}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert secrets
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"fundflow-consume", "fundflow-ingest"}
    services = [d for d in docs if d["kind"] == "Service"]
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        requests = container["resources"]["requests"]
        assert {"cpu", "memory"} <= set(requests), name
        ann = pod["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true"
        assert int(ann["prometheus.io/port"]) == ports["http"]
        assert ann["prometheus.io/path"] == "/metrics"
        assert {e["secretRef"]["name"] for e in container["envFrom"]} <= secrets
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        config_mounts = [m for m in container["volumeMounts"] if "configMap" in volumes[m["name"]]]
        assert config_mounts and volumes[config_mounts[0]["name"]]["configMap"]["name"] in configmaps
        args = container["args"]
        assert args[0] in ("consume", "ingest")
        config_path = args[args.index("--config") + 1]
        assert config_path == config_mounts[0]["mountPath"].rstrip("/") + "/fundflow.toml"
        # a Service selects the pods
        assert any(s["spec"]["selector"].items() <= pod["metadata"]["labels"].items() for s in services), name
    assert deployments["fundflow-ingest"]["spec"]["replicas"] == 1  # one MQTT session per client id


def test_k8s_kustomize_builds():
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if not (kubectl or kustomize):
        missing("neither kubectl nor kustomize installed")
    cmd = [kubectl, "kustomize", str(K8S)] if kubectl else [kustomize, "build", str(K8S)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(r.stdout) if d]
    assert sorted(kinds) == sorted(["Namespace", "ConfigMap", "Secret", "Deployment", "Deployment",
                                    "Service", "Service"])
    assert all(d["metadata"].get("namespace") == "fundflow"
               for d in yaml.safe_load_all(r.stdout) if d and d["kind"] != "Namespace")
