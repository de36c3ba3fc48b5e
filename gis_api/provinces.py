"""The ``province`` filter: features of a province's communes, pruning the national layout.

A collection with a ``commune_code`` (trees, stands, nurseries, the per-commune layers) can be
asked for one province: ``/collections/trees/items?province=19``, or ``province = '19'`` and
``province IN ('19', '20')`` in a CQL2 filter (a queryable). The province of a feature is its
commune's (``admin_units.parent_code``, the version in force first), as the partitions of
``smarttrees db partition-trees`` are made, so the condition is written as the list of the
province's commune codes, ``commune_code IN ($1, …, $n)``: the planner keeps only that
province's partition, in a generic plan of a prepared statement too (pruned when it starts).
A code that no commune has matches nothing, like any other ``property=value``.

The codes of each province are read from ``admin_units`` only for a request that names a
province, and kept ``MAX_AGE_S`` seconds per process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from gis_api.collections import Collection
from smarttrees.partitioning import PROVINCES_SQL

PROVINCE = "province"  # the query parameter and the queryable
MAX_AGE_S = 10.0  # how long a process keeps the communes of each province

Provinces = Mapping[str, tuple[str, ...]]  # province code → its commune codes
Fragment = tuple[sql.Composable, list[Any]]


def offered(collection: Collection) -> bool:
    """Whether ``collection`` takes a province filter (it has communes, and no own ``province``)."""
    names = collection.property_names
    return "commune_code" in names and PROVINCE not in names


def mentioned(params: Mapping[str, str]) -> bool:
    """Whether a request may filter by province (the parameter, or the word in its filter)."""
    return PROVINCE in params or PROVINCE in (params.get("filter") or "")


def condition(provinces: Provinces, codes: list[str], negated: bool = False) -> Fragment:
    """SQL of "the feature's commune is in one of the provinces ``codes``" (over alias ``t``).

    ``negated``: not in any of them, a feature without a commune being in none (as SQL's
    ``NOT IN`` leaves it out, whether or not the provinces have communes).
    """
    communes = sorted({c for p in codes for c in provinces.get(p, ())})
    column = sql.Identifier("t", "commune_code")
    if not communes:
        return (sql.SQL("({} IS NOT NULL)").format(column) if negated else sql.SQL("FALSE")), []
    listed = sql.SQL(", ").join(sql.Placeholder() for _ in communes)
    op = sql.SQL("NOT IN" if negated else "IN")
    return sql.SQL("({} {} ({}))").format(column, op, listed), communes


def from_rows(rows: list[tuple[Any, Any]]) -> dict[str, tuple[str, ...]]:
    """The provinces' commune codes from rows of (commune code, province code)."""
    found: dict[str, list[str]] = {}
    for code, province in rows:
        found.setdefault(str(province), []).append(str(code))
    return {p: tuple(codes) for p, codes in found.items()}


@dataclass
class ProvinceCache:
    """The communes of each province, read from the database at most every ``MAX_AGE_S``."""

    provinces: Provinces | None = None
    read_at: float = 0.0

    def fresh(self) -> Provinces | None:
        """The provinces' communes if read less than ``MAX_AGE_S`` ago, else None."""
        if self.provinces is None or time.monotonic() - self.read_at > MAX_AGE_S:
            return None
        return self.provinces

    async def read(self, conn: Any) -> Provinces:
        """Read the provinces' communes again on ``conn`` (an async connection)."""
        cur = await conn.execute(PROVINCES_SQL)
        self.provinces = from_rows(await cur.fetchall())
        self.read_at = time.monotonic()
        return self.provinces
