"""Tree-care HTTP routes (issue 19): inspections and the due list.

- ``POST /api/care/inspections``: one inspection object, a list, or ``{"inspections": [...]}``;
  all or nothing; an inspection with a ``device_id`` and ``client_event_id`` already stored is
  answered as before (offline replays). Field or editor token.
- ``GET /api/care/due?by=&commune=&risk=&category=&limit=&never_inspected=``: the due list
  (:mod:`smarttrees.care.due`); ``risk`` and ``category`` take comma-separated lists. Any token.

- ``POST /api/care/orders``: a new work order (editor): ``work_type``, ``trees`` (codes) or
  ``location`` ([lon, lat], a planting), ``priority`` (1–5), ``note``. 201 with the order.
- ``GET /api/care/orders?status=&crew=&commune=&limit=``: orders, most urgent first (any token).
- ``GET /api/care/orders/{id}``: one order, its trees and every transition (any token).
- ``POST /api/care/orders/{id}/transitions``: ``{"to": "approved" | "scheduled" | "done" |
  "cancelled", "crew", "scheduled_on", "actual_cost_vnd", "replant", "note"}``; editors move any
  order, a field account marks done only the orders scheduled for it
  (:mod:`smarttrees.care.orders`). 200 with the order and ``opened`` (planting orders opened).

- ``POST /api/care/storms`` (editor): a storm event ``{"name", "started_on", "ended_on",
  "area", "note"}``; ``GET /api/care/storms``: every storm with its record count.
- ``POST /api/care/storms/{id}/damage`` (field or editor): damage records, one object, a list
  or ``{"records": [...]}``, all or nothing, idempotent on ``(device_id, client_event_id)``
  (:mod:`smarttrees.care.storms`).
- ``GET /api/care/storms/{id}/damage``: the records as GeoJSON (the live map);
  ``GET /api/care/storms/{id}/communes``: counts per commune; both any token.
- ``POST /api/care/storms/{id}/orders`` (editor): a work order for every record without one,
  most urgent first; answers ``{"opened": [ids]}``.

- ``GET /api/care/due.pdf`` (the due list's parameters) and ``GET /api/care/orders.pdf?crew=&on=
  &status=`` (default: scheduled orders): printable A4 sheets with a map
  (:mod:`gis_api.care_sheets`); any token.

Refusals are raised, never answered here: :mod:`gis_api.errors` maps each care rule to its status.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

import orjson
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.auth import require_role
from gis_api.errors import InvalidParameter
from smarttrees import photos
from smarttrees.care.due import DueFilter, due_list
from smarttrees.care.errors import CareError
from smarttrees.care.inspections import Inspection, parse_inspections, record_inspections
from smarttrees.care.orders import create_order, get_order, list_orders, move, parse_order
from smarttrees.care.storms import (
    create_storm,
    damage_by_commune,
    damage_features,
    list_storms,
    orders_from_damage,
    parse_damage,
    parse_storm,
    record_damage,
)

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


async def check_photos(conn: AsyncConnection, parsed: list[Inspection]) -> None:
    """Every photo id an inspection names is in the photo store (uploaded first)."""
    missing = set(await photos.missing_photos(conn, [p for i in parsed for p in i.photos]))
    problems = [f"inspections[{n}].photos: photo {p} was not uploaded (POST /api/photos first)"
                for n, i in enumerate(parsed) for p in i.photos if p in missing]
    if problems:
        raise CareError("invalid_inspection", "nothing stored: " + "; ".join(problems[:10]))


async def post_inspections(request: Request) -> Response:
    """Record one inspection or a batch, all or nothing."""
    who = await require_role(request, *RECORD_ROLES)
    items, batch = batch_items(await read_json(request), "inspections")
    parsed = parse_inspections(items)
    cycle = request.app.state.settings.care_cycle_months
    async with request.app.state.pool.connection() as conn:
        await check_photos(conn, parsed)
        answers = await record_inspections(conn, parsed, cycle, who.username)
    return json_response({"inspections": answers} if batch else answers[0], 201)


def query_list(request: Request, name: str) -> tuple[str, ...]:
    """A comma-separated query parameter as a tuple (empty when absent)."""
    raw = request.query_params.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter; a 400 naming it when it is not one."""
    raw = request.query_params.get(name)
    if not raw:  # "limit=" is answered as if it were absent, as everywhere
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
    never = (request.query_params.get("never_inspected") or "false").lower()
    if never not in ("true", "false"):
        raise InvalidParameter(f"never_inspected: {never!r}: use true or false")
    return DueFilter(by, request.query_params.get("commune") or None,
                     query_list(request, "risk"), query_list(request, "category"),
                     query_int(request, "limit", 100), never == "true")


