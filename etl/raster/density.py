"""Surfaces made from the inventory: trees per hectare, and canopy cover.

Trees are streamed from PostGIS in projected chunks (:mod:`etl.raster.points`) and counted into
the territory's grid with ``np.add.at``, so only the grid itself is held in memory (a float32
cell each: 490 MB for the full province at 10 m). Cells outside the communes that hold no tree
are nodata; every counted tree stays in the surface, so the sum of density × cell area is the
number of trees counted.

Canopy cover adds each tree's crown area, π (crown/2)², to the cell holding its trunk, as a
percentage of the cell, capped at 100 %. A tree without a measured crown takes its species'
default: the median crown of the trees of that species that have one (at least
:data:`MIN_MEASURED` of them), else the median of all measured crowns, else
:data:`FALLBACK_CROWN_M`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from rasterio.features import rasterize

from etl.raster.cog import write_cog
from etl.raster.errors import RasterError
from etl.raster.grid import PROVINCE_CRS, Territory, territory
from etl.raster.points import estimated_trees, tree_chunks
from smarttrees.domain import fold

Progress = Callable[[str, int, int], None]
NODATA = -9999.0
CATEGORIES = ("urban", "scattered", "plantation")
MIN_MEASURED = 5
FALLBACK_CROWN_M = 5.0  # a mid-sized tropical street or plantation tree
BINCOUNT_CELLS = 4_000_000  # grids up to 32 MB of float64 temporaries are counted by bincount


@dataclass(frozen=True)
class TreeFilter:
    """Which trees a surface counts: categories and species (empty = all)."""

    categories: tuple[str, ...] = ()
    species: tuple[str, ...] = ()


@dataclass
class SurfaceReport:
    """What a surface job wrote."""

    path: Path
    surface: str  # "density" or "canopy"
    resolution: float
    width: int
    height: int
    territory: str  # "communes" or "trees"
    trees: int  # trees counted into the surface
    outside: int  # trees matching the filter but outside the territory's grid
    crown_defaults_used: int = 0
    crown_defaults: dict[str, float] = field(default_factory=dict)


def species_ids(conn: psycopg.Connection, names: Sequence[str]) -> list[int]:
    """Species ids for ids, scientific names or Vietnamese names (diacritics optional).

    Raises
    ------
    RasterError
        Naming ``--species`` and the value that matches no species.

    """
    ids: list[int] = []
    for name in names:
        row = conn.execute(
            "SELECT id FROM smarttrees.species WHERE id::text = %(n)s "
            "OR lower(scientific_name) = lower(%(n)s) OR vietnamese_ascii = %(f)s "
            "ORDER BY id LIMIT 1",
            {"n": name.strip(), "f": fold(name)},
        ).fetchone()
        if row is None:
            raise RasterError("--species", f"{name!r} is not in the species catalogue")
        ids.append(int(row[0]))
    return ids


def filter_sql(conn: psycopg.Connection, trees: TreeFilter) -> sql.Composable:
    """The boolean SQL expression on ``trees t`` that ``trees`` describes."""
    for category in trees.categories:
        if category not in CATEGORIES:
            raise RasterError(
                "--category", f"{category!r} is not one of {', '.join(CATEGORIES)}"
            )
    clauses: list[sql.Composable] = [sql.SQL("t.geom IS NOT NULL")]
    if trees.categories:
        clauses.append(sql.SQL("t.category = ANY({})").format(sql.Literal(list(trees.categories))))
    if trees.species:
        ids = species_ids(conn, trees.species)
        clauses.append(sql.SQL("t.species_id = ANY({})").format(sql.Literal(ids)))
    return sql.SQL(" AND ").join(clauses)


def _count(conn: psycopg.Connection, where: sql.Composable) -> int:
    query = sql.SQL("SELECT count(*) FROM smarttrees.trees t WHERE {}").format(where)
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _accumulate(
    conn: psycopg.Connection,
    area: Territory,
    where: sql.Composable,
    value: sql.Composable | None,
    progress: Progress | None,
) -> tuple[np.ndarray, int, int]:
    """Sum 1 (or ``value``) per tree into the grid; (grid, trees counted, trees outside)."""
    grid = area.grid
    total = estimated_trees(conn, where) if progress else 0  # a count would scan the trees
    cells = np.zeros((grid.height, grid.width), dtype=np.float32)
    flat = cells.reshape(-1)  # a view: adding into it fills ``cells``
    counted = seen = 0
    if progress:
        progress("trees", 0, total)
    for chunk in tree_chunks(conn, grid.crs, where, value):
        col = np.floor((chunk.x - grid.west) / grid.resolution).astype(np.int64)
        row = np.floor((grid.north - chunk.y) / grid.resolution).astype(np.int64)
        inside = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)
        index = row[inside] * grid.width + col[inside]
        _add(flat, index, None if chunk.values is None else chunk.values[inside])
        counted += int(inside.sum())
        seen += len(col)
        if progress:
            progress("trees", seen, max(total, seen))
    return cells, counted, seen - counted


def _add(flat: np.ndarray, index: np.ndarray, weights: np.ndarray | None) -> None:
    """Add 1 (or ``weights``) at each ``index`` of ``flat``, a tree falling in a cell at a time.

    ``np.bincount`` over the whole grid is several times faster than ``np.add.at`` but makes a
    float64 grid-sized temporary: it is used while the grid is small next to the chunk.
    """
    if flat.size <= BINCOUNT_CELLS:
        flat += np.bincount(index, weights, minlength=flat.size).astype(np.float32)
    else:
        np.add.at(flat, index, 1.0 if weights is None else weights.astype(np.float32))


STRIP_ROWS = 512  # rows finished at a time: temporaries stay small and in cache


def _finish(cells: np.ndarray, area: Territory, scale: float, cap: float | None = None) -> None:
    """Scale the sums into the surface's unit and set nodata, in place, strip by strip.

    A cell becomes nodata when it lies outside every commune (its centre, or any part of it:
    ``all_touched``) and holds nothing, so every counted tree stays in the surface.
    """
    grid = area.grid
    inside = None
    if area.outline is not None:
        inside = rasterize(
            [area.outline],
            out_shape=(grid.height, grid.width),
            transform=grid.transform,
            fill=0,
            default_value=1,
            dtype="uint8",
            all_touched=True,
        )
    factor = np.float32(scale)
    for top in range(0, grid.height, STRIP_ROWS):
        strip = cells[top : top + STRIP_ROWS]
        np.multiply(strip, factor, out=strip)
        if cap is not None:
            np.minimum(strip, np.float32(cap), out=strip)
        if inside is not None:
            empty_outside = (inside[top : top + STRIP_ROWS] == 0) & (strip == 0)
            np.putmask(strip, empty_outside, np.float32(NODATA))


def _tags(surface: str, trees: TreeFilter, report: SurfaceReport) -> dict[str, str]:
    return {
        "SMARTTREES_SURFACE": surface,
        "SMARTTREES_TREES": str(report.trees),
        "SMARTTREES_CATEGORY": ",".join(trees.categories) or "all",
        "SMARTTREES_SPECIES": ",".join(trees.species) or "all",
        "SMARTTREES_TERRITORY": report.territory,
    }


def density_surface(
    conn: psycopg.Connection,
    resolution: float,
    target: Path,
    trees: TreeFilter = TreeFilter(),
    progress: Progress | None = None,
) -> SurfaceReport:
    """Write trees per hectare over the territory as a COG at ``target``.

    Parameters
    ----------
    conn:
        An open connection.
    resolution:
        Cell side in metres (10, 30 or 100 are the usual).
    target:
        The ``.tif`` to write (replaced atomically).
    trees:
        Which trees to count.
    progress:
        Called as ``progress(step, done, total)``.

    """
    where = filter_sql(conn, trees)
    area = territory(conn, resolution, PROVINCE_CRS)
    cells, counted, outside = _accumulate(conn, area, where, None, progress)
    _finish(cells, area, 1.0 / area.grid.cell_area_ha)  # trees per hectare
    grid = area.grid
    report = SurfaceReport(
        Path(target), "density", resolution, grid.width, grid.height, area.source, counted, outside
    )
    if progress:
        progress("writing the COG", 0, 1)
    write_cog(
        cells,
        grid,
        Path(target),
        nodata=NODATA,
        tags=_tags("density", trees, report),
        band_tags={"units": "trees/ha"},
        description="tree density (trees per hectare)",
    )
    if progress:
        progress("writing the COG", 1, 1)
    return report


def crown_defaults(conn: psycopg.Connection) -> tuple[dict[int, float], float]:
    """Default crown diameter (m) per species id, and the default for the rest."""
    overall = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY crown_m) FROM smarttrees.trees "
        "WHERE crown_m IS NOT NULL"
    ).fetchone()
    fallback = float(overall[0]) if overall and overall[0] is not None else FALLBACK_CROWN_M
    rows = conn.execute(
        "SELECT species_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY crown_m) "
        "FROM smarttrees.trees WHERE crown_m IS NOT NULL AND species_id IS NOT NULL "
        "GROUP BY species_id HAVING count(*) >= %s",
        (MIN_MEASURED,),
    ).fetchall()
    return {int(r[0]): float(r[1]) for r in rows}, fallback


def _crown_expression(defaults: dict[int, float], fallback: float) -> sql.Composable:
    """Crown area (m²) of tree ``t``: measured crown, else its species' default."""
    cases = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(k), sql.Literal(v))
        for k, v in sorted(defaults.items())
    )
    default = (
        sql.SQL("CASE t.species_id {} ELSE {} END").format(cases, sql.Literal(fallback))
        if defaults
        else sql.Literal(fallback)
    )
    return sql.SQL("pi() * power(COALESCE(t.crown_m::float8, {}) / 2.0, 2)").format(default)


