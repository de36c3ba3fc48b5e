"""Storm response: a storm event, the damage field teams record under it, orders by priority.

Damage records come from phones, often offline, in batches: a batch is one transaction of a few
set-based statements (``jsonb_to_recordset``), all or nothing. A record already stored under
the same ``(device_id, client_event_id)`` is answered as before and not stored again; the same
key sent with other content is a conflict (rule ``client_event_id_reused``).

Each record gets a priority, most urgent first:

1. a hazard to people;
2. blocking a road;
3. fallen or uprooted;
4. broken or leaning.

:func:`orders_from_damage` turns the records without an order into work orders in that order:
a removal for a fallen or uprooted tree, pruning for a broken one, staking for a leaning one.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from psycopg import AsyncConnection, sql
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smarttrees.accounts import Principal
from smarttrees.care.errors import CareError
from smarttrees.care.orders import OrderRequest, insert_order
from smarttrees.territory import sql_inside

MAX_BATCH = 5_000
CLOCK_SKEW = timedelta(minutes=5)
Damage = Literal["fallen", "broken", "leaning", "uprooted"]
WORK_FOR: dict[str, str] = {
    "fallen": "removal", "uprooted": "removal", "broken": "pruning", "leaning": "staking",
}


class Storm(BaseModel):
    """A storm event. Example: ``Storm(name="Yagi", started_on="2024-09-07")``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    started_on: date
    ended_on: date | None = None
    area: dict[str, Any] | None = Field(None, description="GeoJSON (Multi)Polygon, EPSG:4326")
    note: str | None = Field(None, max_length=4000)

    @model_validator(mode="after")
    def _dates(self) -> Storm:
        if self.ended_on is not None and self.ended_on < self.started_on:
            raise ValueError("ended_on: before started_on")
        if self.area is not None and self.area.get("type") not in ("Polygon", "MultiPolygon"):
            raise ValueError("area: a GeoJSON Polygon or MultiPolygon")
        return self


class Point(BaseModel):
    """A GeoJSON Point in longitude, latitude."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["Point"]
    coordinates: tuple[float, float]

    @model_validator(mode="after")
    def _range(self) -> Point:
        lon, lat = self.coordinates
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError(f"coordinates: {list(self.coordinates)} is not a lon, lat")
        return self


class DamageRecord(BaseModel):
    """One damaged tree, as a phone records it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    device_id: str = Field(min_length=1, max_length=200)
    client_event_id: str = Field(min_length=1, max_length=200)
    damage: Damage
    blocks_road: bool = False
    hazard_to_people: bool = False
    observed_at: datetime
    tree_code: str | None = Field(None, max_length=64)
    location: Point | None = None
    note: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _where(self) -> DamageRecord:
        if self.tree_code is None and self.location is None:
            raise ValueError("give a location or a tree_code")
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at: needs a time zone (e.g. +07:00 or Z)")
        if self.observed_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(f"observed_at: {self.observed_at.isoformat()} is in the future")
        return self

    @property
    def priority(self) -> int:
        """1 (a hazard to people) … 4 (broken or leaning); see the module's docstring."""
        if self.hazard_to_people:
            return 1
        if self.blocks_road:
            return 2
        return 3 if self.damage in ("fallen", "uprooted") else 4


def _messages(exc: ValidationError, prefix: str) -> list[str]:
    return [f"{prefix}{'.'.join(map(str, e['loc'])) or 'record'}: "
            f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]


def parse_storm(doc: Any) -> Storm:
    """A checked storm event; ``invalid_storm`` naming each bad field."""
    try:
        return Storm.model_validate(doc)
    except ValidationError as exc:
        raise CareError("invalid_storm", "; ".join(_messages(exc, ""))) from None


