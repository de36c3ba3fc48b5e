"""``GET /field/team``: the signed-in account's team, its area and the items issued to it.

The field app keeps the answer on the phone: each item as its trace (the document of
``/api/trace/{code}``, without the devices' ids), so a code scanned without signal shows the item,
its state and the events allowed next, exactly as a look-up with signal would. Teams and issues
are :mod:`smarttrees.teams`.

A team may hold tens of thousands of items, so they come a page at a time, in a few statements
whatever the page's size (:func:`barcodes.trace.traces`): ``limit`` items (``DEFAULT_LIMIT``, at
most ``MAX_LIMIT``) after the keyset ``after``; the answer's ``next`` is the ``after`` of the next
page, ``null`` on the last.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from barcodes.trace import traces
from gis_api.auth import require_role
from gis_api.errors import InvalidParameter
from gis_api.replicas import read_pool

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
CURSOR_PATTERN = r"^(seedling_lot|timber_log|transport_load|tree):[0-9]{1,18}$"
_PARAMS = ("after", "limit")


def _page(request: Request) -> tuple[tuple[str, int] | None, int]:
    """The request's keyset (item type, item id) or ``None``, and its page size.

    Raises
    ------
    InvalidParameter
        An unknown parameter, a malformed ``after``, a ``limit`` not in 1..``MAX_LIMIT``.

    """
    unknown = sorted(set(request.query_params) - set(_PARAMS))
    if unknown:
        raise InvalidParameter(f"unknown parameter {', '.join(unknown)}: /field/team takes "
                               f"{' and '.join(_PARAMS)}")
    after = None
    text = request.query_params.get("after")
    if text is not None:
        if not re.fullmatch(CURSOR_PATTERN, text):
            raise InvalidParameter(f"after: the next of an earlier page (type:id), got {text!r}")
        item_type, item_id = text.split(":")
        after = (item_type, int(item_id))
    text = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidParameter(f"limit: a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return after, int(text)


async def team(request: Request) -> Response:
    """The account's team (``null`` when it has none) and a page of its items' traces."""
    who = await require_role(request, "field")
    after, limit = _page(request)
    async with read_pool(request).connection() as conn:
        cur = await conn.execute(
            "SELECT t.id, t.name, ST_XMin(t.area), ST_YMin(t.area), ST_XMax(t.area), "
            "  ST_YMax(t.area) "
            "FROM smarttrees.users u JOIN smarttrees.teams t ON t.id = u.team_id "
            "WHERE u.id = %s",
            [who.user_id],
        )
        row = await cur.fetchone()
        doc: dict[str, Any] = {"team": None, "items": [], "next": None}
        if row is not None:
            bbox = [row[2], row[3], row[4], row[5]] if row[2] is not None else None
            doc["team"] = {"name": row[1], "bbox": bbox}
            # The primary key's order (team, type, id): the page is an index range scan that
            # stops at the limit, then only its items are joined to their tags.
            cur = await conn.execute(
                "WITH page AS MATERIALIZED ("
                "  SELECT item_type, item_id FROM smarttrees.team_items "
                "  WHERE team_id = %s AND (item_type, item_id) > (%s, %s) "
                "  ORDER BY team_id, item_type, item_id LIMIT %s) "
                "SELECT g.code, p.item_type, p.item_id FROM page p "
                "JOIN smarttrees.tags g ON g.item_type = p.item_type AND g.item_id = p.item_id "
                "ORDER BY p.item_type, p.item_id",
                [row[0], *(after or ("", -1)), limit + 1],
            )
            tagged = [(r[0], r[1], int(r[2])) for r in await cur.fetchall()]
            if len(tagged) > limit:
                tagged = tagged[:limit]
                doc["next"] = f"{tagged[-1][1]}:{tagged[-1][2]}"
            doc["items"] = await traces(conn, tagged)
            for found in doc["items"]:
                for event in found["events"]:
                    event.pop("device_id", None)  # other phones' ids are no team's business
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
                "summary": "The account's field team, its area and a page of the items issued "
                "to it (as traces), for the phone to keep; `next` is the `after` of the next page",
                "tags": ["field app"],
                "security": [{"bearerAuth": []}],
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "description": "the `next` of the page before (item type:item id)",
                        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "items in the page",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_LIMIT,
                            "default": DEFAULT_LIMIT,
                        },
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the team, or null, a page of its items and the next "
                        "page's `after` (null on the last)",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **{str(s): {"description": "error", "content": error} for s in (400, 401, 403)},
                },
            }
        }
    }
