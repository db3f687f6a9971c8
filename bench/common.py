"""Shared helpers: repo paths, timing, process CPU, subprocess environment."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def env() -> dict[str, str]:
    """Environment for child processes: the repo on PYTHONPATH, no stray FUNDFLOW_* settings."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    e["PYTHONPATH"] = str(REPO) + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def best_of(n: int, fn: Callable[[], float]) -> float:
    """The fastest of n timings (seconds): the least disturbed by a noisy machine."""
    return min(fn() for _ in range(n))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def proc_rss_mb(pid: int | None = None) -> float:
    import psutil

    return psutil.Process(pid or os.getpid()).memory_info().rss / 2**20
