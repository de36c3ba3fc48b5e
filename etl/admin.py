"""Versioned administrative units: a new version closes the one in force, never deletes it.

``load_admin(url, file, level="commune", valid_from=date(2025, 7, 1))`` reads polygons, keeps
units that did not change, closes (``valid_to``) those that changed or vanished, inserts the new
versions, and — for communes — moves each tree to the commune now containing it, so the tree's
history records the reform while ``smarttrees.commune_at(geom, date)`` still answers for any date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa

from etl import checker
from etl.errors import InputError
from etl.merge import set_provenance
from etl.readers import read_gis_frame
from etl.rules import ADMIN
from smarttrees.database import connect
from smarttrees.domain import fold
from smarttrees.territory import unit_code_problem

LEVELS = ("province", "district", "commune")
CODE_FIELDS = ADMIN["code"].aliases
NAME_FIELDS = ADMIN["name"].aliases
TYPE_FIELDS = ADMIN["unit_type"].aliases
PARENT = {"commune": ("district_code", "province_code", "parent_code"),
          "district": ("province_code", "parent_code"), "province": ()}
VI = {"commune": "xa", "district": "huyen", "province": "tinh"}

STAGE = """
CREATE TEMP TABLE load_admin (code text, name text, unit_type text, parent_code text,
                              geom geometry, name_ascii text) ON COMMIT DROP
"""

CLOSE = """
UPDATE smarttrees.admin_units a SET valid_to = %(from)s
WHERE a.level = %(level)s AND a.valid_to IS NULL AND a.valid_from < %(from)s
  AND NOT EXISTS (SELECT 1 FROM load_admin n WHERE n.code = a.code AND n.name = a.name
                  AND n.unit_type IS NOT DISTINCT FROM a.unit_type
                  AND n.parent_code IS NOT DISTINCT FROM a.parent_code
                  AND ST_Equals(n.geom, a.geom))
"""

INSERT = """
INSERT INTO smarttrees.admin_units (level, code, name, name_ascii, unit_type, parent_code,
                                    valid_from, source, geom)
SELECT %(level)s, n.code, n.name, n.name_ascii, n.unit_type, n.parent_code, %(from)s, %(source)s,
       n.geom
FROM load_admin n
WHERE NOT EXISTS (SELECT 1 FROM smarttrees.admin_units a
                  WHERE a.level = %(level)s AND a.code = n.code AND a.valid_to IS NULL)
"""

# Units of one level must not overlap (a point would be in two communes). Shared borders and
# digitising slivers are tolerated: a pair is refused when its overlap exceeds a thousandth of
# the smaller unit. The worst pair is reported.
OVERLAPS = """
SELECT a.code, b.code, ST_Area(ST_Intersection(a.geom, b.geom))
                       / nullif(least(ST_Area(a.geom), ST_Area(b.geom)), 0) AS share
FROM load_admin a JOIN load_admin b ON a.code < b.code AND a.geom && b.geom
WHERE ST_Relate(a.geom, b.geom, '2********')
ORDER BY share DESC NULLS LAST LIMIT 1
"""
OVERLAP_TOLERANCE = 0.001

# Trees follow their commune: only rows whose commune changed are touched (and so historied).
REASSIGN_TREES = """
UPDATE smarttrees.trees t SET commune_code = x.code, updated_at = now()
FROM (
    SELECT t.id, (SELECT c.code FROM smarttrees.communes c WHERE ST_Intersects(c.geom, t.geom)
                  ORDER BY c.code LIMIT 1) AS code
    FROM smarttrees.trees t
) x
WHERE x.id = t.id AND t.commune_code IS DISTINCT FROM x.code
"""


@dataclass
class AdminResult:
    """What a load did to the units of one level."""

    level: str
    valid_from: dt.date
    inserted: int = 0
    closed: int = 0
    unchanged: int = 0
    trees_moved: int = 0

    def summary(self) -> str:
        """One line for the terminal."""
        return (f"{self.level} units from {self.valid_from}: {self.inserted} new version(s), "
                f"{self.closed} closed, {self.unchanged} unchanged; "
                f"{self.trees_moved} tree(s) moved to their new commune")


def _pick(columns: list[str], candidates: tuple[str, ...], level: str,
          given: str | None, path: Path, what: str) -> str | None:
    if given:
        if given not in columns:
            raise InputError(path, f"no column {given!r} (columns: {', '.join(columns)})",
                             field=given)
        return given
    folded = {fold(c): c for c in columns}
    for pattern in candidates:
        name = pattern.format(level=level, vi=VI[level])
        if name in folded:
            return folded[name]
    if what == "optional":
        return None
    raise InputError(path, f"no {what} column: name it with --{what}-field "
                     f"(columns: {', '.join(columns)})")


def _refuse_overlaps(conn: psycopg.Connection, path: Path, rows: dict[str, int]) -> None:
    """Refuse a file whose units overlap, naming the worst pair and their rows."""
    worst = conn.execute(OVERLAPS).fetchone()
    if worst and worst[2] is not None and worst[2] > OVERLAP_TOLERANCE:
        a, b, share = worst
        raise InputError(path, f"units {a} (row {rows[a]}) and {b} (row {rows[b]}) overlap over "
                         f"{share:.1%} of the smaller one: units of one level must not overlap",
                         field="geometry")


MAX_SHOWN = 10     # problems named in the one error; the count gives the rest


def _refuse_problems(path: Path, problems: list[tuple[int | None, str | None, str]]) -> None:
    """One error for all of a file's problems: one as its row and field say, several listed."""
    if len(problems) == 1:
        row, field, what = problems[0]
        raise InputError(path, what, row=row, field=field)
    if problems:
        shown = "; ".join((f"row {row:,}: " if row else "") + f"{field}: {what}"
                          for row, field, what in problems[:MAX_SHOWN])
        more = f" … and {len(problems) - MAX_SHOWN} more" if len(problems) > MAX_SHOWN else ""
        raise InputError(path, f"{len(problems):,} problems, nothing loaded: {shown}{more}")


