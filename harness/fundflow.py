"""`python -m monitor ...` as child processes on free ports, for tests and benchmarks (no pytest import)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import orjson

from harness.services import free_port, wait_until

REPO = Path(__file__).resolve().parents[1]


def http(method: str, url: str, body: bytes | None = None, token: str = "", headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, bytes]:
    """One HTTP request; (status, body) also for error statuses."""
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class FundflowProc:
    """A ``python -m monitor ...`` child process serving HTTP on a free port; killable at any moment."""

    name = "fundflow"

    def __init__(self, log_path: Path, token: str = "", config: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log_path, self.token, self.config, self.extra_env = log_path, token, config, dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> Self:
        env = dict(os.environ, PYTHONPATH=str(REPO), **self.extra_env)
        if self.token:
            env["FUNDFLOW_HTTP__TOKEN"] = self.token
        cmd = [sys.executable, "-m", "monitor", *self.command()]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        self.starts += 1
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return http("GET", self.url + path, token=self.token, timeout=timeout)

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return orjson.loads(body)

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, (status, body[:200])
        return body.decode()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, path: str = "/healthz", timeout: float = 60) -> None:
        """Until ``path`` answers 200 (``/readyz``: connected and state recovered)."""
        def up() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited: {self.log_tail()}")
            try:
                return self.get(path, timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(up, timeout, f"{self.name} answering {path}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, grace_s: float = 60) -> int | None:
        """SIGTERM (finish what is buffered, exit 0); SIGKILL after ``grace_s``. None when never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])


class ConsumerProc(FundflowProc):
    """``python -m monitor consume`` in group ``group``."""

    name = "consumer"

    def __init__(self, bootstrap: str, group: str, log_path: Path, token: str = "", config: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        super().__init__(log_path, token, config, env)
        self.bootstrap, self.group = bootstrap, group

    def command(self) -> list[str]:
        return ["consume", "--bootstrap", self.bootstrap, "--group", self.group, "--port", str(self.port)]

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_http("/readyz", timeout)

    def status(self) -> dict[str, Any]:
        return self.json("/api/v1/status")

    def applied(self) -> int:
        return int(self.status()["events"]["applied"])

    def wait_applied(self, n: int, timeout: float = 120) -> None:
        """Until the consumer has applied n events and has nothing left to read."""
        def done() -> bool:
            if not self.alive():
                raise AssertionError(f"consumer exited: {self.log_tail()}")
            try:
                st = self.status()
            except OSError:
                return False
            return st["events"]["applied"] + st["events"]["duplicates"] >= n and st["consumer_lag_messages"] == 0
        wait_until(done, timeout, f"{n} events applied")

    def documents(self) -> dict[str, Any]:
        syms = [s["symbol"] for s in self.json("/api/v1/symbols")["symbols"]]
        return {s: self.json(f"/api/v1/symbols/{s}") for s in syms}


class IngestProc(FundflowProc):
    """``python -m monitor ingest TYPE ...`` with /metrics (and POST /ingest for push) on a free port."""

    def __init__(self, type_: str, bootstrap: str, log_path: Path, args: Iterable[str] = (), token: str = "",
                 env: dict[str, str] | None = None, config: Path | None = None) -> None:
        super().__init__(log_path, token, config, env)
        self.type, self.bootstrap, self.args = type_, bootstrap, list(args)
        self.name = f"ingest {type_}"

    def command(self) -> list[str]:
        return ["ingest", self.type, "--bootstrap", self.bootstrap, "--http-port", str(self.port), *self.args]