def parse_damage(items: list[Any]) -> list[DamageRecord]:
    """Checked damage records; ``invalid_damage`` naming each by position and field."""
    if not items:
        raise CareError("invalid_damage", "no damage record to store")
    if len(items) > MAX_BATCH:
        raise CareError("invalid_damage", f"{len(items):,} records: send at most {MAX_BATCH:,}")
    records, problems = [], []
    for i, item in enumerate(items):
        try:
            records.append(DamageRecord.model_validate(item))
        except ValidationError as exc:
            problems += _messages(exc, f"records[{i}].")
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise CareError("invalid_damage", "nothing stored: " + "; ".join(problems[:10]) + more)
    return records


async def create_storm(conn: AsyncConnection, storm: Storm, who: Principal) -> int:
    """Store a storm event; its id (``storm_exists`` when the name is taken)."""
    area = json.dumps(storm.area) if storm.area else None
    async with conn.transaction():
        cur = await conn.execute(
            "INSERT INTO smarttrees.care_storms (name, started_on, ended_on, area, note, "
            "created_by) VALUES (%s, %s, %s, ST_Multi(ST_SetSRID(ST_GeomFromGeoJSON(%s), 4326)), "
            "%s, %s) ON CONFLICT (name) DO NOTHING RETURNING id",
            [storm.name, storm.started_on, storm.ended_on, area, storm.note, who.username])
        row = await cur.fetchone()
    if row is None:
        raise CareError("storm_exists", f"name: a storm named {storm.name!r} already exists")
    return int(row[0])


async def list_storms(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every storm event, newest first, with its number of damage records."""
    cur = await conn.execute(
        "SELECT s.id, s.name, s.started_on, s.ended_on, s.note, "
        "(SELECT count(*) FROM smarttrees.care_damage d WHERE d.storm_id = s.id) "
        "FROM smarttrees.care_storms s ORDER BY s.started_on DESC, s.id DESC")
    return [{"id": r[0], "name": r[1], "started_on": r[2].isoformat(),
             "ended_on": r[3].isoformat() if r[3] else None, "note": r[4], "records": r[5]}
            for r in await cur.fetchall()]


async def _storm_exists(conn: AsyncConnection, storm_id: int) -> None:
    cur = await conn.execute("SELECT 1 FROM smarttrees.care_storms WHERE id = %s", [storm_id])
    if await cur.fetchone() is None:
        raise CareError("unknown_storm", f"no storm event {storm_id}")


_RESOLVE = """
SELECT r.i, r.tree_code, t.id, t.condition,
       coalesce(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), t.geom) AS geom
FROM jsonb_to_recordset(%s::jsonb) AS r(i int, tree_code text, lon float8, lat float8)
LEFT JOIN smarttrees.trees t ON t.tree_code = r.tree_code
ORDER BY r.i
"""

_STORED = """
SELECT d.device_id, d.client_event_id, d.id, d.storm_id, d.damage, t.tree_code, d.priority
FROM jsonb_to_recordset(%s::jsonb) AS k(device_id text, client_event_id text)
JOIN smarttrees.care_damage d USING (device_id, client_event_id)
LEFT JOIN smarttrees.trees t ON t.id = d.tree_id
"""

_INSERT = """
INSERT INTO smarttrees.care_damage (
    storm_id, tree_id, damage, blocks_road, hazard_to_people, priority, note, observed_at,
    device_id, client_event_id, recorded_by, commune_code, geom)
SELECT %(storm)s, t.id, r.damage, r.blocks_road, r.hazard_to_people, r.priority, r.note,
       r.observed_at, r.device_id, r.client_event_id, %(actor)s,
       coalesce(smarttrees.commune_at(g.geom), t.commune_code), g.geom
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    i int, tree_code text, damage text, blocks_road boolean, hazard_to_people boolean,
    priority smallint, note text, observed_at timestamptz, device_id text,
    client_event_id text, lon float8, lat float8)
