"""``GET /field/team``: the signed-in account's team, its area and the items issued to it.

The field app keeps the answer on the phone: each item as its trace (the document of
``/api/trace/{code}``, without the devices' ids), so a code scanned without signal shows the item,
its state and the events allowed next, exactly as a look-up with signal would. Teams and issues
are :mod:`smarttrees.teams`; the most recently issued :data:`MAX_ITEMS` items are sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from barcodes.codes import parse
from barcodes.trace import trace
from gis_api.auth import require_role
from gis_api.replicas import read_pool

MAX_ITEMS = 1000


async def team(request: Request) -> Response:
    """The account's team (``null`` when it has none) and its items' traces."""
    who = await require_role(request, "field")
    async with read_pool(request).connection() as conn:
        cur = await conn.execute(
            "SELECT t.id, t.name, ST_XMin(t.area), ST_YMin(t.area), ST_XMax(t.area), "
            "  ST_YMax(t.area) "
            "FROM smarttrees.users u JOIN smarttrees.teams t ON t.id = u.team_id "
            "WHERE u.id = %s",
            [who.user_id],
        )
        row = await cur.fetchone()
        doc: dict[str, Any] = {"team": None, "items": [], "truncated": False}
        if row is not None:
            bbox = [row[2], row[3], row[4], row[5]] if row[2] is not None else None
            doc["team"] = {"name": row[1], "bbox": bbox}
            cur = await conn.execute(
                "SELECT g.code FROM smarttrees.team_items i JOIN smarttrees.tags g "
                "  ON g.item_type = i.item_type AND g.item_id = i.item_id "
                "WHERE i.team_id = %s ORDER BY i.issued_at DESC, g.code LIMIT %s",
                [row[0], MAX_ITEMS + 1],
            )
            codes = [r[0] for r in await cur.fetchall()]
            doc["truncated"] = len(codes) > MAX_ITEMS
            for code in codes[:MAX_ITEMS]:
                found = await trace(conn, parse(code))
                if found is not None:
                    for event in found["events"]:
                        event.pop("device_id", None)  # other phones' ids are no team's business
                    doc["items"].append(found)
    return Response(
        orjson.dumps(doc), media_type="application/json", headers={"Cache-Control": "no-store"}
    )


def openapi_paths() -> dict[str, Any]:
    """The route's OpenAPI 3.0 description."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/smarttreesException"}}}
    return {
        "/field/team": {
            "get": {
                "operationId": "getFieldTeam",
                "summary": "The account's field team, its area and the items issued to it (as "
                "traces), for the phone to keep",
                "tags": ["field app"],
                "security": [{"bearerAuth": []}],
                "responses": {
                    "200": {
                        "description": "the team, or null, and its items",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **{str(s): {"description": "error", "content": error} for s in (401, 403)},
                },
            }
        }
    }
