"""Inspections: record a batch all or nothing, keep each tree's risk and next due date.

A batch is one transaction of a handful of set-based statements (``jsonb_to_recordset``), so
10,000 inspections cost about what ten do, plus the rows. In order:

1. every inspection is checked without the database (:func:`parse_inspections`: vocabulary,
   ranges, dates), then every tree it names must exist and not be removed: any problem and
   nothing is stored, every problem is listed;
2. the inspections are inserted with their TRAQ rating (:mod:`smarttrees.care.traq`); one
   already stored under the same ``(device_id, client_event_id)`` is not stored again (the
   field app replays offline batches) and is answered as before;
3. ``care_tree_status`` takes each tree's latest inspection (an older one sent late changes
   nothing) and its next due date from the cycle of its category and risk class;
4. a re-measured diameter or height, or a new condition, is written to the tree itself, so the
   history trigger of 0001_core records it with the inspector's account as the actor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from smarttrees.care.errors import CareError
from smarttrees.care.traq import matrices, rate
from smarttrees.care.vocabulary import Condition, Defect

MAX_BATCH = 20_000
_SHOWN = 10  # problems listed in one message


class Inspection(BaseModel):
    """One visit to a tree, as a client sends it.

    Example: ``Inspection(tree_code="90001-U000001", inspected_on="2026-03-02",
    inspector="Lan", likelihood_failure="possible", likelihood_impact="medium",
    consequences="significant")``.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tree_code: str = Field(min_length=1, max_length=64)
    inspected_on: date
    inspector: str = Field(min_length=1, max_length=200)
    condition: Condition | None = None
    dbh_cm: float | None = Field(None, gt=0, le=500, description="re-measured, cm")
    height_m: float | None = Field(None, gt=0, le=120, description="re-measured, m")
    defects: list[Defect] = Field(default_factory=list, max_length=20)
    likelihood_failure: str
    likelihood_impact: str
    consequences: str
    photos: list[str] = Field(default_factory=list, max_length=20)
    note: str | None = Field(None, max_length=4000)
    device_id: str | None = Field(None, max_length=200)
    client_event_id: str | None = Field(None, max_length=200)

    @field_validator("inspected_on")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > date.today() + timedelta(days=1):  # a day of slack for time zones
            raise ValueError(f"{value} is in the future")
        return value

    @field_validator("likelihood_failure")
    @classmethod
    def _failure(cls, value: str) -> str:
        return _in("likelihood of failure", value, matrices().failure)

    @field_validator("likelihood_impact")
    @classmethod
    def _impact(cls, value: str) -> str:
        return _in("likelihood of impact", value, matrices().impact)

    @field_validator("consequences")
    @classmethod
    def _consequences(cls, value: str) -> str:
        return _in("consequences", value, matrices().consequences)


def _in(what: str, value: str, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise ValueError(f"{value!r} is not a TRAQ {what}; use one of {', '.join(valid)}")
    return value


def _refuse(rule: str, problems: list[str]) -> CareError:
    shown = "; ".join(problems[:_SHOWN])
    more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
    return CareError(rule, f"nothing stored: {shown}{more}")


Label = Callable[[int], str]


def item_label(i: int) -> str:
    """How an API batch names its ``i``-th inspection: ``inspections[i]``."""
    return f"inspections[{i}]"


def parse_inspections(items: list[Any], label: Label = item_label) -> list[Inspection]:
    """Validate raw inspections (dicts); every problem named by position and field.

    ``label`` names the ``i``-th item in messages (a file's loader gives "file.csv row 3").

    Raises
    ------
    CareError
        ``invalid_inspection``: any item breaks the vocabulary, a range or a date.

    """
    if not items:
        raise CareError("invalid_inspection", "no inspection to record")
    if len(items) > MAX_BATCH:
        raise CareError("invalid_inspection",
                        f"{len(items):,} inspections: send at most {MAX_BATCH:,} at a time")
    parsed: list[Inspection] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            parsed.append(Inspection.model_validate(item))
        except ValidationError as exc:
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "inspection"
                message = str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"{label(i)}, {field}: {message}")
    pairs = [(p.device_id is None) != (p.client_event_id is None) for p in parsed]
    problems += [f"{label(i)}: device_id and client_event_id go together"
                 for i, bad in enumerate(pairs) if bad]
    if problems:
        raise _refuse("invalid_inspection", problems)
    return parsed


_TREES = """
SELECT u.i, u.code, t.id, t.condition
FROM unnest(%s::text[]) WITH ORDINALITY AS u(code, i)
LEFT JOIN smarttrees.trees t ON t.tree_code = u.code
ORDER BY u.i
"""

