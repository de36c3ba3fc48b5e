"""The IOC's HTTP routes: the province summary and the dashboard page.

Routes
------
- ``/api/ioc/summary``: the province summary as JSON (:mod:`smarttrees.ioc`), every figure added
  up from the records, each with its period and definition (Vietnamese and English).
- ``/ioc``: the dashboard (``gis_api/static/ioc.*``, ECharts vendored from npm): the summary, a
  choropleth per indicator with a commune picker, monthly trend charts; it reads only the public
  API.
- ``/ioc/static/...``: its script, style and the vendored ECharts.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis_api.tiles import base_url
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


async def dashboard(request: Request) -> Response:
    """``GET /ioc``: the dashboard page, its configuration inlined."""
    settings: Settings = request.app.state.settings
    base = base_url(request, settings)
    template = resources.files("gis_api").joinpath("static/ioc.html").read_text(encoding="utf-8")
    config = orjson.dumps({"base": base}).decode().replace("</", "<\\/")
    page = template.replace("__CONFIG__", config).replace("__BASE__", html.escape(base))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


_INT = {"type": "integer"}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_PERIOD = {
    "type": "object",
    "description": "first and last date of the records counted (null: no records)",
    "properties": {
        "from": {"type": "string", "format": "date", "nullable": True},
        "to": {"type": "string", "format": "date", "nullable": True},
    },
}
SUMMARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["province", "documents", "citizen_support", "trees", "definitions"],
    "properties": {
        "province": {"type": "object", "properties": {
            "code": {"type": "string", "nullable": True},
            "name": {"type": "string", "nullable": True}}},
        "documents": {"type": "object", "properties": {
            "period": _PERIOD,
            "total": {**_INT, "description": "documents in the register"},
            "electronic": {**_INT, "description": "documents sent electronically"},
            "electronic_share": {"type": "number", "nullable": True},
            "courier_cost_vnd_each": {**_INT, "description": "SMARTTREES_COURIER_COST_VND"},
            "courier_cost_saved_vnd": {**_INT, "description": "electronic × the rate"},
            "sending_agencies": _INT}},
        "citizen_support": {"type": "object", "properties": {
            "period": _PERIOD,
            "people": {**_NULLABLE_INT, "description": "null when fewer than min_count"},
            "amount_vnd": _NULLABLE_INT,
            "provinces": {**_INT, "description": "provinces where people were stranded"},
            "suppressed": {"type": "boolean"},
            "min_count": {**_INT, "description": "SMARTTREES_PRIVACY_MIN_COUNT"}}},
        "trees": {"type": "object", "properties": {
            "total": _INT,
            "by_category": {"type": "object", "additionalProperties": _INT},
            "by_condition": {"type": "object", "additionalProperties": _INT},
            "target": {**_INT, "description": "SMARTTREES_PLANTING_TARGET"},
            "progress": {"type": "number", "nullable": True},
            "history": {"type": "array", "items": {"type": "object", "properties": {
                "month": {"type": "string", "example": "2025-03"},
                "planted": _INT,
                "trees": {**_INT, "description": "trees at the end of the month"}}}}}},
        "definitions": {
            "type": "object",
            "description": "each figure's definition, by language (vi, en)",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


def openapi_paths() -> dict[str, Any]:
    """OpenAPI 3.0 descriptions of the IOC's routes."""
    return {
        "/ioc": {"get": {
            "operationId": "getIocDashboard",
            "summary": "The IOC dashboard page",
            "tags": ["IOC"],
            "responses": {"200": {"description": "OK", "content": {
                "text/html": {"schema": {"type": "string"}}}}},
        }},
        "/api/ioc/summary": {"get": {
            "operationId": "getIocSummary",
            "summary": "The province summary of the IOC, every figure added up from the records",
            "tags": ["IOC"],
            "responses": {"200": {"description": "OK", "content": {
                "application/json": {"schema": SUMMARY_SCHEMA}}}},
        }},
    }


def routes() -> list[BaseRoute]:
    """The IOC's routes."""
    return [
        Route("/api/ioc/summary", summary, methods=["GET"], name="ioc_summary"),
        Route("/ioc", dashboard, methods=["GET"], name="ioc"),
        Mount("/ioc/static", StaticFiles(packages=[("gis_api", "static")]), name="ioc_static"),
    ]
