"""The territory a deployment covers: data in the database, never a constant.

It is an explicitly loaded boundary when one is in force (``smarttrees load territory FILE``),
else the union of the administrative units in force (``smarttrees load admin …``, or the
synthetic province of ``smarttrees generate``). Migration ``0014_territory`` keeps the derived
outline in ``smarttrees.territory``, refreshed by triggers whenever units or boundaries change;
``0014_territory_rules`` makes the database refuse a tree, stand or nursery written outside it.

Every inside-the-territory check goes through this module, and each tests the real outline
prepared once (GEOS indexes its edges), never its bounding box:

- set-based checks in SQL use :func:`sql_inside` (about 2 µs a point); a few points may ask
  ``smarttrees.in_territory(lon, lat)``;
- checks on arrays in Python call :meth:`Territory.contains` (a prepared shapely outline,
  about 0.3 µs a point);
- a load whose points all fall outside gets :func:`all_outside` as its one-line explanation.

With no territory set, :func:`current` raises :class:`NoTerritoryError`, which says how to set
one: nothing guesses a territory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from smarttrees.errors import SmartTreesError
from smarttrees.settings import get_settings

HOW_TO_SET = (
    "load the administrative units in force (smarttrees load admin FILE --level commune "
    "--valid-from YYYY-MM-DD), or a boundary (smarttrees load territory FILE), or generate the "
    "demo province (smarttrees generate)"
)


class NoTerritoryError(SmartTreesError):
    """No territory is set: the message says how to set one."""

    rule = "no_territory"

    def __init__(self) -> None:
        super().__init__(f"no territory set: {HOW_TO_SET}")


Extent = tuple[float, float, float, float]


@dataclass(frozen=True)
class Territory:
    """The territory in force.

    Attributes
    ----------
    name:
        What people call it: the boundary's name, or the one province in force, or
        ``"N administrative units in force"``.
    origin:
        ``"boundary"`` (loaded with ``load territory``) or ``"admin_units"``.
    units:
        How many polygons (boundary) or units in force it was made of.
    geometry:
        The outline, EPSG:4326, prepared for fast point tests.

    """

    name: str
    origin: str
    units: int
    geometry: Any   # shapely MultiPolygon (shapely ships no precise stubs)

    @property
    def extent(self) -> Extent:
        """(west, south, east, north) in degrees."""
        xmin, ymin, xmax, ymax = shapely.bounds(self.geometry).tolist()
        return (xmin, ymin, xmax, ymax)

    def contains(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Boolean mask of the points (WGS 84 degrees) inside the territory; NaN is outside."""
        lon = np.asarray(lon, dtype="float64")
        lat = np.asarray(lat, dtype="float64")
        good = np.isfinite(lon) & np.isfinite(lat)
        found = np.zeros(len(lon), dtype=bool)
        xmin, ymin, xmax, ymax = self.extent
        near = np.flatnonzero(good & (lon >= xmin) & (lon <= xmax) & (lat >= ymin) & (lat <= ymax))
        if len(near):
            found[near] = shapely.intersects_xy(self.geometry, lon[near], lat[near])
        return found

    def describe(self) -> str:
        """``Thái Nguyên (92 administrative units in force; lon 105.52 to 106.30, …)``."""
        made_of = (f"{self.units} administrative unit(s) in force" if self.origin == "admin_units"
                   else f"boundary of {self.units} polygon(s)")
        return f"{self.name} ({made_of}; {extent_text(self.extent)})"


def extent_text(extent: Extent) -> str:
    """An extent in words: ``lon 105.250 to 106.450, lat 21.250 to 22.800``."""
    xmin, ymin, xmax, ymax = extent
    return f"lon {xmin:.3f} to {xmax:.3f}, lat {ymin:.3f} to {ymax:.3f}"


def find(conn: psycopg.Connection[Any]) -> Territory | None:
    """The territory in force, or ``None`` when none is set."""
    row = conn.execute(
        "SELECT name, origin, units, ST_AsBinary(geom) FROM smarttrees.territory").fetchone()
    if row is None:
        return None
    geometry = shapely.from_wkb(bytes(row[3]))
    shapely.prepare(geometry)
    return Territory(row[0], row[1], row[2], geometry)


