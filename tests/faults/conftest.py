"""The fault and abuse suite (issue 10): a session-wide tally printed at the end of the run.

Every scenario adds what it pushed in and what became of it to ``ledger``; the
terminal summary prints the totals (events in / applied / rejected / duplicates,
crashes, restarts survived), so a CI log shows what the suite proved.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

LEDGER: Counter[str] = Counter()
LINES: list[str] = []


class Ledger:
    """What one scenario accounts for; ``in_ == applied + rejected + duplicates`` is asserted by the test."""

    def __init__(self) -> None:
        self.c = LEDGER

    def add(self, scenario: str, *, in_: int = 0, applied: int = 0, rejected: int = 0, duplicates: int = 0,
            crashes: int = 0, restarts: int = 0, note: str = "") -> None:
        for key, n in (("in", in_), ("applied", applied), ("rejected", rejected), ("duplicates", duplicates),
                       ("crashes", crashes), ("restarts", restarts)):
            self.c[key] += n
        self.c["scenarios"] += 1
        LINES.append(f"  {scenario:<28} in {in_:>7,}  applied {applied:>7,}  rejected {rejected:>6,}  "
                     f"duplicates {duplicates:>5,}  crashes {crashes}  restarts {restarts}"
                     + (f"  ({note})" if note else ""))

    def note(self, line: str) -> None:
        LINES.append("  " + line)


@pytest.fixture(scope="session")
def ledger() -> Ledger:
    return Ledger()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not LINES and not LEDGER:
        return
    tr = terminalreporter
    tr.section("fault suite summary (tests/faults)")
    for line in LINES:
        tr.write_line(line)
    c = LEDGER
    tr.write_line(f"  TOTAL: events in {c['in']:,}, applied {c['applied']:,}, rejected {c['rejected']:,}, "
                  f"duplicates {c['duplicates']:,}; crashes {c['crashes']}; restarts survived {c['restarts']}; "
                  f"scenarios {c['scenarios']}")
