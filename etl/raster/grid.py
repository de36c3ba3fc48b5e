"""The territory's grid: cells of a chosen size in the province's metric CRS.

Surfaces made from the inventory cover the communes in force (their extent, snapped outwards to
whole cells) or, when no commune is loaded, the trees' extent. They are laid out in VN-2000 /
TM-3 106°30' (EPSG:9213), the province's survey grid, whose metres make "trees per hectare" a
plain division.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import psycopg
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.crs import CRS as RioCRS
from shapely.geometry.base import BaseGeometry

from etl.raster.errors import RasterError

PROVINCE_CRS = CRS.from_epsg(9213)  # VN-2000 / TM-3 106°30', the province's grid
MAX_CELLS = 400_000_000  # a float32 surface of this size is 1.6 GB: refuse rather than swap


@dataclass(frozen=True)
class Grid:
    """A north-up grid of square cells.

    Attributes
    ----------
    crs:
        The grid's CRS (metric).
    west, north:
        Coordinates of the top-left corner, in the CRS's units (metres).
    resolution:
        Side of a cell, in metres.
    width, height:
        Columns and rows.

    """

    crs: CRS
    west: float
    north: float
    resolution: float
    width: int
    height: int

    @property
    def transform(self) -> Affine:
        """The affine transform from (column, row) to (x, y)."""
        return Affine(self.resolution, 0.0, self.west, 0.0, -self.resolution, self.north)

    @property
    def cell_area_ha(self) -> float:
        """Area of one cell in hectares."""
        return self.resolution * self.resolution / 10_000.0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(west, south, east, north) in the grid's CRS."""
        return (
            self.west,
            self.north - self.height * self.resolution,
            self.west + self.width * self.resolution,
            self.north,
        )

    @property
    def rio_crs(self) -> RioCRS:
        """The CRS as rasterio wants it."""
        return RioCRS.from_wkt(self.crs.to_wkt())


@dataclass(frozen=True)
class Territory:
    """What a surface covers: its grid, and the communes' outline in the grid's CRS (if any)."""

    grid: Grid
    outline: BaseGeometry | None
    source: str  # "communes" or "trees", for the report


def snapped_grid(bounds: tuple[float, float, float, float], resolution: float, crs: CRS) -> Grid:
    """The grid of ``resolution`` metres whose whole cells cover ``bounds``.

    A point exactly on the east or south edge of ``bounds`` still falls inside a cell.
    """
    if not resolution > 0:
        raise RasterError("--resolution", f"must be a positive number of metres, not {resolution}")
    west = math.floor(bounds[0] / resolution) * resolution
    north = math.ceil(bounds[3] / resolution) * resolution
    width = int(math.floor((bounds[2] - west) / resolution)) + 1
    height = int(math.floor((north - bounds[1]) / resolution)) + 1
    if width * height > MAX_CELLS:
        raise RasterError(
            "--resolution",
            f"{resolution:g} m gives {width:,} × {height:,} cells over the territory, more than "
            f"{MAX_CELLS:,}; choose a coarser resolution",
        )
    return Grid(crs, west, north, float(resolution), width, height)


def _to_crs(crs: CRS) -> Transformer:
    return Transformer.from_crs(4326, crs, always_xy=True)


def communes_outline(conn: psycopg.Connection, crs: CRS) -> BaseGeometry | None:
    """The union of the communes in force, reprojected to ``crs``; None when none is loaded."""
    rows = conn.execute(
        "SELECT ST_AsBinary(geom) FROM smarttrees.communes WHERE geom IS NOT NULL"
    ).fetchall()
    if not rows:
        return None
    geoms = shapely.from_wkb([row[0] for row in rows])
    transformer = _to_crs(crs)
    projected = shapely.transform(geoms, lambda xy: _transform_xy(transformer, xy))
    return shapely.union_all(shapely.make_valid(projected))


def _transform_xy(transformer: Transformer, xy: np.ndarray) -> np.ndarray:
    x, y = transformer.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def trees_bounds(conn: psycopg.Connection, crs: CRS) -> tuple[float, float, float, float] | None:
    """The trees' extent in ``crs`` (from their lon/lat extent, densified edges); None if none."""
    row = conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom)::geometry AS e FROM smarttrees.trees) s"
    ).fetchone()
    if row is None or row[0] is None:
        return None
    west, south, east, north = (float(v) for v in row)
    return _to_crs(crs).transform_bounds(west, south, east, north, densify_pts=21)


def territory(conn: psycopg.Connection, resolution: float, crs: CRS = PROVINCE_CRS) -> Territory:
    """The grid over the communes in force, else over the trees' extent.

    Raises
    ------
    RasterError
        When neither communes nor trees are loaded.

    """
    outline = communes_outline(conn, crs)
    if outline is not None and not outline.is_empty:
        return Territory(snapped_grid(outline.bounds, resolution, crs), outline, "communes")
    bounds = trees_bounds(conn, crs)
    if bounds is None:
        raise RasterError(
            "database", "no communes and no trees are loaded: there is no territory to cover"
        )
    return Territory(snapped_grid(bounds, resolution, crs), None, "trees")
