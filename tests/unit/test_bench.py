"""The bench plumbing (not the numbers): table, percentiles, JSON output, exit status."""

from __future__ import annotations

import orjson

from bench.common import percentile
from bench.run import Table, main


def test_table_marks_missed_targets_and_percentiles() -> None:
    t = Table()
    t.add("a", "1", "2", 0.5, ">= 1x", False)
    t.add("b", "1", "-", None, "-", None)
    text = t.render()
    assert "MISSED" in text and "0.5x" in text and "n/a" in text
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.99) == 5.0


def test_skipping_everything_writes_json_and_exits_0(tmp_path) -> None:
    out = tmp_path / "r.json"
    assert main(["--quick", "--skip", "compute,memory,kafka", "--json", str(out)]) == 0
    data = orjson.loads(out.read_bytes())
    assert data["mode"] == "quick" and data["errors"] == [] and data["tape"]["events"] > 10_000
