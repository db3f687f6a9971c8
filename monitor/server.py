"""The HTTP face of the service: /metrics, health, the JSON API (aiohttp).

Handlers run on the event loop, the same thread that applies events, so
they read the engine without locks.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from consumers.engine import Engine
from consumers.etf import INTRADAY_WINDOWS
from consumers.views import MULTI_DAY
from monitor import documents
from monitor.board import add_board_routes
from monitor.calendars import MARKETS
from monitor.metrics import Exposition

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ETF_WINDOWS = [n for n, _ in INTRADAY_WINDOWS] + [n for n, _ in MULTI_DAY]
SB_WINDOWS = [n for n, _ in MULTI_DAY]
PROTECTED = ("/api/", "/metrics", "/ingest")

ENGINE = web.AppKey("engine", Engine)
METRICS = web.AppKey("metrics", Exposition)
READY = web.AppKey("ready", object)  # () -> bool
STATUS = web.AppKey("status", object)  # () -> dict


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status=status,
                        content_type="application/json")


def json_error(status: int, message: str) -> web.Response:
    return json_response({"error": {"status": status, "message": message}}, status)


def auth_middleware(token: str) -> Any:
    """Bearer token on /api, /metrics and /ingest; compared in constant time, never logged."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(PROTECTED):
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                resp = json_error(401, "missing or wrong bearer token")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="fundflow"'
                return resp
        return await handler(request)

    return check


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        return json_error(exc.status, exc.reason)


async def metrics(request: web.Request) -> web.Response:
    exposition = request.app[METRICS]
    openmetrics = "application/openmetrics-text" in request.headers.get("Accept", "")
    body = await exposition.render_async(openmetrics)
    return web.Response(body=body, headers={"Content-Type": exposition.content_type(openmetrics)})


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready = request.app[READY]()  # type: ignore[operator]  # app keys hold what make_app stored
    return json_response({"ready": bool(ready)}, 200 if ready else 503)


async def symbols(request: web.Request) -> web.Response:
    return json_response(documents.symbols_answer(request.app[ENGINE]))


async def symbol(request: web.Request) -> web.Response:
    name = request.match_info["symbol"].upper()
    body = documents.symbol_answer(request.app[ENGINE], name)
    if body is None:
        return json_error(404, f"unknown symbol {name[:20]}")
    return json_response(body)


async def history(request: web.Request) -> web.Response:
    name = request.match_info["symbol"].upper()
    days = _int_param(request, "days", 60, 1, 1000)
    body = documents.history_answer(request.app[ENGINE], name, days)
    if body is None:
        return json_error(404, f"unknown symbol {name[:20]}")
    return json_response(body)


async def intraday(request: web.Request) -> web.Response:
    name = request.match_info["symbol"].upper()
    step = _int_param(request, "step", 60, 1, 3600)
    body = documents.intraday_answer(request.app[ENGINE], name, step)
    if body is None:
        return json_error(404, f"no ETF trades for {name[:20]}")
    return json_response(body)


async def status(request: web.Request) -> web.Response:
    return json_response(request.app[STATUS]())  # type: ignore[operator]  # app keys hold what make_app stored


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise _bad(f"{name} must be between {lo} and {hi}")
    return value


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(body=orjson.dumps({"error": {"status": 400, "message": message}}),
                              content_type="application/json")


async def streaks(request: web.Request) -> web.Response:
    min_days = _int_param(request, "min_days", 1, 0, 10_000)
    direction = request.query.get("direction", "any")
    if direction not in ("buy", "sell", "any"):
        raise _bad("direction must be buy, sell or any")
    return json_response(documents.streaks_answer(request.app[ENGINE], min_days, direction))


async def flows(request: web.Request) -> web.Response:
    market = request.query.get("market", "HK").upper()
    window = request.query.get("window", "20d")
    top = _int_param(request, "top", 10, 1, 10_000)
    if market not in MARKETS:
        raise _bad(f"market must be one of {', '.join(MARKETS)}")
    if market == "HK" and window not in SB_WINDOWS:
        raise _bad(f"window must be one of {', '.join(SB_WINDOWS)} for southbound flows")
    if market != "HK" and window not in ETF_WINDOWS:
        raise _bad(f"window must be one of {', '.join(ETF_WINDOWS)}")
    return json_response(documents.flows_answer(request.app[ENGINE], market, window, top))


async def southbound_quota(request: web.Request) -> web.Response:
    return json_response(documents.southbound_quota_answer(request.app[ENGINE]))


async def sectors(request: web.Request) -> web.Response:
    window = request.query.get("window", "1d")
    if window not in SB_WINDOWS:
        raise _bad(f"window must be one of {', '.join(SB_WINDOWS)} for sector flows")
    return json_response(documents.sectors_answer(request.app[ENGINE], window))


async def openapi(request: web.Request) -> web.Response:
    spec = resources.files("monitor").joinpath("openapi.json").read_bytes()
    return web.Response(body=spec, content_type="application/json")


def make_app(engine: Engine, exposition: Exposition, ready: Callable[[], bool],
             status_doc: Callable[[], dict[str, Any]], token: str = "",
             max_body_bytes: int = 8 * 1024 * 1024) -> web.Application:
    middlewares = [error_middleware]
    if token:
        middlewares.insert(0, auth_middleware(token))
    app = web.Application(middlewares=middlewares, client_max_size=max_body_bytes)
    app[ENGINE] = engine
    app[METRICS] = exposition
    app[READY] = ready
    app[STATUS] = status_doc
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/symbols", symbols)
    app.router.add_get("/api/v1/symbols/{symbol}", symbol)
    app.router.add_get("/api/v1/symbols/{symbol}/history", history)
    app.router.add_get("/api/v1/symbols/{symbol}/intraday", intraday)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/streaks", streaks)
    app.router.add_get("/api/v1/flows", flows)
    app.router.add_get("/api/v1/southbound/quota", southbound_quota)
    app.router.add_get("/api/v1/sectors", sectors)
    app.router.add_get("/api/v1/openapi.json", openapi)
    add_board_routes(app)
    return app


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def site_url(runner: web.AppRunner) -> str:
    """The URL actually bound (port 0 asks the OS for a free one)."""
    host, port = runner.addresses[0][:2]
    return f"http://{host}:{port}"