LEFT JOIN smarttrees.trees t ON t.tree_code = r.tree_code
CROSS JOIN LATERAL (SELECT coalesce(ST_SetSRID(ST_MakePoint(r.lon, r.lat), 4326), t.geom) AS geom) g
ORDER BY r.i
ON CONFLICT (device_id, client_event_id) DO NOTHING
RETURNING device_id, client_event_id, id, storm_id, damage, NULL::text, priority
"""

# The records whose position lies outside the territory (smarttrees.territory, its one home).
_OUTSIDE = sql.SQL(
    "SELECT r.i FROM jsonb_to_recordset(%s::jsonb) AS r(i int, lon float8, lat float8) "
    "WHERE NOT {} ORDER BY r.i"
).format(sql_inside(sql.SQL("r.lon"), sql.SQL("r.lat")))


def _row(i: int, r: DamageRecord) -> dict[str, Any]:
    lon, lat = r.location.coordinates if r.location else (None, None)
    return {"i": i, "tree_code": r.tree_code, "damage": r.damage, "blocks_road": r.blocks_road,
            "hazard_to_people": r.hazard_to_people, "priority": r.priority, "note": r.note,
            "observed_at": r.observed_at.isoformat(), "device_id": r.device_id,
            "client_event_id": r.client_event_id, "lon": lon, "lat": lat}


async def _check_trees(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    named = [r for r in rows if r["tree_code"] is not None]
    if not named:
        return
    cur = await conn.execute(_RESOLVE, [json.dumps(named)])
    unknown = [f"records[{r[0]}].tree_code: no tree {r[1]}" for r in await cur.fetchall()
               if r[2] is None]
    if unknown:
        raise CareError("unknown_tree", "nothing stored: " + "; ".join(unknown[:10]))


async def _check_inside(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    placed = [r for r in rows if r["lon"] is not None]
    if not placed:
        return
    cur = await conn.execute(_OUTSIDE, [json.dumps(placed)])
    outside = [f"records[{r[0]}].location: outside the territory" for r in await cur.fetchall()]
    if outside:
        raise CareError("outside_province", "nothing stored: " + "; ".join(outside[:10]))


def _answer(r: tuple[Any, ...]) -> dict[str, Any]:
    return {"damage_id": r[2], "device_id": r[0], "client_event_id": r[1], "storm_id": r[3],
            "damage": r[4], "priority": r[6]}


async def record_damage(
    conn: AsyncConnection, storm_id: int, records: list[DamageRecord], actor: str
) -> list[dict[str, Any]]:
    """Store a batch of damage records under a storm, all or nothing; one answer each, in order.

    Raises
    ------
    CareError
        ``unknown_storm`` (404), ``unknown_tree`` (404), ``outside_province`` (422), or
        ``client_event_id_reused`` (409: a stored key sent with other content).

    """
    rows = [_row(i, r) for i, r in enumerate(records)]
    async with conn.transaction():
        await _storm_exists(conn, storm_id)
        await _check_trees(conn, rows)
        await _check_inside(conn, rows)
        keys = json.dumps([{"device_id": r["device_id"], "client_event_id": r["client_event_id"]}
                           for r in rows])
        cur = await conn.execute(_STORED, [keys])
        stored = {(r[0], r[1]): r for r in await cur.fetchall()}
        reused = [
            f"records[{i}]: device {r.device_id} already used client_event_id "
            f"{r.client_event_id} for another record"
            for i, r in enumerate(records)
            if (s := stored.get((r.device_id, r.client_event_id))) is not None
            and (s[3], s[4], s[5]) != (storm_id, r.damage, r.tree_code)
        ]
        if reused:
            raise CareError("client_event_id_reused", "nothing stored: " + "; ".join(reused[:10]))
        cur = await conn.execute(_INSERT, {"storm": storm_id, "actor": actor,
                                           "rows": json.dumps(rows), "none": None})
        answers = {(r[0], r[1]): _answer(r) for r in await cur.fetchall()}
        answers.update({k: _answer(r) for k, r in stored.items()})
    return [answers[(r.device_id, r.client_event_id)] for r in records]


async def orders_from_damage(conn: AsyncConnection, storm_id: int, who: Principal) -> list[int]:
    """Open a work order for every damage record of the storm without one, most urgent first.

    A removal for a fallen or uprooted tree, pruning for a broken one, staking for a leaning
    one; the order takes the record's priority and position. Returns the new orders' ids in
    priority order.
    """
    async with conn.transaction():
        await _storm_exists(conn, storm_id)
        cur = await conn.execute(
            "SELECT d.id, d.damage, d.priority, t.tree_code, t.condition, ST_X(d.geom), "
            "ST_Y(d.geom), d.blocks_road, d.hazard_to_people, s.name "
            "FROM smarttrees.care_damage d JOIN smarttrees.care_storms s ON s.id = d.storm_id "
            "LEFT JOIN smarttrees.trees t ON t.id = d.tree_id "
            "WHERE d.storm_id = %s AND d.work_order_id IS NULL "
            "ORDER BY d.priority, d.observed_at, d.id FOR UPDATE OF d", [storm_id])
        opened = []
        for damage_id, damage, priority, code, condition, lon, lat, road, people, name in (
                await cur.fetchall()):
            what = [damage] + (["blocks a road"] if road else []) + (
                ["hazard to people"] if people else [])
            named = code is not None and condition != "removed"
            request = OrderRequest(
                work_type=WORK_FOR[damage],
                trees=[code] if named else [], location=None if named else (lon, lat),
                priority=priority, origin="storm", origin_id=damage_id,
                note=f"storm {name}: {', '.join(what)}")
            order_id = await insert_order(conn, request, who)
            await conn.execute("UPDATE smarttrees.care_damage SET work_order_id = %s "
                               "WHERE id = %s", [order_id, damage_id])
            opened.append(order_id)
    return opened


DAMAGE_GEOJSON = """
SELECT coalesce(jsonb_agg(jsonb_build_object(
    'type', 'Feature', 'id', d.id,
    'geometry', ST_AsGeoJSON(d.geom, 7)::jsonb,
    'properties', jsonb_build_object(
        'damage', d.damage, 'priority', d.priority, 'blocks_road', d.blocks_road,
        'hazard_to_people', d.hazard_to_people, 'tree_code', t.tree_code,
        'observed_at', d.observed_at, 'commune_code', d.commune_code,
        'work_order_id', d.work_order_id)) ORDER BY d.priority, d.id), '[]'::jsonb)
