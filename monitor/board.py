"""The live board at `/`: static files packaged with the service, no build step.

``monitor/static/`` holds index.html, app.js, style.css and the vendored chart
library (``vendor/``, with its licence). The page reads the ``/api/v1``
endpoints; `/` and `/static/` are never behind the bearer token (the page asks
for the token when the API answers 401).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from aiohttp import web

STATIC = Path(str(resources.files("monitor").joinpath("static")))
# Revalidate on every load (ETag / Last-Modified make that a cheap 304), so an
# upgraded service never runs with yesterday's app.js from the browser cache.
CACHE_CONTROL = "no-cache"


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": CACHE_CONTROL})


async def _static_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = CACHE_CONTROL
        response.headers.setdefault("X-Content-Type-Options", "nosniff")


def add_board_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, show_index=False)
    app.on_response_prepare.append(_static_headers)