def canopy_surface(
    conn: psycopg.Connection,
    resolution: float,
    target: Path,
    trees: TreeFilter = TreeFilter(),
    progress: Progress | None = None,
) -> SurfaceReport:
    """Write canopy cover (percent of each cell under crowns) as a COG at ``target``.

    Parameters are those of :func:`density_surface`.
    """
    where = filter_sql(conn, trees)
    area = territory(conn, resolution, PROVINCE_CRS)
    defaults, fallback = crown_defaults(conn)
    missing = _count(conn, sql.SQL("{} AND t.crown_m IS NULL").format(where))
    cells, counted, outside = _accumulate(
        conn, area, where, _crown_expression(defaults, fallback), progress
    )
    _finish(cells, area, 100.0 / area.grid.resolution**2, cap=100.0)  # percent of the cell
    grid = area.grid
    report = SurfaceReport(
        Path(target), "canopy", resolution, grid.width, grid.height, area.source, counted,
        outside, crown_defaults_used=missing,
    )
    names: dict[int, str] = dict(
        conn.execute("SELECT id, scientific_name FROM smarttrees.species").fetchall()
    )
    report.crown_defaults = {names.get(k, str(k)): v for k, v in defaults.items()}
    report.crown_defaults["(other species)"] = fallback
    write_cog(
        cells,
        grid,
        Path(target),
        nodata=NODATA,
        tags=_tags("canopy", trees, report),
        band_tags={"units": "percent"},
        description="canopy cover (percent of the cell under tree crowns)",
    )
    return report
