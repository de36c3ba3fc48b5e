"""Work orders: requested → approved → scheduled (crew, date) → done, or cancelled on the way.

Each order names a work type, the trees it is for (or, for a planting, a spot), a priority
(1 most urgent … 5) and its estimated cost from the price catalogue (:mod:`smarttrees.care.prices`).
Every transition is one row of ``care_work_order_events`` (who, when, from, to); a transition
that skips a step or goes back is refused (rule ``transition``), and so is one made by someone
whose role may not make it:

==============  =============================  =================================================
transition      from                           who
==============  =============================  =================================================
approved        requested                      an editor
scheduled       approved (needs crew and date) an editor; the crew is a field account
done            scheduled                      an editor, or the crew the order is scheduled for
cancelled       requested, approved, scheduled an editor
==============  =============================  =================================================

(admins hold every role.) Finishing a removal marks its trees removed, through the trees'
history, takes them off the due list, and, when asked, opens a planting order at each spot.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smarttrees.accounts import Principal
from smarttrees.care.errors import CareError
from smarttrees.care.prices import TREE_PRICE
from smarttrees.care.vocabulary import WorkType

STATUSES = ("requested", "approved", "scheduled", "done", "cancelled")
NEXT: dict[str, tuple[str, ...]] = {
    "requested": ("approved", "cancelled"),
    "approved": ("scheduled", "cancelled"),
    "scheduled": ("done", "cancelled"),
    "done": (),
    "cancelled": (),
}
ORIGINS = ("staff", "inspection", "report", "storm", "replacement")


class OrderRequest(BaseModel):
    """A new work order. Example: ``OrderRequest(work_type="pruning", trees=["G1", "G2"])``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    work_type: WorkType
    trees: list[str] = Field(default_factory=list, max_length=5_000)
    location: tuple[float, float] | None = Field(
        None, description="longitude, latitude of a planting without a tree")
    priority: int = Field(3, ge=1, le=5)
    note: str | None = Field(None, max_length=4000)
    origin: str = "staff"
    origin_id: int | None = None

    @model_validator(mode="after")
    def _where(self) -> OrderRequest:
        if not self.trees and self.location is None:
            raise ValueError("name the trees, or give a location (a planting)")
        if self.origin not in ORIGINS:
            raise ValueError(f"origin: {self.origin!r}; use one of {', '.join(ORIGINS)}")
        if self.location is not None:
            lon, lat = self.location
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(f"location: {list(self.location)} is not a longitude, latitude")
        return self


def parse_order(doc: Any) -> OrderRequest:
    """A checked order request; ``invalid_order`` naming each bad field."""
    try:
        return OrderRequest.model_validate(doc)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'order'}: "
                    f"{str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()]
        raise CareError("invalid_order", "; ".join(problems)) from None


async def _as_actor(conn: AsyncConnection, who: Principal) -> None:
    await conn.execute(
        "SELECT set_config('smarttrees.actor', %s, true), "
        "set_config('smarttrees.source', 'work order', true)", [who.username])


async def _trees(conn: AsyncConnection, codes: list[str], work_type: str) -> list[int]:
    codes = list(dict.fromkeys(codes))  # once each, in the order given
    cur = await conn.execute(
        "SELECT u.code, t.id, t.condition FROM unnest(%s::text[]) WITH ORDINALITY u(code, i) "
        "LEFT JOIN smarttrees.trees t ON t.tree_code = u.code ORDER BY u.i", [codes])
    rows = await cur.fetchall()
    unknown = [code for code, tree_id, _ in rows if tree_id is None]
    if unknown:
        raise CareError("unknown_tree", f"trees: no tree {', '.join(unknown[:10])}")
    removed = [code for code, _, condition in rows if condition == "removed"]
    if removed and work_type != "stump_removal":  # a stump is what a removal leaves
        raise CareError("tree_removed", f"trees: {', '.join(removed[:10])} already removed")
    return [int(r[1]) for r in rows]


