"""The IOC's HTTP routes: the province summary and the dashboard page.

Routes
------
- ``/api/ioc/summary``: the province summary as JSON (:mod:`smarttrees.ioc`), every figure added
  up from the records, each with its period and definition (Vietnamese and English).
- ``/ioc``: the dashboard (``gis_api/static/ioc.*``, ECharts vendored from npm): the summary, a
  choropleth per indicator with a commune picker, monthly trend charts; it reads only the public
  API.
- ``/ioc/static/...``: its script, style and the vendored ECharts.
- ``/api/ioc/cases?commune=CODE`` or ``?case_no=NO``: the personal records of citizen support,
  for admins only; each read is recorded in ``restricted.access_log`` (who, what, when, how
  many) in the same transaction. ``/api/ioc/access-log``: that record, for admins.
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

from gis_api.auth import require_role
from gis_api.errors import InvalidParameter
from gis_api.i18n import languages
from gis_api.links import base_url
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


CASE_COLUMNS = ("case_no", "full_name", "national_id", "phone", "bank_account", "commune_code",
                "stranded_province", "amount_vnd", "paid_on", "status", "channel",
                "support_type")
READ_CASES = f"""
SELECT {", ".join(CASE_COLUMNS)} FROM restricted.citizen_support_cases
WHERE (%(commune)s::text IS NULL OR commune_code = %(commune)s)
  AND (%(case_no)s::text IS NULL OR case_no = %(case_no)s)
ORDER BY case_no LIMIT 10000
"""
LOG_ACCESS = """
INSERT INTO restricted.access_log (user_id, username, role, what, filter, rows)
VALUES (%s, %s, %s, 'citizen_support_cases', %s, %s)
"""
_FILTER_MAX = 64


def _no_store(doc: Any) -> Response:
    return Response(orjson.dumps(doc), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def cases(request: Request) -> Response:
    """``GET /api/ioc/cases``: personal records, admins only, every read recorded."""
    who = await require_role(request, "admin")
    asked = {k: request.query_params.get(k) for k in ("commune", "case_no")}
    unknown = set(request.query_params) - set(asked)
    if unknown:
        raise InvalidParameter(f"unknown parameter(s): {', '.join(sorted(unknown))}; "
                               "use commune or case_no")
    filters = {k: v for k, v in asked.items() if v}
    if not filters:
        raise InvalidParameter("give commune or case_no: the register is read a part at a time")
    if any(len(v) > _FILTER_MAX for v in filters.values()):
        raise InvalidParameter(f"commune and case_no have at most {_FILTER_MAX} characters")
    async with request.app.state.pool.connection() as conn, conn.transaction():
        cur = await conn.execute(READ_CASES, asked)
        rows = await cur.fetchall()
        await conn.execute(LOG_ACCESS, [who.user_id, who.username, who.role,
                                        orjson.dumps(filters).decode(), len(rows)])
    records = [dict(zip(CASE_COLUMNS, r, strict=True)) for r in rows]
    for record in records:
        record["paid_on"] = record["paid_on"].isoformat()
    return _no_store({"cases": records, "count": len(records)})


async def access_log(request: Request) -> Response:
    """``GET /api/ioc/access-log``: the latest reads of personal records (admins only)."""
    await require_role(request, "admin")
    async with request.app.state.pool.connection() as conn:
        cur = await conn.execute(
            "SELECT at, username, role, what, filter, rows FROM restricted.access_log "
            "ORDER BY id DESC LIMIT 1000")
        rows = await cur.fetchall()
    return _no_store({"reads": [
        {"at": at.isoformat(), "username": u, "role": r, "what": w, "filter": f, "rows": n}
        for at, u, r, w, f, n in rows]})


async def dashboard(request: Request) -> Response:
    """``GET /ioc``: the dashboard page, its configuration inlined."""
    settings: Settings = request.app.state.settings
    base = base_url(request, settings)
    template = resources.files("gis_api").joinpath("static/ioc.html").read_text(encoding="utf-8")
    config = orjson.dumps({"base": base, "languages": list(languages())}).decode()
    config = config.replace("</", "<\\/")
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
            "commune_targets": {
                "type": "object",
                "description": "communes with a target of their own (smarttrees load targets)",
                "properties": {
                    "communes": _INT,
                    "target": {**_INT, "description": "their targets added up"},
                    "trees": {**_INT, "description": "their trees today"},
                    "progress": {"type": "number", "nullable": True}}},
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
        "/api/ioc/cases": {"get": {
            "operationId": "getIocCases",
            "summary": "Citizen-support records with personal data (admins; every read logged)",
            "tags": ["IOC"],
            "security": [{"bearerAuth": []}],
            "parameters": [
                {"name": "commune", "in": "query", "required": False,
                 "description": "home commune code", "schema": {"type": "string", "maxLength": 64}},
                {"name": "case_no", "in": "query", "required": False,
                 "description": "case number", "schema": {"type": "string", "maxLength": 64}},
            ],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {
                    "schema": {"type": "object"}}}},
                **{code: {"description": text, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/smarttreesException"}}}}
                   for code, text in (("400", "no or a malformed filter"),
                                      ("401", "no valid token"), ("403", "not an admin"))},
            },
        }},
        "/api/ioc/access-log": {"get": {
            "operationId": "getIocAccessLog",
            "summary": "Who read which personal records, when (admins)",
            "tags": ["IOC"],
            "security": [{"bearerAuth": []}],
            "responses": {"200": {"description": "OK", "content": {"application/json": {
                "schema": {"type": "object"}}}}},
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
        Route("/api/ioc/cases", cases, methods=["GET"], name="ioc_cases"),
        Route("/api/ioc/access-log", access_log, methods=["GET"], name="ioc_access_log"),
        Mount("/ioc/static", StaticFiles(packages=[("gis_api", "static")]), name="ioc_static"),
    ]
