"""`fundflow ingest SOURCE --help` documents every option; the processes stop cleanly on SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from harness.metrics import sample_value
from harness.services import free_port, port_open
from monitor.cli import build_parser
from monitor.config import load_config
from monitor.events import TOPICS
from monitor.ingest.runner import OPTIONS, configured_sources, source_options
from tests.ingest.brokers import read_topic
from tests.ingest.conftest import TS, trade

REPO = Path(__file__).resolve().parents[2]


def help_text(*argv: str, capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("type_", list(OPTIONS))
def test_help_documents_every_option(type_: str, capsys) -> None:
    text = help_text("ingest", type_, capsys=capsys)
    for f in dataclasses.fields(OPTIONS[type_]):
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        assert flag in text, f"{flag} missing from `fundflow ingest {type_} --help`"
        assert f"config key: {f.name};" in " ".join(text.split())
    for common in ("--config", "--name", "--bootstrap", "--buffer-max-events", "--http-port"):
        assert common in text
    assert "--config" in help_text("run", capsys=capsys)


def test_options_precedence(tmp_path) -> None:
    cfg_path = tmp_path / "f.toml"
    cfg_path.write_text('[mqtt]\nhost = "broker"\nusername = "u"\n'
                        '[sources.feed]\ntype = "mqtt"\nport = 1999\nclient_id = "from-file"\n'
                        '[sources.poll]\ntype = "http-poll"\nurl = "http://x/y"\ninterval_s = 2\n'
                        '[sources.off]\ntype = "websocket"\nenabled = false\n')
    cfg = load_config(cfg_path, env={})
    assert configured_sources(cfg) == [("feed", "mqtt"), ("poll", "http-poll")]
    args = build_parser().parse_args(["ingest", "mqtt", "--name", "feed", "--client-id", "from-flag",
                                      "--topic", "a/#", "--topic", "b/#"])
    o = source_options("mqtt", "feed", cfg, args, env={"FUNDFLOW_SOURCES__FEED__PASSWORD": "pw",
                                                       "FUNDFLOW_SOURCES__FEED__CLIENT_ID": "from-env"})
    assert (o.host, o.port, o.username, o.password, o.client_id, o.topics) == ("broker", 1999, "u", "pw",
                                                                               "from-flag", ["a/#", "b/#"])
    assert source_options("http-poll", "poll", cfg, env={}).interval_s == 2.0
    with pytest.raises(ValueError):
        source_options("http-poll", "nourl", cfg, env={})


def _proc(*argv: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "monitor", *argv], cwd=REPO, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def test_ingest_replay_then_mqtt_sigterm(kafka, mosquitto, tmp_path) -> None:
    prefix = uuid.uuid4().hex[:8]
    tape = tmp_path / "tape.ndjson"
    evs = [dict(trade(i, ts=TS + i), trade_id=f"{prefix}-{i}") for i in range(50)]
    tape.write_bytes(b"\n".join(orjson.dumps(e) for e in evs) + b"\nnot json\n")
    log = tmp_path / "replay.log"
    p = _proc("ingest", "replay", str(tape), "--speed", "max", "--bootstrap", kafka.bootstrap, "--no-http",
              log=log)
    assert p.wait(60) == 0, log.read_text()
    recs = read_topic(kafka.bootstrap, TOPICS["trade"], lambda v: str(v.get("trade_id", "")).startswith(prefix), 50)
    assert len({orjson.loads(r.value)["trade_id"] for r in recs}) == 50

    port = free_port()
    log = tmp_path / "mqtt.log"
    p = _proc("ingest", "mqtt", "--host", mosquitto.host, "--port", str(mosquitto.port), "--topic", "cli/#",
              "--client-id", f"cli-{prefix}", "--bootstrap", kafka.bootstrap, "--http-port", str(port), log=log)
    try:
        deadline = time.monotonic() + 20
        while not port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        import urllib.request

        def connected() -> bool:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return sample_value(text, "fundflow_source_connected", {"source": "mqtt"}) == 1

        while time.monotonic() < deadline and not connected():
            time.sleep(0.1)
        assert connected(), log.read_text()
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, log.read_text()
    finally:
        if p.poll() is None:
            p.kill()