_INSERT_ORDER = """
INSERT INTO smarttrees.care_work_orders (
    work_type, priority, origin, origin_id, note, created_by, geom, commune_code)
SELECT %(work_type)s, %(priority)s, %(origin)s, %(origin_id)s, %(note)s, %(actor)s, g.geom,
       coalesce((SELECT t.commune_code FROM smarttrees.trees t WHERE t.id = %(first)s),
                smarttrees.commune_at(g.geom))
FROM (SELECT coalesce(
        (SELECT t.geom FROM smarttrees.trees t WHERE t.id = %(first)s),
        ST_SetSRID(ST_MakePoint(%(lon)s::float8, %(lat)s::float8), 4326)) AS geom) g
RETURNING id
"""

_INSERT_TREES = f"""
INSERT INTO smarttrees.care_work_order_trees (order_id, tree_id, estimated_cost_vnd)
SELECT %(order)s, t.id, ({TREE_PRICE})
FROM smarttrees.trees t WHERE t.id = ANY(%(trees)s::bigint[])
"""

# The order's estimate: the sum of its trees, or one spot for a planting without trees;
# unknown (NULL) when a tree has no price.
_ESTIMATE = f"""
UPDATE smarttrees.care_work_orders o SET estimated_cost_vnd = CASE
    WHEN EXISTS (SELECT 1 FROM smarttrees.care_work_order_trees x WHERE x.order_id = o.id)
    THEN (SELECT CASE WHEN bool_and(x.estimated_cost_vnd IS NOT NULL)
                      THEN sum(x.estimated_cost_vnd) END
          FROM smarttrees.care_work_order_trees x WHERE x.order_id = o.id)
    ELSE (SELECT price FROM (SELECT NULL::real AS dbh_cm) t,
          LATERAL ({TREE_PRICE}) AS p(price))
    END
WHERE o.id = %(order)s
"""

_EVENT = """
INSERT INTO smarttrees.care_work_order_events (order_id, from_status, to_status, actor, note)
VALUES (%s, %s, %s, %s, %s)
"""


async def create_order(conn: AsyncConnection, request: OrderRequest, who: Principal) -> int:
    """Create a work order (status ``requested``) in a transaction of its own; its id.

    Raises
    ------
    CareError
        ``unknown_tree`` or ``tree_removed`` for a tree it names; nothing is stored.

    """
    async with conn.transaction():
        return await insert_order(conn, request, who)


async def insert_order(conn: AsyncConnection, request: OrderRequest, who: Principal) -> int:
    """Create a work order inside the caller's transaction; its id."""
    if not who.has_role("editor"):
        raise CareError("forbidden", f"role {who.role!r} may not create work orders")
    trees = await _trees(conn, request.trees, request.work_type)
    lon, lat = request.location or (None, None)
    cur = await conn.execute(_INSERT_ORDER, {
        "work_type": request.work_type, "priority": request.priority, "origin": request.origin,
        "origin_id": request.origin_id, "note": request.note, "actor": who.username,
        "first": trees[0] if trees else None, "lon": lon, "lat": lat})
    row = await cur.fetchone()
    assert row is not None
    order_id = int(row[0])
    params = {"order": order_id, "trees": trees, "work_type": request.work_type}
    if trees:
        await conn.execute(_INSERT_TREES, params)
    await conn.execute(_ESTIMATE, params)
    await conn.execute(_EVENT, [order_id, None, "requested", who.username, request.note])
    return order_id


def _check_turn(order_id: int, status: str, to: str) -> None:
    if to not in STATUSES:
        raise CareError("bad_parameter", f"to: {to!r}; use one of {', '.join(STATUSES[1:])}")
    if to not in NEXT[status]:
        allowed = " or ".join(NEXT[status]) or "nothing (it is closed)"
        raise CareError("transition",
                        f"work order {order_id} is {status}: it can go to {allowed}, not {to}")


