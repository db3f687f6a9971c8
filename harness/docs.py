"""The public JSON of one part of a symbol, for tests that state what the API shows.

Each is the typed view (consumers.views) written by monitor.documents, or None when the
symbol has no such part: exactly the fragment /api/v1/symbols/{symbol} carries.
"""

from __future__ import annotations

from typing import Any

from consumers import views
from consumers.engine import Engine
from monitor import documents


def etf_doc(engine: Engine, symbol: str) -> dict[str, Any] | None:
    v = views.etf(engine, symbol)
    return None if v is None else documents.etf(v)


def sb_doc(engine: Engine, symbol: str) -> dict[str, Any] | None:
    v = views.southbound(engine, symbol)
    return None if v is None else documents.southbound(v)


def signals_doc(engine: Engine, symbol: str) -> dict[str, Any] | None:
    v = views.signals(engine, symbol)
    return None if v is None else documents.signals(v)


def basket_doc(engine: Engine, symbol: str) -> dict[str, Any] | None:
    v = views.basket(engine, symbol)
    return None if v is None else documents.basket(v)


def symbol_doc(engine: Engine, symbol: str) -> dict[str, Any] | None:
    v = views.symbol(engine, symbol)
    return None if v is None else documents.symbol(v)
