"""Tree-care HTTP routes (issue 19): inspections and the due list.

- ``POST /api/care/inspections``: one inspection object, a list, or ``{"inspections": [...]}``;
  all or nothing; an inspection with a ``device_id`` and ``client_event_id`` already stored is
  answered as before (offline replays). Field or editor token.
- ``GET /api/care/due?by=&commune=&risk=&category=&limit=&never_inspected=``: the due list
  (:mod:`smarttrees.care.due`); ``risk`` and ``category`` take comma-separated lists. Any token.

Refusals are raised, never answered here: :mod:`gis_api.errors` maps each care rule to its status.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.auth import require_role
from gis_api.errors import InvalidParameter
from smarttrees.care.due import DueFilter, due_list
from smarttrees.care.inspections import parse_inspections, record_inspections

RECORD_ROLES = ("field", "editor")  # admins hold every role
READ_ROLES = ("viewer", "editor", "field")


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON answer that is never cached (care records change by the minute)."""
    return Response(orjson.dumps(body), status, media_type="application/json",
                    headers={"Cache-Control": "no-store"})


async def read_json(request: Request) -> Any:
    """The request's JSON body (capped by gis_api.guards); a 400 when it is not JSON."""
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"the body is not valid JSON: {exc}") from None


def batch_items(payload: Any, key: str) -> tuple[list[Any], bool]:
    """(items, was it a batch) of a body holding one object, a list, or ``{key: [...]}``."""
    if isinstance(payload, list):
        return payload, True
    if isinstance(payload, dict) and key in payload:
        if not isinstance(payload[key], list):
            raise InvalidParameter(f"{key}: must be a list")
        return payload[key], True
    return [payload], False


async def post_inspections(request: Request) -> Response:
    """Record one inspection or a batch, all or nothing."""
    who = await require_role(request, *RECORD_ROLES)
    items, batch = batch_items(await read_json(request), "inspections")
    parsed = parse_inspections(items)
    cycle = request.app.state.settings.care_cycle_months
    async with request.app.state.pool.connection() as conn:
        answers = await record_inspections(conn, parsed, cycle, who.username)
    return json_response({"inspections": answers} if batch else answers[0], 201)


def _list(request: Request, name: str) -> tuple[str, ...]:
    raw = request.query_params.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidParameter(f"{name}: {raw!r} is not an integer") from None


def due_filter(request: Request) -> DueFilter:
    """The due-list filter of a request's query (a 400 naming a bad parameter)."""
    raw_by = request.query_params.get("by")
    try:
        by = date.fromisoformat(raw_by) if raw_by else date.today()
    except ValueError:
        raise InvalidParameter(f"by: {raw_by!r} is not a date (YYYY-MM-DD)") from None
    never = request.query_params.get("never_inspected", "false").lower()
    if never not in ("true", "false"):
        raise InvalidParameter(f"never_inspected: {never!r}: use true or false")
    return DueFilter(by, request.query_params.get("commune") or None, _list(request, "risk"),
                     _list(request, "category"), _int(request, "limit", 100), never == "true")


async def get_due(request: Request) -> Response:
    """The trees due for inspection."""
    await require_role(request, *READ_ROLES)
    what = due_filter(request)
    async with request.app.state.pool.connection() as conn:
        doc = await due_list(conn, what)
    return json_response(doc)


def routes() -> list[BaseRoute]:
    """The tree-care routes (mounted before the OGC APIs)."""
    return [
        Route("/api/care/inspections", post_inspections, methods=["POST"],
              name="care_inspections"),
        Route("/api/care/due", get_due, methods=["GET"], name="care_due"),
    ]