def current(conn: psycopg.Connection[Any]) -> Territory:
    """The territory in force; raises :class:`NoTerritoryError` when none is set."""
    territory = find(conn)
    if territory is None:
        raise NoTerritoryError()
    return territory


def sql_inside(lon: sql.Composable, lat: sql.Composable) -> sql.Composable:
    """SQL that is true when the point (``lon``, ``lat`` expressions, degrees) is inside.

    The outline is an uncorrelated scalar subquery, evaluated once per statement: PostGIS then
    sees the same geometry in every row and prepares it once. (``smarttrees.in_territory``,
    for a few points, cannot be inlined with its subquery and costs 20 times more a point.)
    False when no territory is set.
    """
    return sql.SQL(
        "coalesce(ST_Intersects((SELECT geom FROM smarttrees.territory), "
        "ST_SetSRID(ST_MakePoint({}, {}), 4326)), false)").format(lon, lat)


def all_outside(territory: Territory, file: str, lon: np.ndarray,
                lat: np.ndarray) -> str | None:
    """One line when a file has positions and every one lies outside; else ``None``.

    The line names the territory and the file's own extent, so that a wrong file, a wrong CRS
    or a wrong territory shows at once, beside the rejects file that lists each row.
    """
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    good = np.isfinite(lon) & np.isfinite(lat)
    if not good.any() or territory.contains(lon[good], lat[good]).any():
        return None
    extent = (float(lon[good].min()), float(lat[good].min()),
              float(lon[good].max()), float(lat[good].max()))
    return outside_line(territory, file, int(good.sum()), extent)


def outside_line(territory: Territory, file: str, count: int, extent: Extent) -> str:
    """The line for a file whose ``count`` positions, spanning ``extent``, are all outside."""
    return (f"{file}: all {count:,} positions lie outside the territory "
            f"{territory.describe()}; the file's positions span {extent_text(extent)}")


def store_boundary(conn: psycopg.Connection[Any], polygons: list[bytes], *, name: str,
                   source: str) -> Territory:
    """Make the union of ``polygons`` (WKB, EPSG:4326) the territory; the last one is replaced.

    The replaced boundary is kept (``replaced_at``), like a closed unit version.
    """
    conn.execute("UPDATE smarttrees.territory_boundaries SET replaced_at = now() "
                 "WHERE replaced_at IS NULL")
    conn.execute(
        "INSERT INTO smarttrees.territory_boundaries (name, source, geom) "
        "SELECT %s, %s, ST_Multi(ST_CollectionExtract(ST_MakeValid(ST_Union(g)), 3)) "
        "FROM unnest(%s::bytea[]) AS w, LATERAL ST_SetSRID(ST_GeomFromWKB(w), 4326) AS g",
        (name, source, polygons))
    return current(conn)


def clear_boundary(conn: psycopg.Connection[Any]) -> Territory | None:
    """Retire the loaded boundary: the units in force (if any) are the territory again."""
    conn.execute("UPDATE smarttrees.territory_boundaries SET replaced_at = now() "
                 "WHERE replaced_at IS NULL")
    return find(conn)


# What the database accepts as a unit code whatever the scheme (migration 0014_territory).
SHORT_CODE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}"


def unit_code_problem(code: str, pattern: str | None = None) -> str | None:
    """Why ``code`` is not a unit code of the deployment's scheme, or ``None`` when it is.

    The scheme is ``SMARTTREES_UNIT_CODE_PATTERN`` (digits by default, as Vietnam's statistics
    codes are); any scheme stays within a short code of letters, digits, ``.``, ``_``, ``-``.
    """
    pattern = pattern or get_settings().unit_code_pattern
    if not re.fullmatch(pattern, code):
        return (f"unit code {code!r} does not follow the unit-code scheme {pattern} "
                "(SMARTTREES_UNIT_CODE_PATTERN)")
    if not re.fullmatch(SHORT_CODE, code):
        return (f"unit code {code!r} is not a short code (letters, digits, '.', '_', '-'; "
                "at most 32)")
    return None