_INSERT = """
INSERT INTO smarttrees.care_inspections (
    tree_id, inspected_on, inspector, condition, dbh_cm, height_m, defects,
    likelihood_failure, likelihood_impact, consequences, likelihood_failure_impact, risk,
    photos, note, device_id, client_event_id, recorded_by)
SELECT r.tree_id, r.inspected_on, r.inspector, r.condition, r.dbh_cm, r.height_m,
       ARRAY(SELECT jsonb_array_elements_text(r.defects)),
       r.likelihood_failure, r.likelihood_impact, r.consequences, r.likelihood_failure_impact,
       r.risk, ARRAY(SELECT jsonb_array_elements_text(r.photos)), r.note, r.device_id,
       r.client_event_id, %(actor)s
FROM jsonb_to_recordset(%(rows)s::jsonb) AS r(
    i int, tree_id bigint, inspected_on date, inspector text, condition text, dbh_cm real,
    height_m real, defects jsonb, likelihood_failure text, likelihood_impact text,
    consequences text, likelihood_failure_impact text, risk text, photos jsonb, note text,
    device_id text, client_event_id text)
ORDER BY r.i
ON CONFLICT (device_id, client_event_id) DO NOTHING
RETURNING id, device_id
"""

# The latest inspection of each tree among ``ids`` becomes its status, unless the stored one is
# later. The cycle comes in as three arrays (category, risk, months).
_STATUS = """
WITH latest AS (
    SELECT DISTINCT ON (i.tree_id) i.id, i.tree_id, i.inspected_on, i.risk, i.defects
    FROM smarttrees.care_inspections i
    WHERE i.id = ANY(%(ids)s::bigint[])
    ORDER BY i.tree_id, i.inspected_on DESC, i.id DESC
)
INSERT INTO smarttrees.care_tree_status AS s (
    tree_id, tree_code, category, commune_code, last_inspection_id, last_inspected_on, risk,
    defects, next_due, geom)
SELECT l.tree_id, t.tree_code, t.category, t.commune_code, l.id, l.inspected_on, l.risk,
       l.defects, (l.inspected_on + make_interval(months => c.months))::date, t.geom
FROM latest l
JOIN smarttrees.trees t ON t.id = l.tree_id
JOIN unnest(%(category)s::text[], %(risk)s::text[], %(months)s::int[]) AS c(category, risk, months)
  ON c.category = t.category AND c.risk = l.risk
ON CONFLICT (tree_id) DO UPDATE SET
    tree_code = EXCLUDED.tree_code, category = EXCLUDED.category,
    commune_code = EXCLUDED.commune_code, last_inspection_id = EXCLUDED.last_inspection_id,
    last_inspected_on = EXCLUDED.last_inspected_on, risk = EXCLUDED.risk,
    defects = EXCLUDED.defects, next_due = EXCLUDED.next_due, geom = EXCLUDED.geom
WHERE (EXCLUDED.last_inspected_on, EXCLUDED.last_inspection_id)
      > (s.last_inspected_on, s.last_inspection_id)
"""

# What a tree's latest inspection measured is written to the tree (history trigger: the diff).
_UPDATE_TREES = """
UPDATE smarttrees.trees t
SET dbh_cm = coalesce(i.dbh_cm, t.dbh_cm),
    height_m = coalesce(i.height_m, t.height_m),
    condition = coalesce(i.condition, t.condition),
    updated_at = now()
FROM smarttrees.care_inspections i
JOIN smarttrees.care_tree_status s ON s.tree_id = i.tree_id AND s.last_inspection_id = i.id
WHERE i.id = ANY(%(ids)s::bigint[]) AND t.id = i.tree_id
  AND (t.dbh_cm, t.height_m, t.condition) IS DISTINCT FROM
      (coalesce(i.dbh_cm, t.dbh_cm), coalesce(i.height_m, t.height_m),
       coalesce(i.condition, t.condition))
"""

# Each inspection found by an index: by id (new, without a key) or by its key. An OR of the
# two in one join condition scanned every stored inspection once per answer.
_ANSWERS = """
SELECT r.i, i.id, t.tree_code, i.inspected_on, i.likelihood_failure_impact, i.risk, s.next_due
FROM jsonb_to_recordset(%(keys)s::jsonb)
     AS r(i int, id bigint, device_id text, client_event_id text)
CROSS JOIN LATERAL (
    SELECT x.id, x.tree_id, x.inspected_on, x.likelihood_failure_impact, x.risk
    FROM smarttrees.care_inspections x WHERE x.id = r.id
    UNION ALL
    SELECT x.id, x.tree_id, x.inspected_on, x.likelihood_failure_impact, x.risk
    FROM smarttrees.care_inspections x
    WHERE r.id IS NULL AND x.device_id = r.device_id AND x.client_event_id = r.client_event_id
) i
JOIN smarttrees.trees t ON t.id = i.tree_id
LEFT JOIN smarttrees.care_tree_status s ON s.tree_id = i.tree_id
ORDER BY r.i
"""


def cycle_arrays(cycle: dict[str, dict[str, int]]) -> dict[str, list[Any]]:
    """The inspection cycle as the three bound arrays the status statements join."""
    rows = [(c, r, m) for c, months in cycle.items() for r, m in months.items()]
    return {"category": [r[0] for r in rows], "risk": [r[1] for r in rows],
            "months": [r[2] for r in rows]}