def _check_who(order_id: int, who: Principal, to: str, crew: str | None) -> None:
    if who.has_role("editor"):
        return
    if to == "done" and who.role == "field":
        if crew != who.username:
            raise CareError("not_your_order",
                            f"work order {order_id} is not scheduled for {who.username}")
        return
    raise CareError("forbidden", f"role {who.role!r} may not move a work order to {to}")


async def _check_crew(conn: AsyncConnection, crew: str | None, on: date | None) -> None:
    if not crew or on is None:
        raise CareError("bad_parameter", "scheduling needs a crew and a date (crew, scheduled_on)")
    cur = await conn.execute(
        "SELECT role, disabled FROM smarttrees.users WHERE username = %s", [crew])
    row = await cur.fetchone()
    if row is None or row[1] or row[0] not in ("field", "admin"):
        raise CareError("bad_parameter", f"crew: {crew!r} is not an enabled field account")


async def move(
    conn: AsyncConnection,
    order_id: int,
    to: str,
    who: Principal,
    *,
    crew: str | None = None,
    scheduled_on: date | None = None,
    actual_cost_vnd: int | None = None,
    replant: bool = False,
    note: str | None = None,
) -> list[int]:
    """Move a work order one step on; the ids of planting orders it opened (a removal's).

    Parameters
    ----------
    conn
        An async connection; the move is one transaction of its own.
    order_id
        The order.
    to
        ``approved``, ``scheduled``, ``done`` or ``cancelled``.
    who
        Who moves it (see the table in the module's docstring).
    crew, scheduled_on
        For ``scheduled``: the field account doing the work, and the day.
    actual_cost_vnd
        For ``done``: what the work cost.
    replant
        For a removal ``done``: open a planting order at each removed tree's spot.
    note
        Recorded with the transition.

    Raises
    ------
    CareError
        ``unknown_order`` (404), ``transition`` (a skip or a step back, 409), ``forbidden`` or
        ``not_your_order`` (403), ``bad_parameter`` (400); nothing is changed.

    """
    async with conn.transaction():
        await _as_actor(conn, who)
        cur = await conn.execute(
            "SELECT status, crew, work_type FROM smarttrees.care_work_orders "
            "WHERE id = %s FOR UPDATE", [order_id])
        row = await cur.fetchone()
        if row is None:
            raise CareError("unknown_order", f"no work order {order_id}")
        status, assigned, work_type = row
        _check_turn(order_id, status, to)
        _check_who(order_id, who, to, assigned)
        if replant and (to != "done" or work_type != "removal"):
            raise CareError("bad_parameter", "replant: only a finished removal opens a planting")
        if to == "scheduled":
            await _check_crew(conn, crew, scheduled_on)
        if actual_cost_vnd is not None and (to != "done" or actual_cost_vnd < 0):
            raise CareError("bad_parameter", "actual_cost_vnd: a cost >= 0 goes with done")
        await conn.execute(
            "UPDATE smarttrees.care_work_orders SET status = %(to)s, "
            "crew = coalesce(%(crew)s, crew), scheduled_on = coalesce(%(on)s, scheduled_on), "
            "actual_cost_vnd = coalesce(%(cost)s, actual_cost_vnd), updated_at = now() "
            "WHERE id = %(id)s",
            {"to": to, "crew": crew if to == "scheduled" else None,
             "on": scheduled_on if to == "scheduled" else None, "cost": actual_cost_vnd,
             "id": order_id})
        await conn.execute(_EVENT, [order_id, status, to, who.username, note])
        if to == "done" and work_type == "removal":
            return await _finish_removal(conn, order_id, who, replant)
        return []