async def get_due(request: Request) -> Response:
    """The trees due for inspection."""
    await require_role(request, *READ_ROLES)
    what = due_filter(request)
    async with request.app.state.pool.connection() as conn:
        doc = await due_list(conn, what)
    return json_response(doc)


async def post_order(request: Request) -> Response:
    """Create a work order (status requested)."""
    who = await require_role(request, "editor")
    order = parse_order(await read_json(request))
    async with request.app.state.pool.connection() as conn:
        doc = await get_order(conn, await create_order(conn, order, who))
    return json_response(doc, 201)


async def get_orders(request: Request) -> Response:
    """Work orders, most urgent first."""
    await require_role(request, *READ_ROLES)
    q = request.query_params
    async with request.app.state.pool.connection() as conn:
        orders = await list_orders(conn, query_list(request, "status"), q.get("crew") or None,
                                   q.get("commune") or None, query_int(request, "limit", 1000))
    return json_response({"orders": orders})


def _order_id(request: Request) -> int:
    return int(request.path_params["order_id"])


async def get_one_order(request: Request) -> Response:
    """One work order with its trees and transitions."""
    await require_role(request, *READ_ROLES)
    async with request.app.state.pool.connection() as conn:
        doc = await get_order(conn, _order_id(request))
    return json_response(doc)


class Transition(BaseModel):
    """The body of ``POST /api/care/orders/{id}/transitions``."""

    model_config = ConfigDict(extra="forbid")

    to: str
    crew: str | None = Field(None, max_length=200)
    scheduled_on: date | None = None
    actual_cost_vnd: int | None = Field(None, ge=0)
    replant: bool = False
    note: str | None = Field(None, max_length=4000)


async def post_transition(request: Request) -> Response:
    """Move a work order one step on."""
    who = await require_role(request, "editor", "field")
    try:
        step = Transition.model_validate(await read_json(request))
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise CareError("invalid_order", "; ".join(problems)) from None
    order_id = _order_id(request)
    async with request.app.state.pool.connection() as conn:
        opened = await move(conn, order_id, step.to, who, crew=step.crew,
                            scheduled_on=step.scheduled_on, actual_cost_vnd=step.actual_cost_vnd,
                            replant=step.replant, note=step.note)
        doc = await get_order(conn, order_id)
    return json_response({**doc, "opened": opened})


def _storm_id(request: Request) -> int:
    return int(request.path_params["storm_id"])


async def post_storm(request: Request) -> Response:
    """Create a storm event."""
    who = await require_role(request, "editor")
    storm = parse_storm(await read_json(request))
    async with request.app.state.pool.connection() as conn:
        storm_id = await create_storm(conn, storm, who)
    return json_response({"id": storm_id, "name": storm.name}, 201)


async def get_storms(request: Request) -> Response:
    """Every storm event."""
    await require_role(request, *READ_ROLES)
    async with request.app.state.pool.connection() as conn:
        return json_response({"storms": await list_storms(conn)})


async def post_damage(request: Request) -> Response:
    """Store damage records under a storm (offline batches)."""
    who = await require_role(request, *RECORD_ROLES)
    items, batch = batch_items(await read_json(request), "records")
    records = parse_damage(items)
    async with request.app.state.pool.connection() as conn:
        answers = await record_damage(conn, _storm_id(request), records, who.username)
    return json_response({"records": answers} if batch else answers[0], 201)


async def get_damage(request: Request) -> Response:
    """The storm's damage as GeoJSON."""
    await require_role(request, *READ_ROLES)
    async with request.app.state.pool.connection() as conn:
        doc = await damage_features(conn, _storm_id(request))
    return Response(orjson.dumps(doc), media_type="application/geo+json",
                    headers={"Cache-Control": "no-store"})


