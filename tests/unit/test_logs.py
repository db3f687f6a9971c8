"""[log] format: JSON lines that parse with the structured fields, per-logger levels, secrets masked in both formats."""

from __future__ import annotations

import io
import logging

import orjson
import pytest

from monitor.config import load_config
from monitor.logs import setup_logging

STREAM = io.StringIO()


@pytest.fixture
def captured():
    STREAM.seek(0)
    STREAM.truncate()
    yield STREAM
    setup_logging()


def configure(env: dict[str, str]) -> list[str]:
    cfg = load_config(None, env=env)
    setup_logging(False, cfg.log, cfg.secrets(), stream=STREAM)
    return cfg.secrets()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_secret_in_either_format(captured: io.StringIO, fmt: str) -> None:
    secrets = configure({"FUNDFLOW_LOG__FORMAT": fmt, "FUNDFLOW_KAFKA__SASL_PASSWORD": "kafka-pw-123",
                         "FUNDFLOW_HTTP__TOKEN": "tok-456"})
    log = logging.getLogger("fundflow.test")
    log.warning("connecting with %s and %s", "kafka-pw-123", "tok-456", extra={"detail": "tok-456"})
    try:
        raise RuntimeError("kafka-pw-123")
    except RuntimeError:
        log.exception("failed")
    out = captured.getvalue()
    assert out and not any(s in out for s in secrets)
    if fmt == "json":
        docs = [orjson.loads(line) for line in out.splitlines()]
        assert all({"time", "level", "logger", "message"} <= set(d) for d in docs)


def test_json_lines_carry_the_structured_fields(captured: io.StringIO) -> None:
    configure({"FUNDFLOW_LOG__FORMAT": "json"})
    logging.getLogger("fundflow.kafka").warning("topic %s has replication factor %d", "fundflow.etf.trades", 1,
                                                extra={"topic": "fundflow.etf.trades", "partition": 3,
                                                       "reason": "low_rf"})
    (doc,) = [orjson.loads(line) for line in captured.getvalue().splitlines()]
    assert doc["level"] == "WARNING" and doc["logger"] == "fundflow.kafka"
    assert doc["message"] == "topic fundflow.etf.trades has replication factor 1"
    assert (doc["topic"], doc["partition"], doc["reason"]) == ("fundflow.etf.trades", 3, "low_rf")
    assert doc["time"].endswith("Z")


def test_levels_per_logger_from_config(captured: io.StringIO) -> None:
    configure({"FUNDFLOW_LOG__LEVELS": "fundflow.quiet=ERROR,fundflow.chatty=DEBUG"})
    logging.getLogger("fundflow.quiet").warning("hidden")
    logging.getLogger("fundflow.chatty").debug("shown")
    out = captured.getvalue()
    assert "hidden" not in out and "shown" in out


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        configure({"FUNDFLOW_LOG__FORMAT": "xml"})


def test_topics_are_created_with_the_configured_replication() -> None:
    from monitor.bus.kafka import KafkaBus
    from monitor.config import KafkaConfig

    bus = KafkaBus(KafkaConfig(replication_factor=3, min_insync_replicas=2,
                               topic_configs={"unclean.leader.election.enable": "false"}))
    cfg = bus.topic_configs("fundflow.state.daily")
    assert cfg == {"unclean.leader.election.enable": "false", "min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert bus.topic_configs("fundflow.etf.trades")["min.insync.replicas"] == "2"
