"""The IOC's HTTP routes: the province summary (and the dashboard page, ``/ioc``).

Routes
------
- ``/api/ioc/summary``: the province summary as JSON (:mod:`smarttrees.ioc`), every figure added
  up from the records, each with its period and definition (Vietnamese and English).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from smarttrees import ioc
from smarttrees.settings import Settings


def _json(doc: Any) -> Response:
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-cache"}
    )


async def _refresh_trees_if_behind(conn: Any, settings: Settings) -> None:
    cur = await conn.execute(ioc.TREES_BEHIND)
    row = await cur.fetchone()
    if row and row[0]:
        async with conn.transaction():
            for statement, params in ioc.refresh_statements(settings, ioc.TREE_VIEWS):
                await conn.execute(statement, params)


async def summary(request: Request) -> Response:
    """``GET /api/ioc/summary``: the province summary."""
    settings: Settings = request.app.state.settings
    params = {"k": settings.privacy_min_count}
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with request.app.state.pool.connection() as conn:
        await _refresh_trees_if_behind(conn, settings)
        for name, query in ioc.STATEMENTS.items():
            cur = await conn.execute(query, params)
            rows[name] = await cur.fetchall()
    return _json(ioc.assemble(rows, settings))


def routes() -> list[BaseRoute]:
    """The IOC's routes."""
    return [
        Route("/api/ioc/summary", summary, methods=["GET"], name="ioc_summary"),
    ]