async def get_damage_by_commune(request: Request) -> Response:
    """The storm's damage counted per commune."""
    await require_role(request, *READ_ROLES)
    async with request.app.state.pool.connection() as conn:
        return json_response({"communes": await damage_by_commune(conn, _storm_id(request))})


async def post_storm_orders(request: Request) -> Response:
    """Open work orders from the storm's damage records, most urgent first."""
    who = await require_role(request, "editor")
    async with request.app.state.pool.connection() as conn:
        opened = await orders_from_damage(conn, _storm_id(request), who)
    return json_response({"opened": opened}, 201)


def _pdf(data: bytes, name: str) -> Response:
    return Response(data, media_type="application/pdf", headers={
        "Cache-Control": "no-store", "Content-Disposition": f'inline; filename="{name}"'})


async def get_due_pdf(request: Request) -> Response:
    """The due list as a printable sheet with a map."""
    await require_role(request, *READ_ROLES)
    what = due_filter(request)
    from gis_api.care_sheets import commune_outlines, due_points, due_sheet

    async with request.app.state.pool.connection() as conn:
        doc = await due_list(conn, what)
        rings = await commune_outlines(conn, due_points(doc))
    parts = [f"xã · commune {what.commune}" if what.commune else "toàn tỉnh · whole province"]
    parts += [f"rủi ro · risk {', '.join(what.risks)}"] if what.risks else []
    data = await asyncio.to_thread(due_sheet, doc, "; ".join(parts), rings)
    return _pdf(data, f"due-{what.by.isoformat()}.pdf")


async def get_orders_pdf(request: Request) -> Response:
    """Work orders (default: scheduled) as a crew's printable sheet with a map."""
    await require_role(request, *READ_ROLES)
    q = request.query_params
    raw_on = q.get("on")
    try:
        day = date.fromisoformat(raw_on).isoformat() if raw_on else None
    except ValueError:
        raise InvalidParameter(f"on: {raw_on!r} is not a date (YYYY-MM-DD)") from None
    from gis_api.care_sheets import commune_outlines, order_points, orders_sheet

    async with request.app.state.pool.connection() as conn:
        orders = await list_orders(conn, query_list(request, "status") or ("scheduled",),
                                   q.get("crew") or None, q.get("commune") or None)
        orders = [o for o in orders if day is None or o["scheduled_on"] == day]
        rings = await commune_outlines(conn, order_points(orders))
    heading = f"Tổ · Crew: {q.get('crew') or 'tất cả · all'}; ngày · day: {day or 'mọi ngày · any'}"
    data = await asyncio.to_thread(orders_sheet, orders, heading, rings)
    return _pdf(data, "work-orders.pdf")


def routes() -> list[BaseRoute]:
    """The tree-care routes (mounted before the OGC APIs)."""
    return [
        Route("/api/care/inspections", post_inspections, methods=["POST"],
              name="care_inspections"),
        Route("/api/care/due", get_due, methods=["GET"], name="care_due"),
        Route("/api/care/due.pdf", get_due_pdf, methods=["GET"], name="care_due_pdf"),
        Route("/api/care/orders.pdf", get_orders_pdf, methods=["GET"], name="care_orders_pdf"),
        Route("/api/care/orders", post_order, methods=["POST"], name="care_order_create"),
        Route("/api/care/orders", get_orders, methods=["GET"], name="care_orders"),
        Route("/api/care/orders/{order_id:int}", get_one_order, methods=["GET"],
              name="care_order"),
        Route("/api/care/orders/{order_id:int}/transitions", post_transition, methods=["POST"],
              name="care_order_transition"),
        Route("/api/care/storms", post_storm, methods=["POST"], name="care_storm_create"),
        Route("/api/care/storms", get_storms, methods=["GET"], name="care_storms"),
        Route("/api/care/storms/{storm_id:int}/damage", post_damage, methods=["POST"],
              name="care_damage_record"),
        Route("/api/care/storms/{storm_id:int}/damage", get_damage, methods=["GET"],
              name="care_damage"),
        Route("/api/care/storms/{storm_id:int}/communes", get_damage_by_commune,
              methods=["GET"], name="care_damage_by_commune"),
        Route("/api/care/storms/{storm_id:int}/orders", post_storm_orders, methods=["POST"],
              name="care_storm_orders"),
    ]
