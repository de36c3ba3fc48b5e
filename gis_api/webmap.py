"""The web map (``/map``): a MapLibre GL JS page over our vector tiles, and its small JSON API.

The page and MapLibre itself are served from ``gis_api/static`` (MapLibre vendored from its npm
package: nothing is fetched from a CDN). With no ``basemap_url`` setting the map has a plain
background, so it works offline.

Routes
------
- ``/map``: the page, with its configuration inlined.
- ``/map/static/...``: the page's script and style, and the vendored MapLibre.
- ``/map/options.json``: what the filter selects offer (the catalogue's trees ``map_filters``:
  categories, species, communes), the conditions, and the extent of the trees.
- ``/map/search.json?code=``: a tree by its code (for "search by tree code").
- ``/api/trees/{id}/history``: a tree's change history and its checks (care inspections), with
  no actor names (personal data).
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from importlib import resources
from typing import Any

import orjson
from psycopg import sql
from psycopg.rows import dict_row
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gis_api.errors import InvalidParameter, NotFound
from gis_api.i18n import languages
from gis_api.links import base_url
from smarttrees.catalog import TREES, MapFilter
from smarttrees.domain import Condition
from smarttrees.settings import Settings

MAX_CODE_LENGTH = 64
_TREE_ID = re.compile(r"^[0-9]{1,18}$")


def _json(doc: Any, max_age: int = 0) -> Response:
    cache = f"public, max-age={max_age}" if max_age else "no-cache"
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": cache}
    )


def page_config(settings: Settings, base: str) -> dict[str, Any]:
    """What the page's script needs to know: where things are and the point zoom."""
    return {
        "base": base,
        "basemapUrl": settings.basemap_url,
        "pointZoom": settings.tile_min_zoom_points,
        "tilesArchive": _archive_url(settings.map_tiles_archive_url, base),
        "languages": list(languages()),
    }


def _archive_url(url: str | None, base: str) -> str | None:
    """The archive's URL as the page's script needs it: absolute (a path is on this server)."""
    if url is None or "://" in url:
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


async def map_page(request: Request) -> Response:
    """The web map page."""
    settings: Settings = request.app.state.settings
    template = resources.files("gis_api").joinpath("static/map.html").read_text(encoding="utf-8")
    config = orjson.dumps(page_config(settings, base_url(request, settings))).decode()
    # Inlined in a <script> block: "</" must not close it.
    page = template.replace("__CONFIG__", config.replace("</", "<\\/"))
    page = page.replace("__BASE__", html.escape(base_url(request, settings)))
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


async def map_options(request: Request) -> Response:
    """Choices for the filters, and the trees' extent to open the map on.

    The filters are those of the catalogue's trees layer (``map_filters``): each one's choices
    are listed under its ``options_key``, and ``filters`` says which select fills from which key.
    """
    async with request.app.state.pool.connection() as conn:
        doc: dict[str, Any] = {
            "filters": [_filter_doc(f) for f in TREES.map_filters],
            "conditions": [c.value for c in Condition],
        }
        for definition in TREES.map_filters:
            doc[definition.options_key] = await _choices(conn, definition)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT ARRAY[ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)] AS bounds"
            " FROM (SELECT ST_Extent(geom) AS b FROM smarttrees.communes) e"
        )
        row = await cur.fetchone()
        bounds = row["bounds"] if row and row["bounds"] and row["bounds"][0] is not None else None
        if bounds is None:
            bounds = await _trees_bounds(conn)
    doc["bounds"] = bounds
    return _json(doc, max_age=60)


def _filter_doc(definition: MapFilter) -> dict[str, Any]:
    """How the page builds one filter's select: its parameter, choices key and value column."""
    table = definition.table
    return {
        "param": definition.param,
        "field": definition.field,
        "options": definition.options_key,
        "value": table.value if table else None,
        "labels": [alias for alias, _ in table.columns] if table else [],
        "bbox": bool(table and table.bbox),
    }