FROM smarttrees.care_damage d LEFT JOIN smarttrees.trees t ON t.id = d.tree_id
WHERE d.storm_id = %s
"""


async def damage_features(conn: AsyncConnection, storm_id: int) -> dict[str, Any]:
    """The storm's damage records as a GeoJSON FeatureCollection (no device or account)."""
    await _storm_exists(conn, storm_id)
    cur = await conn.execute(DAMAGE_GEOJSON, [storm_id])
    row = await cur.fetchone()
    return {"type": "FeatureCollection", "features": row[0] if row else []}


DAMAGE_BY_COMMUNE = """
SELECT commune_code, commune_name, records, fallen, uprooted, broken, leaning, blocking_roads,
       hazards_to_people, without_order
FROM smarttrees.care_storm_damage_by_commune WHERE storm_id = %s ORDER BY commune_code
"""


async def damage_by_commune(conn: AsyncConnection, storm_id: int) -> list[dict[str, Any]]:
    """Per commune in force: the storm's damage records by kind, roads, hazards, orders."""
    await _storm_exists(conn, storm_id)
    cur = await conn.execute(DAMAGE_BY_COMMUNE, [storm_id])
    names = ("commune_code", "commune_name", "records", "fallen", "uprooted", "broken",
             "leaning", "blocking_roads", "hazards_to_people", "without_order")
    return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]
