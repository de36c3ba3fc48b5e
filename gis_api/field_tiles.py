"""The field app's offline map: which vector tiles of an area to keep on the phone, and their size.

``GET /field/tiles/plan?bbox=w,s,e,n&minzoom=&maxzoom=`` answers, before anything is downloaded,
the tiles the phone needs for that area and zoom range, how many and about how many bytes. The
plan is the tiles export's (:func:`gis_api.tiles.coverage.coverage`): only the tiles where some
tree, stand or commune may be; an address it leaves out is known to be empty, and the map draws
nothing there offline as it would online. Each collection is planned up to its source's highest
zoom in the app's map (:data:`SOURCE_MAX_ZOOM`; the map overzooms above it).

The size is an estimate: a sample of the planned tiles is rendered by the tile routes' own code,
and each collection's mean tile size is multiplied by its tile count. An area needing more than
``SMARTTREES_FIELD_OFFLINE_MAX_TILES`` tiles is refused with a 400 that says how many it needs,
so a phone never starts a download it cannot finish (nor the server a plan it cannot afford:
areas too large to plan are refused from their tile addresses alone, before any query).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import Response

from gis_api import items_params
from gis_api.auth import require_role
from gis_api.errors import InvalidParameter
from gis_api.replicas import read_pool
from gis_api.tiles import render
from gis_api.tiles.coverage import BUFFER_REACH, Bounds, ZoomCoverage, coverage, tile_range
from gis_api.tiles.grid import TileAddress
from gis_api.tiles.layers import tile_collections
from gis_api.tiles.params import TreeFilters
from smarttrees.settings import Settings

# The app's map sources and the highest zoom each is requested at (the web map's too).
SOURCE_MAX_ZOOM = {"trees": 16, "stands": 15, "communes": 14}
MAX_ZOOM = max(SOURCE_MAX_ZOOM.values())
SAMPLE = 12  # tiles rendered for the size estimate
PLAN_ADDRESSES_FACTOR = 20  # addresses examined at most, in multiples of the tile cap
TILE_URL = "collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}"


def parse_bbox(text: str | None) -> Bounds:
    """``bbox=west,south,east,north`` in degrees, within the extent the tiles cover.

    Parsed as the items' ``bbox`` is; :class:`InvalidParameter` says what is wrong.
    """
    if not text:
        raise InvalidParameter("bbox is required: west,south,east,north in degrees")
    bounds = Bounds(*items_params.parse_bbox(text))
    if not (-180 <= bounds.west < bounds.east <= 180 and -85 <= bounds.south < bounds.north <= 85):
        raise InvalidParameter(
            "bbox: west < east within -180..180 and south < north within -85..85, "
            f"got {text!r}"
        )
    return bounds


def parse_zooms(minzoom: str | None, maxzoom: str | None) -> tuple[int, int]:
    """``minzoom`` and ``maxzoom`` within 0..:data:`MAX_ZOOM`, the first not above the second."""
    try:
        low, high = int(minzoom or "0"), int(maxzoom or str(MAX_ZOOM))
    except ValueError:
        raise InvalidParameter(
            f"minzoom and maxzoom must be whole numbers, got {minzoom!r} and {maxzoom!r}"
        ) from None
    if not 0 <= low <= high <= MAX_ZOOM:
        raise InvalidParameter(
            f"zooms must satisfy 0 <= minzoom <= maxzoom <= {MAX_ZOOM} (the map shows the trees "
            f"at {MAX_ZOOM} when zoomed in further), got minzoom {low} maxzoom {high}"
        )
    return low, high


def addresses(bounds: Bounds, minzoom: int, maxzoom: int) -> int:
    """Every tile address of the area, per collection up to its source's zoom (none skipped)."""
    total = 0
    for z in range(minzoom, maxzoom + 1):
        r = tile_range(bounds, z, BUFFER_REACH)
        count = (r.x1 - r.x0 + 1) * (r.y1 - r.y0 + 1)
        total += count * sum(1 for top in SOURCE_MAX_ZOOM.values() if z <= top)
    return total


def planned(zooms: Sequence[ZoomCoverage]) -> list[tuple[str, TileAddress]]:
    """The (collection, tile) pairs some feature may be in, by zoom, then row and column."""
    found = []
    for zoom in zooms:
        r = zoom.range
        for cid, mask in zoom.masks.items():
            if r.z > SOURCE_MAX_ZOOM[cid]:
                continue
            for row, col in zip(*mask.nonzero(), strict=True):
                found.append((cid, TileAddress(r.z, int(row) + r.y0, int(col) + r.x0)))
    found.sort(key=lambda pair: (pair[1].z, pair[1].y, pair[1].x, pair[0]))
    return found