async def _choices(conn: Any, definition: MapFilter) -> list[Any]:
    """A filter's choices: its fixed values, or its reference table's rows in order."""
    table = definition.table
    if table is None:
        return list(definition.values)
    columns: list[sql.Composable] = [sql.Identifier(table.value)]
    columns += [
        sql.SQL("{} AS {}").format(sql.Identifier(column), sql.Identifier(alias))
        for alias, column in table.columns
    ]
    if table.bbox:
        columns.append(
            sql.SQL("ARRAY[ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom)] AS bbox")
        )
    query = sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
        sql.SQL(", ").join(columns),
        sql.Identifier("smarttrees", table.table),
        sql.SQL(", ").join(sql.Identifier(c) for c in table.order),
    )
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(query)
    return list(await cur.fetchall())


async def _trees_bounds(conn: Any) -> list[float] | None:
    # Only used when there are no communes (a bare database): the trees are few then.
    cur = await conn.execute(
        "SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)"
        " FROM (SELECT ST_Extent(geom) AS b FROM smarttrees.trees) e"
    )
    row = await cur.fetchone()
    return list(row) if row and row[0] is not None else None


async def search_tree(request: Request) -> Response:
    """A tree by its exact code (case and surrounding spaces ignored): id, code and position."""
    code = (request.query_params.get("code") or "").strip()
    if not code:
        raise InvalidParameter("give a tree code: /map/search.json?code=...")
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidParameter(f"a tree code has at most {MAX_CODE_LENGTH} characters")
    async with request.app.state.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT id, tree_code, category, ST_X(geom) AS lon, ST_Y(geom) AS lat"
            " FROM smarttrees.trees WHERE tree_code = ANY(%s) ORDER BY tree_code = %s DESC LIMIT 1",
            [[code, code.upper()], code],
        )
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"no tree has the code {code!r}")
    return _json(row)


async def tree_history(request: Request) -> Response:
    """The changes recorded for one tree, oldest first (who made them is not published)."""
    text = request.path_params["tree_id"]
    if not _TREE_ID.fullmatch(text):  # as /collections/trees/items/{id}: names no tree
        raise NotFound(f"no tree with id {text!r}")
    tree_id = int(text)
    async with request.app.state.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT change, changed_at, source, changes FROM smarttrees.tree_history"
            " WHERE tree_id = %s ORDER BY changed_at, id",
            [tree_id],
        )
        rows = await cur.fetchall()
        await cur.execute(_CHECKS, [tree_id])
        checks = await cur.fetchall()
        await cur.execute("SELECT tree_code FROM smarttrees.trees WHERE id = %s", [tree_id])
        tree = await cur.fetchone()
    if tree is None and not rows:
        raise NotFound(f"no tree with id {tree_id}")
    return _json(
        {
            "tree_id": tree_id,
            "tree_code": tree["tree_code"] if tree else None,
            "exists": tree is not None,
            "history": [_history_row(r) for r in rows],
            "checks": [_check_row(r) for r in checks],
        }
    )


# A tree's checks (care inspections), newest first: what was found, never who found it, the
# note (free text may name people) or the device; photos by count (they are served to staff).
_CHECKS = (
    "SELECT inspected_on, condition, dbh_cm, height_m, defects, risk,"
    " cardinality(photos) AS photos FROM smarttrees.care_inspections"
    " WHERE tree_id = %s ORDER BY inspected_on DESC, id DESC LIMIT 20"
)


def _check_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "inspected_on": row["inspected_on"].isoformat()}


def _history_row(row: dict[str, Any]) -> dict[str, Any]:
    changed_at: datetime = row["changed_at"]
    return {
        "change": row["change"],
        "changed_at": changed_at.isoformat(),
        "source": row["source"],
        "changes": row["changes"],
    }


def routes() -> list[BaseRoute]:
    """The web map's routes."""
    static = StaticFiles(packages=[("gis_api", "static")])
    return [
        Route("/map", map_page, methods=["GET"], name="map"),
        Route("/map/options.json", map_options, methods=["GET"], name="map_options"),
        Route("/map/search.json", search_tree, methods=["GET"], name="map_search"),
        Route("/api/trees/{tree_id}/history", tree_history, methods=["GET"], name="tree_history"),
        Mount("/map/static", static, name="map_static"),
    ]