async def _tree_ids(conn: AsyncConnection, items: list[Inspection], label: Label) -> list[int]:
    cur = await conn.execute(_TREES, [[p.tree_code for p in items]])
    ids: list[int] = []
    unknown: list[str] = []
    removed: list[str] = []
    for i, code, tree_id, condition in await cur.fetchall():
        if tree_id is None:
            unknown.append(f"{label(i - 1)}, tree_code: no tree {code}")
        elif condition == "removed":
            removed.append(f"{label(i - 1)}, tree_code: tree {code} was removed")
        ids.append(tree_id)
    if unknown:
        raise _refuse("unknown_tree", unknown + removed)
    if removed:
        raise _refuse("tree_removed", removed)
    return ids


def _rows(items: list[Inspection], tree_ids: list[int]) -> str:
    rows = []
    for i, (p, tree_id) in enumerate(zip(items, tree_ids, strict=True)):
        rating = rate(p.likelihood_failure, p.likelihood_impact, p.consequences)
        rows.append({
            **p.model_dump(mode="json", exclude={"tree_code"}), "i": i, "tree_id": tree_id,
            "likelihood_failure_impact": rating.likelihood_failure_impact, "risk": rating.risk,
        })
    return json.dumps(rows)


async def record_inspections(
    conn: AsyncConnection,
    items: list[Inspection],
    cycle: dict[str, dict[str, int]],
    actor: str,
    label: Label = item_label,
) -> list[dict[str, Any]]:
    """Record inspections all or nothing; one answer per inspection, in order.

    Parameters
    ----------
    conn
        An async connection (search path set); the work is one transaction of its own.
    items
        Checked inspections (:func:`parse_inspections`).
    cycle
        Months between inspections per category and risk (``settings.care_cycle_months``).
    actor
        The account recording them: the history of the trees names it.
    label
        Names the ``i``-th inspection in messages.

    Returns
    -------
    list of dict
        ``inspection_id``, ``tree_code``, ``inspected_on``, ``likelihood_failure_impact``,
        ``risk`` and the tree's ``next_due`` (ISO dates).

    Raises
    ------
    CareError
        ``unknown_tree`` or ``tree_removed``: nothing of the batch is stored.

    """
    async with conn.transaction():
        await conn.execute(
            "SELECT set_config('smarttrees.actor', %s, true), "
            "set_config('smarttrees.source', 'inspection', true)", [actor])
        tree_ids = await _tree_ids(conn, items, label)
        cur = await conn.execute(_INSERT, {"rows": _rows(items, tree_ids), "actor": actor})
        inserted = await cur.fetchall()  # in input order (the SELECT's ORDER BY)
        new_ids = [r[0] for r in inserted]
        if new_ids:
            await conn.execute(_STATUS, {"ids": new_ids, **cycle_arrays(cycle)})
            await conn.execute(_UPDATE_TREES, {"ids": new_ids})
        return await _answers(conn, items, [r[0] for r in inserted if r[1] is None])


async def _answers(
    conn: AsyncConnection, items: list[Inspection], keyless_ids: list[int]
) -> list[dict[str, Any]]:
    """One answer per item, in input order.

    Keyed items are found by their key (new or replayed), the others by the ids their insert
    returned.
    """
    fresh = iter(keyless_ids)
    keys = [
        {"i": i, "id": None if p.device_id else next(fresh), "device_id": p.device_id,
         "client_event_id": p.client_event_id}
        for i, p in enumerate(items)
    ]
    cur = await conn.execute(_ANSWERS, {"keys": json.dumps(keys)})
    return [
        {"inspection_id": r[1], "tree_code": r[2], "inspected_on": r[3].isoformat(),
         "likelihood_failure_impact": r[4], "risk": r[5],
         "next_due": r[6].isoformat() if r[6] else None}
        for r in await cur.fetchall()
    ]


_REBUILD = """
WITH latest AS (
    SELECT DISTINCT ON (i.tree_id) i.id, i.tree_id, i.inspected_on, i.risk, i.defects
    FROM smarttrees.care_inspections i
    ORDER BY i.tree_id, i.inspected_on DESC, i.id DESC
)
INSERT INTO smarttrees.care_tree_status (
    tree_id, tree_code, category, commune_code, last_inspection_id, last_inspected_on, risk,
    defects, next_due, geom)
SELECT l.tree_id, t.tree_code, t.category, t.commune_code, l.id, l.inspected_on, l.risk,
       l.defects, (l.inspected_on + make_interval(months => c.months))::date, t.geom
FROM latest l
JOIN smarttrees.trees t ON t.id = l.tree_id
JOIN unnest(%(category)s::text[], %(risk)s::text[], %(months)s::int[]) AS c(category, risk, months)
  ON c.category = t.category AND c.risk = l.risk
WHERE t.condition IS DISTINCT FROM 'removed'
"""


async def rebuild_status(conn: AsyncConnection, cycle: dict[str, dict[str, int]]) -> int:
    """Rebuild every tree's status from all inspections (after the cycle setting changed).

    Removed trees leave the due list; commune, category and position are read again from the
    trees. Returns the number of trees with a status.
    """
    async with conn.transaction():
        await conn.execute("DELETE FROM smarttrees.care_tree_status")
        cur = await conn.execute(_REBUILD, cycle_arrays(cycle))
        return cur.rowcount
