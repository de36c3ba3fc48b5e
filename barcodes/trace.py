"""Trace an item: every custody event in order, as JSON or as a GeoJSON line of where it went."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from psycopg import AsyncConnection

from barcodes.codes import Code, ItemType
from barcodes.events import utc_text

# Each item type's document and origin, for many items of that type at once (ids bound as an
# array): one statement per type, however many items are traced.
_ITEM_SQL = {
    ItemType.SEEDLING_LOT: (
        "SELECT l.id, jsonb_build_object('lot_code', l.lot_code, 'status', l.status, "
        "  'quantity', l.quantity, 'quantity_dispatched', l.quantity_dispatched, "
        "  'quantity_planted', l.quantity_planted, 'species', s.scientific_name, "
        "  'nursery', n.name, 'seed_source', l.seed_source), "
        "  ST_X(n.geom), ST_Y(n.geom) "
        "FROM smarttrees.seedling_lots l JOIN smarttrees.nurseries n ON n.id = l.nursery_id "
        "LEFT JOIN smarttrees.species s ON s.id = l.species_id WHERE l.id = ANY(%s)"
    ),
    ItemType.TIMBER_LOG: (
        "SELECT g.id, jsonb_build_object('log_code', g.log_code, 'status', g.status, "
        "  'volume_m3', g.volume_m3, 'species', s.scientific_name, 'stand_code', st.stand_code, "
        "  'felled_on', g.felled_on, 'load_code', lt.code), "
        "  ST_X(ST_PointOnSurface(st.geom)), ST_Y(ST_PointOnSurface(st.geom)) "
        "FROM smarttrees.timber_logs g JOIN smarttrees.stands st ON st.id = g.stand_id "
        "LEFT JOIN smarttrees.species s ON s.id = g.species_id "
        "LEFT JOIN smarttrees.tags lt "
        "  ON lt.item_type = 'transport_load' AND lt.item_id = g.load_id "
        "WHERE g.id = ANY(%s)"
    ),
    ItemType.TRANSPORT_LOAD: (
        "SELECT lo.id, jsonb_build_object('load_code', lo.load_code, 'fpl_number', lo.fpl_number, "
        "  'vehicle_plate', lo.vehicle_plate, 'destination', lo.destination, "
        "  'logs', (SELECT coalesce(jsonb_agg(t.code ORDER BY t.code), '[]') "
        "           FROM smarttrees.timber_logs g JOIN smarttrees.tags t "
        "           ON t.item_type = 'timber_log' AND t.item_id = g.id WHERE g.load_id = lo.id)), "
        "  NULL::float8, NULL::float8 "
        "FROM smarttrees.transport_loads lo WHERE lo.id = ANY(%s)"
    ),
    ItemType.TREE: (
        "SELECT t.id, jsonb_build_object('tree_code', t.tree_code, 'category', t.category, "
        "  'species', s.scientific_name, 'commune_code', t.commune_code), "
        "  ST_X(t.geom), ST_Y(t.geom) "
        "FROM smarttrees.trees t LEFT JOIN smarttrees.species s ON s.id = t.species_id "
        "WHERE t.id = ANY(%s)"
    ),
}


async def trace(conn: AsyncConnection, code: Code) -> dict[str, Any] | None:
    """Every event of an item in order, with the item and its origin; ``None`` if never tagged.

    The origin is where the item's story starts: a lot's nursery, a log's stand (a point on its
    surface), a tree's own position; transport loads have none.
    """
    cur = await conn.execute(
        "SELECT code, item_type, item_id FROM smarttrees.tags WHERE code = %s", [str(code)]
    )
    tag = await cur.fetchone()
    if tag is None:
        return None
    (found,) = await traces(conn, [(tag[0], tag[1], int(tag[2]))])
    return found


async def traces(
    conn: AsyncConnection, tagged: Sequence[tuple[str, str, int]]
) -> list[dict[str, Any]]:
    """The traces of many tagged items, in the order given, in a few statements.

    ``tagged`` holds (code, item type, item id) triples; each trace is what :func:`trace` answers
    for the code. One statement per item type present and one for all the events: the number of
    statements does not grow with the number of items.
    """
    ids: dict[ItemType, list[int]] = {}
    for _, item_type, item_id in tagged:
        ids.setdefault(ItemType(item_type), []).append(item_id)
    items: dict[tuple[str, int], tuple[dict[str, Any], list[float] | None]] = {}
    for item_type, type_ids in ids.items():
        cur = await conn.execute(_ITEM_SQL[item_type], [type_ids])
        for r in await cur.fetchall():
            items[(item_type.value, r[0])] = (r[1], [r[2], r[3]] if r[2] is not None else None)
    events: dict[tuple[str, int], list[dict[str, Any]]] = {}
    # LATERAL: each item's events read from the (item_type, item_id, occurred_at) index, in
    # order. A plain join is planned as a hash of every scan of the province (the array's rows
    # are not estimated), 0.8 s for a page of 2,000 items of 223,000 scans.
    cur = await conn.execute(
        "SELECT i.item_type, i.item_id, e.id, e.event_type, e.occurred_at, e.device_id, "
        "  e.quantity, e.volume_m3, e.details::text, ST_X(e.geom), ST_Y(e.geom) "
        "FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY AS i(item_type, item_id, n) "
        "CROSS JOIN LATERAL (SELECT * FROM smarttrees.scan_events s "
        "  WHERE s.item_type = i.item_type AND s.item_id = i.item_id "
        "  ORDER BY s.occurred_at, s.id) e "
        "ORDER BY i.n, e.occurred_at, e.id",
        [[t[1] for t in tagged], [t[2] for t in tagged]],
    )
    for r in await cur.fetchall():
        events.setdefault((r[0], r[1]), []).append(_event_doc(r[2:]))
    answer = []
    for code, item_type, item_id in tagged:
        item, origin = items.get((item_type, item_id), ({}, None))
        answer.append(
            {
                "code": code,
                "item_type": item_type,
                "item": item,
                "origin": origin,
                "events": events.get((item_type, item_id), []),
            }
        )
    return answer


def _event_doc(r: Sequence[Any]) -> dict[str, Any]:
    """A trace's event from its row: id, type, time, device, quantity, volume, details, x, y.

    The details come as text, read by orjson: psycopg's own jsonb loader (the standard library's
    json) was half the time of a team's page.
    """
    details = orjson.loads(r[6])
    return {
        "event_id": r[0],
        "event_type": r[1],
        "occurred_at": utc_text(r[2]),
        "device_id": r[3],
        "quantity": r[4],
        "volume_m3": float(r[5]) if r[5] is not None else None,
        "status": details.get("status_after"),
        "details": {k: v for k, v in details.items() if k != "status_after"},
        "location": [r[7], r[8]] if r[7] is not None else None,
    }


def trace_geojson(result: dict[str, Any]) -> dict[str, Any]:
    """A trace as one GeoJSON Feature: the line from the origin through every scan location.

    With a single known position the geometry is a Point; with none it is ``null``.
    """
    path: list[list[float]] = []
    for position in [result["origin"]] + [e["location"] for e in result["events"]]:
        if position is not None and (not path or path[-1] != position):
            path.append(position)
    geometry: dict[str, Any] | None = None
    if len(path) >= 2:
        geometry = {"type": "LineString", "coordinates": path}
    elif path:
        geometry = {"type": "Point", "coordinates": path[0]}
    return {
        "type": "Feature",
        "id": result["code"],
        "geometry": geometry,
        "properties": {
            "code": result["code"],
            "item_type": result["item_type"],
            "status": result["item"].get("status"),
            "events": [
                {k: e[k] for k in ("event_type", "occurred_at", "quantity", "status")}
                for e in result["events"]
            ],
        },
    }