async def _finish_removal(
    conn: AsyncConnection, order_id: int, who: Principal, replant: bool
) -> list[int]:
    cur = await conn.execute(
        "UPDATE smarttrees.trees t SET condition = 'removed', updated_at = now() "
        "FROM smarttrees.care_work_order_trees x "
        "WHERE x.order_id = %s AND x.tree_id = t.id RETURNING t.id, t.tree_code, "
        "ST_X(t.geom), ST_Y(t.geom)", [order_id])
    removed = await cur.fetchall()
    await conn.execute(
        "DELETE FROM smarttrees.care_tree_status s USING smarttrees.care_work_order_trees x "
        "WHERE x.order_id = %s AND x.tree_id = s.tree_id", [order_id])
    if not replant:
        return []
    staff = Principal(who.user_id, who.username, "editor")  # the replacement is the order's own
    opened = []
    for _, code, lon, lat in sorted(removed, key=lambda r: r[0]):
        request = OrderRequest(work_type="planting", location=(lon, lat), origin="replacement",
                               origin_id=order_id, note=f"replaces {code}")
        opened.append(await insert_order(conn, request, staff))
    return opened


_ORDER_COLUMNS = ("id", "work_type", "status", "priority", "origin", "origin_id", "crew",
                  "scheduled_on", "estimated_cost_vnd", "actual_cost_vnd", "note",
                  "commune_code", "lon", "lat", "created_by", "created_at", "updated_at",
                  "trees")
_SELECT_ORDERS = """
SELECT o.id, o.work_type, o.status, o.priority, o.origin, o.origin_id, o.crew, o.scheduled_on,
       o.estimated_cost_vnd, o.actual_cost_vnd, o.note, o.commune_code,
       round(ST_X(o.geom)::numeric, 7)::float8, round(ST_Y(o.geom)::numeric, 7)::float8,
       o.created_by, o.created_at, o.updated_at,
       ARRAY(SELECT t.tree_code FROM smarttrees.care_work_order_trees x
             JOIN smarttrees.trees t ON t.id = x.tree_id
             WHERE x.order_id = o.id ORDER BY t.tree_code)
FROM smarttrees.care_work_orders o
"""


def _order(row: tuple[Any, ...]) -> dict[str, Any]:
    doc = dict(zip(_ORDER_COLUMNS, row, strict=True))
    for key in ("scheduled_on", "created_at", "updated_at"):
        doc[key] = doc[key].isoformat() if doc[key] else None
    return doc


async def get_order(conn: AsyncConnection, order_id: int) -> dict[str, Any]:
    """One order with its trees and every transition (``events``)."""
    cur = await conn.execute(_SELECT_ORDERS + " WHERE o.id = %s", [order_id])
    row = await cur.fetchone()
    if row is None:
        raise CareError("unknown_order", f"no work order {order_id}")
    doc = _order(row)
    cur = await conn.execute(
        "SELECT from_status, to_status, at, actor, note FROM smarttrees.care_work_order_events "
        "WHERE order_id = %s ORDER BY id", [order_id])
    doc["events"] = [{"from": r[0], "to": r[1], "at": r[2].isoformat(), "actor": r[3],
                      "note": r[4]} for r in await cur.fetchall()]
    return doc


async def list_orders(
    conn: AsyncConnection,
    status: tuple[str, ...] = (),
    crew: str | None = None,
    commune: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Orders, most urgent first (priority, then oldest), optionally filtered."""
    for s in status:
        if s not in STATUSES:
            raise CareError("bad_parameter", f"status: {s!r}; use one of {', '.join(STATUSES)}")
    if not 1 <= limit <= 10_000:
        raise CareError("bad_parameter", f"limit: {limit} is not within 1–10000")
    cur = await conn.execute(
        _SELECT_ORDERS
        + " WHERE (%(status)s::text[] IS NULL OR o.status = ANY(%(status)s::text[]))"
        "   AND (%(crew)s::text IS NULL OR o.crew = %(crew)s)"
        "   AND (%(commune)s::text IS NULL OR o.commune_code = %(commune)s)"
        " ORDER BY o.priority, o.id LIMIT %(limit)s",
        {"status": list(status) or None, "crew": crew, "commune": commune, "limit": limit})
    return [_order(r) for r in await cur.fetchall()]
