"""The due list: inspected trees whose next inspection falls on or before a date.

It reads ``care_tree_status`` alone (one row per inspected tree, indexed by due date, by commune
and by risk), so the list for a whole province is a short index walk. Trees never inspected are
a list of their own (``never_inspected``): every one of them is due, and there may be a
million, so they are listed by page, not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from psycopg import AsyncConnection

from smarttrees.care.errors import CareError
from smarttrees.care.vocabulary import CATEGORIES, RISKS


@dataclass(frozen=True)
class DueFilter:
    """What to list: by a date, in a commune, of some risk classes and categories."""

    by: date
    commune: str | None = None
    risks: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    limit: int = 100
    never_inspected: bool = False

    def __post_init__(self) -> None:
        """Refuse an unknown risk class or category and a limit out of range (named)."""
        for risk in self.risks:
            if risk not in RISKS:
                raise CareError("bad_parameter",
                                f"risk: {risk!r} is not a risk class; use {', '.join(RISKS)}")
        for category in self.categories:
            if category not in CATEGORIES:
                raise CareError("bad_parameter",
                                f"category: {category!r} is unknown; use {', '.join(CATEGORIES)}")
        if not 1 <= self.limit <= 10_000:
            raise CareError("bad_parameter", f"limit: {self.limit} is not within 1–10000")
        if self.never_inspected and self.risks:
            raise CareError("bad_parameter", "risk: trees never inspected have no risk class")

    def params(self) -> dict[str, Any]:
        """The bound parameters of the due statements."""
        return {"by": self.by, "commune": self.commune, "risks": list(self.risks) or None,
                "categories": list(self.categories) or None, "limit": self.limit}


_WHERE = """
WHERE s.next_due <= %(by)s
  AND (%(commune)s::text IS NULL OR s.commune_code = %(commune)s)
  AND (%(risks)s::text[] IS NULL OR s.risk = ANY(%(risks)s::text[]))
  AND (%(categories)s::text[] IS NULL OR s.category = ANY(%(categories)s::text[]))
"""

DUE = f"""
SELECT s.tree_code, s.category, s.commune_code, s.risk, s.last_inspected_on, s.next_due,
       s.defects, ST_X(s.geom), ST_Y(s.geom)
FROM smarttrees.care_tree_status s
{_WHERE}
ORDER BY s.next_due, s.tree_id
LIMIT %(limit)s
"""

DUE_COUNT = f"""
SELECT s.risk, count(*) FROM smarttrees.care_tree_status s {_WHERE} GROUP BY s.risk
"""

NEVER = """
SELECT t.tree_code, t.category, t.commune_code, NULL::text, NULL::date, NULL::date,
       '{}'::text[], ST_X(t.geom), ST_Y(t.geom)
FROM smarttrees.trees t
WHERE t.condition IS DISTINCT FROM 'removed'
  AND (%(commune)s::text IS NULL OR t.commune_code = %(commune)s)
  AND (%(categories)s::text[] IS NULL OR t.category = ANY(%(categories)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM smarttrees.care_tree_status s WHERE s.tree_id = t.id)
ORDER BY t.id
LIMIT %(limit)s
"""

COLUMNS = ("tree_code", "category", "commune_code", "risk", "last_inspected_on", "next_due",
           "defects", "lon", "lat")


def _row(r: tuple[Any, ...]) -> dict[str, Any]:
    doc = dict(zip(COLUMNS, r, strict=True))
    for key in ("last_inspected_on", "next_due"):
        doc[key] = doc[key].isoformat() if doc[key] else None
    doc["lon"], doc["lat"] = round(doc["lon"], 7), round(doc["lat"], 7)
    return doc


async def due_list(conn: AsyncConnection, what: DueFilter) -> dict[str, Any]:
    """The trees due for inspection, soonest first, and how many are due per risk class.

    Returns
    -------
    dict
        ``by`` (ISO date), ``total`` (inspected trees due, every page), ``by_risk``
        (risk → count) and ``trees`` (at most ``limit``: tree_code, category, commune_code,
        risk, last_inspected_on, next_due, defects, lon, lat). With ``never_inspected`` the
        trees are those never inspected, and the totals are not counted (``None``).

    """
    params = what.params()
    if what.never_inspected:
        cur = await conn.execute(NEVER, params)
        return {"by": what.by.isoformat(), "total": None, "by_risk": None,
                "trees": [_row(r) for r in await cur.fetchall()]}
    cur = await conn.execute(DUE, params)
    trees = [_row(r) for r in await cur.fetchall()]
    cur = await conn.execute(DUE_COUNT, params)
    counts = {risk: 0 for risk in RISKS} | {r[0]: int(r[1]) for r in await cur.fetchall()}
    return {"by": what.by.isoformat(), "total": sum(counts.values()), "by_risk": counts,
            "trees": trees}