def too_many(needed: int, cap: int, minzoom: int, maxzoom: int) -> InvalidParameter:
    """The refusal of an area that needs more tiles than the cap, with what to change."""
    return InvalidParameter(
        f"the area at zooms {minzoom}-{maxzoom} needs {needed} tiles, more than the "
        f"{cap} a phone keeps (SMARTTREES_FIELD_OFFLINE_MAX_TILES): choose a smaller area or "
        "a lower maxzoom"
    )


async def plan(request: Request) -> Response:
    """The tiles of an area and zoom range the phone keeps offline, their count and size."""
    await require_role(request, "field")
    settings: Settings = request.app.state.settings
    query = request.query_params
    bounds = parse_bbox(query.get("bbox"))
    minzoom, maxzoom = parse_zooms(query.get("minzoom"), query.get("maxzoom"))
    cap = settings.field_offline_max_tiles
    every = addresses(bounds, minzoom, maxzoom)
    if every > cap * PLAN_ADDRESSES_FACTOR:  # not worth a query: far too many whatever is there
        raise too_many(every, cap, minzoom, maxzoom)
    collections = tile_collections(settings)
    wanted = [collections[cid] for cid in SOURCE_MAX_ZOOM]
    async with read_pool(request).connection() as conn:
        tiles = planned(await coverage(conn, wanted, bounds, minzoom, maxzoom))
        if len(tiles) > cap:
            raise too_many(len(tiles), cap, minzoom, maxzoom)
        size = await estimate_bytes(conn, tiles, settings)
    return Response(
        orjson.dumps({
            "bbox": list(bounds),
            "minzoom": minzoom,
            "maxzoom": maxzoom,
            "tiles": len(tiles),
            "bytes": size,
            "max_tiles": cap,
            "urls": [
                TILE_URL.format(collection=cid, z=t.z, y=t.y, x=t.x) for cid, t in tiles
            ],
        }),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def estimate_bytes(
    conn: AsyncConnection, tiles: list[tuple[str, TileAddress]], settings: Settings
) -> int:
    """About how many bytes ``tiles`` make on the phone.

    A sample is rendered; each collection's mean tile size times its count (a collection with no
    tile in the sample counts at the sample's overall mean).
    """
    if not tiles:
        return 0
    step = max(1, len(tiles) // SAMPLE)
    sample = tiles[::step][:SAMPLE]
    collections = tile_collections(settings)
    sizes: dict[str, list[int]] = {}
    async with conn.transaction():  # for the SET LOCAL of the renders
        version = await render.trees_version(conn)
        current = await render.grid_version(conn) == version
        for cid, tile in sample:
            collection = collections[cid]
            if collection.versioned:
                body = await render.render_trees(conn, tile, TreeFilters(), settings, current)
            else:
                body = await render.render_features(conn, collection, tile, settings)
            sizes.setdefault(cid, []).append(len(body))
    overall = sum(map(sum, sizes.values())) / sum(map(len, sizes.values()))
    counts: dict[str, int] = {}
    for cid, _ in tiles:
        counts[cid] = counts.get(cid, 0) + 1
    return round(
        sum(
            count * (sum(sizes[cid]) / len(sizes[cid]) if cid in sizes else overall)
            for cid, count in counts.items()
        )
    )


def openapi_paths() -> dict[str, Any]:
    """The plan's OpenAPI 3.0 description."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}
    number = {"type": "integer", "minimum": 0, "maximum": MAX_ZOOM}
    return {
        "/field/tiles/plan": {
            "get": {
                "operationId": "getFieldTilesPlan",
                "summary": "The vector tiles of an area the field app keeps offline, their count "
                "and estimated size (400 above SMARTTREES_FIELD_OFFLINE_MAX_TILES)",
                "tags": ["field app"],
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {
                        "name": "bbox",
                        "in": "query",
                        "required": True,
                        "description": "west,south,east,north in degrees",
                        "schema": {"type": "string", "example": "105.80,21.55,105.84,21.59"},
                    },
                    {"name": "minzoom", "in": "query", "schema": number},
                    {"name": "maxzoom", "in": "query", "schema": number},
                ],
                "responses": {
                    "200": {
                        "description": "the plan",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **{
                        str(s): {"description": "error", "content": error}
                        for s in (400, 401, 403)
                    },
                },
            }
        }
    }