def _checked(frame: Any, found: dict[str, str]
             ) -> tuple[list[tuple[Any, ...]], list[tuple[int | None, str | None, str]]]:
    """The units to stage, and every problem of every row as (row, field, what).

    The fields are checked by the one checker against ``etl.rules.ADMIN``; the geometry must
    be a polygon; a code used twice by good rows is named once.
    """
    import shapely

    cells = pa.table({name: pa.array([None if v is None or v != v else str(v)
                                      for v in frame[header]], pa.string())
                      for name, header in found.items()})
    columns = {name: i for i, name in enumerate(found)}
    result = checker.check(cells, columns, dict(found), ADMIN,
                           {"unit_code": lambda raw: (raw, unit_code_problem(raw))})
    problems, values = result.problems, result.values
    geoms = np.asarray(frame.geometry.values, dtype=object)
    kinds = shapely.get_type_id(geoms)
    not_polygon = ~np.isin(kinds, (3, 6))
    problems.add(not_polygon, lambda rows: [
        f"{'no geometry' if geoms[i] is None else geoms[i].geom_type} where a polygon was "
        "expected" for i in rows], "geometry")
    out: list[tuple[int | None, str | None, str]] = []
    for f in problems.findings:
        prefix = f"{f.field}: " if f.field else ""
        out += [(int(r) + 1, f.field, reason.removeprefix(prefix))
                for r, reason in zip(f.rows.tolist(), f.reasons, strict=True)]
    out.sort(key=lambda p: p[0] or 0)
    good = np.flatnonzero(~problems.bad)
    codes = values["code"][good]
    distinct, counts = np.unique(codes.astype(str), return_counts=True)
    out += [(None, found["code"], f"unit code {code} appears twice")
            for code in distinct[counts > 1].tolist()]

    def cell(name: str, i: int) -> str | None:
        return values[name][i] if name in values else None

    rows = [(values["code"][i], values["name"][i], cell("unit_type", i), cell("parent_code", i),
             shapely.to_wkb(geoms[i]), fold(values["name"][i])) for i in good.tolist()]
    return rows, out


def load_admin(url: str | None, path: Path, *, level: str, valid_from: dt.date,
               code_field: str | None = None, name_field: str | None = None,
               actor: str | None = None) -> AdminResult:
    """Load one version of the units of ``level`` in force from ``valid_from``; all or nothing."""
    if level not in LEVELS:
        raise InputError(path, f"unknown level {level!r}: one of {', '.join(LEVELS)}")
    frame = read_gis_frame(path)
    if frame.crs is None:
        raise InputError(path, "declares no CRS (a Shapefile without .prj?)")
    frame = frame.to_crs(4326)
    columns = [str(c) for c in frame.columns if c != "geometry"]
    picked = {"code": _pick(columns, CODE_FIELDS, level, code_field, path, "code"),
              "name": _pick(columns, NAME_FIELDS, level, name_field, path, "name"),
              "unit_type": _pick(columns, TYPE_FIELDS, level, None, path, "optional"),
              "parent_code": next((c for c in PARENT[level] if c in columns), None)}
    found = {name: header for name, header in picked.items() if header is not None}
    rows, problems = _checked(frame, found)
    _refuse_problems(path, problems)
    result = AdminResult(level, valid_from)
    with connect(url) as conn:
        conn.execute(STAGE)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO load_admin VALUES (%s, %s, %s, %s, "
                "ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_SetSRID(%s::geometry, 4326)), 3)), "
                "%s)", rows)
        _refuse_overlaps(conn, path, {r[0]: i for i, r in enumerate(rows, start=1)})
        later = conn.execute(
            "SELECT max(valid_from) FROM smarttrees.admin_units WHERE level = %s "
            "AND valid_to IS NULL", (level,)).fetchone()
        if later and later[0] and later[0] > valid_from:
            raise InputError(path, f"units of level {level} in force since {later[0]} are newer "
                             f"than --valid-from {valid_from}")
        params = {"level": level, "from": valid_from, "source": path.name}
        result.closed = conn.execute(CLOSE, params).rowcount
        cur2 = conn.execute(INSERT, params)
        result.inserted = cur2.rowcount
        result.unchanged = len(rows) - result.inserted
        if level == "commune":
            set_provenance(conn, actor or "load:admin", path.name)
            result.trees_moved = conn.execute(REASSIGN_TREES).rowcount
    return result
