"""The board's files as the service serves them (no browser): `/`, `/static/`, no token needed, no CDN."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestClient, TestServer

from monitor.board import STATIC
from monitor.bus.memory import MemoryBus
from monitor.config import Config
from monitor.service import Service


def make_service(token: str = "") -> Service:
    cfg = Config()
    cfg.http.token = token
    bus = MemoryBus(3)
    bus.ensure_topics()
    return Service(cfg, bus=bus)


async def test_board_is_served_without_the_token_and_revalidated():
    async with TestClient(TestServer(make_service(token="t0k").app())) as client:
        r = await client.get("/")
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert r.headers["Cache-Control"] == "no-cache"
        html = await r.text()
        for ref in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            s = await client.get(ref)
            assert s.status == 200, ref
            assert s.headers["Cache-Control"] == "no-cache", ref
        assert (await client.get("/api/v1/symbols")).status == 401  # the API itself stays protected
        assert (await client.get("/static/../board.py")).status in (403, 404)
        assert (await client.get("/static/")).status in (403, 404)  # no directory listing


def test_static_files_are_self_contained():
    """No CDN or other host: every script, style and image is a local /static/ file."""
    html = (STATIC / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs and all(r.startswith("/static/") for r in refs), refs
    for r in refs:
        assert (STATIC / r.removeprefix("/static/")).is_file(), r
    for name in ("app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://", text), f"{name} refers to another host"
    vendor = sorted(p.name for p in (STATIC / "vendor").iterdir())
    assert "chart.umd.min.js" in vendor and "chart.js.LICENSE.md" in vendor
    assert "MIT License" in (STATIC / "vendor" / "chart.js.LICENSE.md").read_text()
