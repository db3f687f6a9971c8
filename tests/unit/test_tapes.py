"""Tape files as exported by other tools: a UTF-8 byte-order mark must not cost a column."""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from pathlib import Path

import orjson

from monitor.calendars import default_calendars
from monitor.events import Bar, Event, Validator
from monitor.ingest.files import read_tape

REPO = Path(__file__).resolve().parents[2]
BARS = ("symbol,date,open,high,low,close,volume,amount\n"
        "513770.SH,2025-09-11,1.05,1.07,1.04,1.06,500000,530000\n"
        "513770.SH,2025-09-12,1.06,1.08,1.05,1.07,600000,642000\n")


def _events(path: Path) -> list[Event]:
    validator = Validator(default_calendars())
    return [validator.validate(obj, "bar") for obj, _ in read_tape(path)]


def test_bar_csv_with_a_utf8_bom_reads_like_one_without(tmp_path: Path) -> None:
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    plain.write_text(BARS, encoding="utf-8")
    excel.write_bytes(codecs.BOM_UTF8 + BARS.encode())
    got = _events(excel)
    assert got == _events(plain)
    assert [(b.symbol, b.date.isoformat(), b.close) for b in got if isinstance(b, Bar)] == [
        ("513770.SH", "2025-09-11", 1_060_000), ("513770.SH", "2025-09-12", 1_070_000)]


def test_ndjson_tape_with_a_utf8_bom_decodes_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.ndjson"
    line = (b'{"kind":"bar","symbol":"513770.SH","date":"2025-09-12","open":1,"high":1,"low":1,"close":1,'
            b'"volume":1,"amount":1}')
    lines = [line, line]
    path.write_bytes(codecs.BOM_UTF8 + b"\n".join(lines) + b"\n")
    assert [obj is not None for obj, _ in read_tape(path)] == [True, True]


def test_replay_of_an_excel_bar_csv_rejects_nothing(tmp_path: Path) -> None:
    """The reported case: ``fundflow replay bars.csv`` on an Excel export rejected every row as missing_field."""
    path = tmp_path / "bars.csv"
    path.write_bytes(codecs.BOM_UTF8 + BARS.encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "monitor", "replay", str(path), "--report", "json", "-q"],
                         cwd=REPO, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    report = orjson.loads(out.stdout)
    assert report["rejected"] == {}
    assert "513770.SH" in report["symbols"]
