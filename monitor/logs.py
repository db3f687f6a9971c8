"""Process logging: text for a terminal, JSON (one object per line) for a cluster's log pipeline.

``[log] format = "json"`` (or ``FUNDFLOW_LOG__FORMAT=json``) writes objects
with ``time``, ``level``, ``logger``, ``message`` and the structured fields a
call passes in ``extra`` (``topic``, ``partition``, ``symbol``, ``reason``,
...), so a log store can filter on them without parsing the message. Every
secret the config holds is masked in either format, whatever logged it.
"""

from __future__ import annotations

import datetime
import logging
import sys
from collections.abc import Iterable
from typing import IO, Any

import orjson

from monitor.config import LogConfig

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# attributes every LogRecord has: anything else on a record came from ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
MASK = "***"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class _Masking:
    """Replaces each secret with ``***`` in the formatted line."""

    secrets: tuple[str, ...] = ()

    def mask(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text


class TextFormatter(_Masking, logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(TEXT_FORMAT, datefmt="%H:%M:%S")
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return self.mask(line)


class JsonFormatter(_Masking, logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in _fields(record).items():
            doc.setdefault(k, v)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        line = orjson.dumps(doc, default=str).decode()
        return self.mask(line) if self.secrets else line


def setup_logging(verbose: bool = False, cfg: LogConfig | None = None, secrets: Iterable[str] = (),
                  stream: IO[str] | None = None) -> None:
    """(Re)configure the root logger: format, level, per-logger levels; mask ``secrets``.

    Called once with defaults before the config is read, and again with the
    config's ``[log]`` table once it is.
    """
    cfg = cfg or LogConfig()
    fmt = cfg.format.strip().lower()
    if fmt not in ("text", "json"):
        raise ValueError(f'[log] format must be "text" or "json", got {cfg.format!r}')
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else TextFormatter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else _level(cfg.level, "level"))
    # kafka-python logs every refused reconnect at ERROR; our checkpoint/produce paths report a broker
    # outage once, in words, so its own chatter is only shown with --verbose (or a [log.levels] entry).
    logging.getLogger("kafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name, level in cfg.levels.items():
        logging.getLogger(name).setLevel(_level(level, f"levels.{name}"))


def _level(value: str, where: str) -> int:
    level = logging.getLevelName(str(value).strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"[log] {where}: unknown level {value!r}")
    return level
