"""OGC API Features Part 4: create, replace, update and delete features of writable collections.

Every write needs an editor (or admin) token, runs in one transaction, and names its author in
``smarttrees.actor`` so that the history triggers record who changed what. Values are checked by
PostgreSQL itself (``json_populate_record`` casts each property to its column type; CHECK and
foreign keys do the rest); any refusal is a 400 (409 for a duplicate) and nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from psycopg import sql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gis_api.auth import require_role
from gis_api.collections import COLLECTIONS, Collection
from gis_api.crs import Crs, from_input, parse_crs, transforming
from gis_api.errors import Conflict, InvalidParameter, NotAllowed, NotFound
from gis_api.items_params import collection_or_404, parse_id

WRITE_ROLES = ("editor",)  # admins hold every role
Endpoint = Callable[[Request], Awaitable[Response]]


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameter(f"body: not JSON ({exc})") from None
    # "type" may be left out (QGIS sends {"properties": ...} to PATCH), but is a Feature's.
    if not isinstance(body, dict) or body.get("type", "Feature") != "Feature":
        raise InvalidParameter("body: expected a GeoJSON Feature object (type Feature)")
    return body


def _properties(collection: Collection, body: dict[str, Any]) -> dict[str, Any]:
    props = body.get("properties") or {}
    if not isinstance(props, dict):
        raise InvalidParameter("properties: expected an object")
    unknown = sorted(set(props) - set(collection.writable_properties))
    if unknown:
        allowed = ", ".join(collection.writable_properties)
        raise InvalidParameter(f"properties: {', '.join(unknown)} cannot be written; use {allowed}")
    for name, value in props.items():
        prop = collection.property(name)
        if value is not None and prop is not None and not _has_type(value, prop.type):
            raise InvalidParameter(
                f"properties.{name}: expected {prop.type}, got {_json_type(value)}"
            )
    return props


# JSON types a property of each published type takes (a bool is not a number in JSON Schema).
_ACCEPTS: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
}


def _has_type(value: Any, kind: str) -> bool:
    """True when ``value`` (decoded JSON) is of the published type ``kind``."""
    accepted = _ACCEPTS.get(kind)
    if accepted is None:
        return True
    if isinstance(value, bool):
        return kind == "boolean"
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, accepted)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    names = {str: "string", int: "integer", float: "number", list: "array", dict: "object"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def _check_geometry(collection: Collection, geometry: Any, crs: Crs) -> str:
    """The geometry as GeoJSON text, after the checks PostGIS would answer less clearly."""
    expected = collection.geometry_type or "Point"
    if not isinstance(geometry, dict) or geometry.get("type") != expected:
        raise InvalidParameter(f"geometry: expected a GeoJSON {expected}")
    coords = geometry.get("coordinates")
    if expected == "Point":
        ok = (
            isinstance(coords, list) and len(coords) in (2, 3)
            and all(isinstance(v, int | float) and math.isfinite(v) for v in coords)
        )
        if not ok or not isinstance(coords, list):
            raise InvalidParameter("geometry: a Point needs 2 or 3 finite coordinates")
        if crs.is_storage:
            lon, lat = (coords[1], coords[0]) if crs.lat_first else (coords[0], coords[1])
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise InvalidParameter(f"geometry: {coords} is not a longitude/latitude")
    return orjson.dumps(geometry).decode()


def _geometry_sql(crs: Crs) -> sql.Composable:
    return from_input(sql.SQL("ST_GeomFromGeoJSON(%s)"), crs)


@asynccontextmanager
async def _writing(request: Request, actor: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A transaction that records ``actor`` as the author; database refusals become 4xx."""
    try:
        async with request.app.state.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT set_config('smarttrees.actor', %s, true), "
                "set_config('smarttrees.source', 'api', true)",
                [actor],
            )
            yield conn
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"already exists: {_detail(exc)}") from None
    except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
        raise InvalidParameter(f"refused by the database: {_detail(exc)}") from None
    except psycopg.errors.InternalError_ as exc:
        with transforming("geometry"):  # a point outside its Content-Crs is the client's
            raise exc


