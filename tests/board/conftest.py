"""Fixtures for the browser tests of the live board (issue 12).

``demo``     module: a real ``fundflow demo`` subprocess on a free loopback port (``.url``)
``browser``  module: Debian's Chromium (/usr/bin/chromium) driven by Playwright, headless

Chromium or Playwright missing: skip locally, FAIL when ``CI`` is set (the
pattern of tests/conftest.py; install with deploy/dev/install-deps.sh).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.services import LOOPBACK, free_port, wait_until
from tests.conftest import REPO_ROOT, missing

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts"


@dataclass
class Demo:
    url: str
    proc: subprocess.Popen
    log: Path

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
        return r.status == 200


def _start_demo(log: Path, duration: int) -> Demo:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDFLOW_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(REPO_ROOT)) if p)
    for attempt in range(3):  # a port taken between free_port() and bind: try another one
        port = free_port()
        cmd = [sys.executable, "-m", "monitor", "demo", "--host", LOOPBACK, "--port", str(port),
               "--duration", str(duration), "--summary-every", "3600"]
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        demo = Demo(f"http://{LOOPBACK}:{port}", proc, log)
        try:
            wait_until(lambda: proc.poll() is not None or _healthy(demo.url),  # noqa: B023 - called in this iteration
                       30, "fundflow demo /healthz")
        except TimeoutError:
            proc.kill()
            raise
        if proc.poll() is None:
            return demo
        if attempt == 2:
            raise RuntimeError(f"fundflow demo exited with {proc.returncode}:\n{demo.tail()}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    log = tmp_path_factory.mktemp("board") / "demo.log"
    d = _start_demo(log, duration=240)
    yield d
    d.proc.terminate()
    try:
        d.proc.wait(10)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        d.proc.wait()


@pytest.fixture(scope="module")
def browser():
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing(f"{CHROMIUM} not installed (Debian package chromium; run: bash deploy/dev/install-deps.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright Python package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors and uncaught exceptions in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, device_scale_factor=1)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    pg.errors = errors  # type: ignore[attr-defined]  # the tests read the page's errors off the page
    yield pg
    context.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name


def elapsed(t0: float) -> str:
    return f"{time.monotonic() - t0:.1f}s"