def _detail(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [diag.message_primary or type(exc).__name__]
    if diag.constraint_name:
        parts.append(f"(constraint {diag.constraint_name})")
    if diag.column_name:
        parts.append(f"(column {diag.column_name})")
    return " ".join(parts)


def _writable(collection: Collection) -> str:
    if collection.write_table is None:
        raise NotAllowed(f"{collection.id} is read-only")
    return collection.write_table


def _columns(names: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _record_columns(names: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier("r", n) for n in names)


async def create(request: Request, collection: Collection) -> Response:
    """POST a Feature: 201 with its Location."""
    who = await require_role(request, *WRITE_ROLES)
    table = _writable(collection)
    body = _body(await request.body())
    crs = parse_crs(request.headers.get("content-crs"), "Content-Crs")
    props = _properties(collection, body)
    geometry = _check_geometry(collection, body.get("geometry"), crs)
    names = list(props)
    statement = sql.SQL(
        "INSERT INTO smarttrees.{table} ({cols}{sep}{geom_col}) "
        "SELECT {rcols}{sep}{geom} FROM json_populate_record(NULL::smarttrees.{table}, %s::json) r "
        "RETURNING {id}"
    ).format(
        table=sql.Identifier(table), cols=_columns(names), rcols=_record_columns(names),
        sep=sql.SQL(", " if names else ""),
        geom_col=sql.Identifier(collection.geometry_column or "geom"),
        geom=_geometry_sql(crs), id=sql.Identifier(collection.id_column),
    )
    async with _writing(request, who.username) as conn:
        cur = await conn.execute(statement, [geometry, orjson.dumps(props).decode()])
        row = await cur.fetchone()
    new_id = row[0] if row else None
    location = f"{str(request.url.replace(query='')).rstrip('/')}/{new_id}"
    return Response(status_code=201, headers={"Location": location})


async def change(request: Request, collection: Collection, raw_id: str) -> Response:
    """PUT (replace), PATCH (update the given members) or DELETE one feature: 204."""
    who = await require_role(request, *WRITE_ROLES)
    table = _writable(collection)
    key = parse_id(collection, raw_id)
    if key is None:
        raise NotFound(f"no item {raw_id!r} in {collection.id}")
    target = sql.SQL("smarttrees.{} WHERE {} = %s RETURNING {}").format(
        sql.Identifier(table), sql.Identifier(collection.id_column),
        sql.Identifier(collection.id_column),
    )
    if request.method == "DELETE":
        statement: sql.Composed = sql.SQL("DELETE FROM {}").format(target)
        params: list[Any] = [key]
    else:
        statement, params = await _update(request, collection, table, key)
    async with _writing(request, who.username) as conn:
        row = await (await conn.execute(statement, params)).fetchone()
    if row is None:
        raise NotFound(f"no item {raw_id!r} in {collection.id}")
    return Response(status_code=204)


async def _update(
    request: Request, collection: Collection, table: str, key: Any
) -> tuple[sql.Composed, list[Any]]:
    body = _body(await request.body())
    crs = parse_crs(request.headers.get("content-crs"), "Content-Crs")
    props = _properties(collection, body)
    replace = request.method == "PUT"
    names = list(collection.writable_properties) if replace else list(props)
    exprs: list[sql.Composable] = [sql.Identifier("r", n) for n in names]
    params: list[Any] = []
    geometry = body.get("geometry")
    if replace or geometry is not None:
        names.append(collection.geometry_column or "geom")
        exprs.append(_geometry_sql(crs))
        params.append(_check_geometry(collection, geometry, crs))
    if not names:
        raise InvalidParameter("body: nothing to change; give properties or a geometry")
    if "updated_at" in collection.property_names:
        names.append("updated_at")
        exprs.append(sql.SQL("now()"))
    statement = sql.SQL(
        "UPDATE {target_table} SET ({cols}) = (SELECT {exprs} "
        "FROM json_populate_record(NULL::smarttrees.{table}, %s::json) r) "
        "WHERE {id} = %s RETURNING {id}"
    ).format(
        target_table=sql.SQL("smarttrees.{}").format(sql.Identifier(table)),
        cols=_columns(names), exprs=sql.SQL(", ").join(exprs),
        table=sql.Identifier(table), id=sql.Identifier(collection.id_column),
    )
    return statement, [*params, orjson.dumps(props).decode(), key]


async def create_item(request: Request) -> Response:
    """POST ``/collections/{id}/items``: create a feature (201, its URL in Location)."""
    return await create(request, collection_or_404(request))


async def change_item(request: Request) -> Response:
    """PUT, PATCH or DELETE ``/collections/{id}/items/{item_id}`` (204)."""
    return await change(request, collection_or_404(request), request.path_params["item_id"])


def _bound(endpoint: Endpoint, collection_id: str) -> Endpoint:
    """``endpoint`` on a route of one collection, whose path has no ``{collection_id}``."""

    async def bound(request: Request) -> Response:
        request.path_params["collection_id"] = collection_id
        return await endpoint(request)

    return bound


def routes() -> list[BaseRoute]:
    """The write routes of OGC API Features Part 4 (the reads: :mod:`gis_api.items`).

    Only writable collections get them: a write to any other finds the read routes alone and
    answers 405 with ``Allow: GET, HEAD`` (what the OpenAPI document says), before any token
    check.
    """
    table: list[BaseRoute] = []
    for c in COLLECTIONS:
        if c.writable:
            items = f"/collections/{c.id}/items"
            table += [
                Route(items, _bound(create_item, c.id), methods=["POST"],
                      name=f"create_{c.id}_item"),
                Route(items + "/{item_id}", _bound(change_item, c.id),
                      methods=["PUT", "PATCH", "DELETE"], name=f"change_{c.id}_item"),
            ]
    return table
