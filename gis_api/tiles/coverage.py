"""Which tiles of an area can hold features of each tiled collection: an export's plan.

Most tile addresses of a province at high zoom hold no tree or no stand; asking PostGIS for
their (empty) tiles would be most of an export's time. Before rendering, the export reads where
the features are, as lon/lat boxes (the trees gathered into small cells, the bounding boxes of
stands and communes), and marks, zoom by zoom, the tiles each box reaches with the tile's edge
buffer around it (``render.BUFFER`` units, plus one for ``ST_AsMVTGeom``'s rounding). A tile
not marked for a collection is known to be empty for it and is not rendered; a marked one may
still turn out empty (a box is wider than its polygon) and is then left out of the archive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import NamedTuple

import numpy as np
from psycopg import AsyncConnection, sql

from gis_api.tiles.layers import TileCollection
from gis_api.tiles.render import BUFFER, EXTENT

CELL_LEVEL = 17  # the finest zoom the tree cells are read at (smarttrees.tree_grid's level)
BUFFER_REACH = (BUFFER + 1) / EXTENT  # how far beyond its edge a tile shows a feature, in tiles
MERCATOR_LAT = 85.05112878  # WebMercatorQuad covers latitudes up to here
LL_EPSILON = 1e-11  # morecantile's: a box on a tile edge belongs to the tile inside it


class Bounds(NamedTuple):
    """A lon/lat bounding box (EPSG:4326 degrees)."""

    west: float
    south: float
    east: float
    north: float


class TileRange(NamedTuple):
    """The tiles of one zoom over an area: columns ``x0..x1`` and rows ``y0..y1``, inclusive."""

    z: int
    x0: int
    x1: int
    y0: int
    y1: int

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns): the shape of a mask over the range."""
        return self.y1 - self.y0 + 1, self.x1 - self.x0 + 1


def _columns(lon: np.ndarray, z: int) -> np.ndarray:
    """Fractional WebMercatorQuad tile columns of longitudes (``floor``: morecantile's x)."""
    return (lon + 180.0) / 360.0 * (1 << z)


def _rows(lat: np.ndarray, z: int) -> np.ndarray:
    """Fractional WebMercatorQuad tile rows of latitudes (``floor``: morecantile's y)."""
    phi = np.radians(np.clip(lat, -MERCATOR_LAT, MERCATOR_LAT))
    return (1.0 - np.arcsinh(np.tan(phi)) / np.pi) / 2.0 * (1 << z)


def tile_range(bounds: Bounds, z: int, reach: float = 0.0) -> TileRange:
    """The tiles of zoom ``z`` that ``bounds`` comes within ``reach`` tiles of.

    With ``reach`` 0, the tiles the box overlaps (morecantile's ``tiles()``; a tile's own
    bounds: that one tile); an export asks for ``BUFFER_REACH``, so that the tiles just
    outside the area, whose edge buffer shows a feature at its edge, are made too.
    """
    n = 1 << z
    edge = LL_EPSILON if reach == 0 else -reach
    lons, lats = np.array([bounds.west, bounds.east]), np.array([bounds.north, bounds.south])
    cols, rows = _columns(lons, z), _rows(lats, z)
    x0, x1 = np.floor(cols[0] + edge), np.floor(cols[1] - edge)
    y0, y1 = np.floor(rows[0] + edge), np.floor(rows[1] - edge)

    def clip(v: float) -> int:
        return int(min(max(v, 0), n - 1))

    return TileRange(z, clip(x0), clip(max(x0, x1)), clip(y0), clip(max(y0, y1)))


@dataclass(frozen=True)
class ZoomCoverage:
    """The tiles of one zoom of the area that each collection's features may reach.

    Attributes
    ----------
    range
        The area's tiles at this zoom.
    masks
        Per collection id, a boolean array of ``range.shape`` (row ``y - y0``, column
        ``x - x0``): True where the collection's tile may hold a feature.

    """

    range: TileRange
    masks: dict[str, np.ndarray]

    def any(self) -> np.ndarray:
        """True where some collection may have a feature."""
        return np.logical_or.reduce(list(self.masks.values()))

    def collections_at(self, x: int, y: int) -> list[str]:
        """The collections to render at tile column ``x``, row ``y``."""
        r, c = y - self.range.y0, x - self.range.x0
        return [cid for cid, mask in self.masks.items() if mask[r, c]]


def boxes_mask(r: TileRange, boxes: np.ndarray) -> np.ndarray:
    """Tiles of ``r`` that one of the boxes (rows of west, south, east, north) reaches.

    A box reaches a tile when it comes within the tile's edge buffer. The boxes' tile ranges
    are summed into a 2-D difference array: a few array operations whatever their number.
    """
    rows, cols = r.shape
    if len(boxes) == 0:
        return np.zeros(r.shape, dtype=bool)
    reach = BUFFER_REACH
    x0 = np.floor(_columns(boxes[:, 0], r.z) - reach).astype(np.int64) - r.x0
    x1 = np.floor(_columns(boxes[:, 2], r.z) + reach).astype(np.int64) - r.x0
    y0 = np.floor(_rows(boxes[:, 3], r.z) - reach).astype(np.int64) - r.y0
    y1 = np.floor(_rows(boxes[:, 1], r.z) + reach).astype(np.int64) - r.y0
    x0, y0 = np.maximum(x0, 0), np.maximum(y0, 0)
    x1, y1 = np.minimum(x1, cols - 1), np.minimum(y1, rows - 1)
    keep = (x0 <= x1) & (y0 <= y1)
    x0, x1, y0, y1 = x0[keep], x1[keep], y0[keep], y1[keep]
    diff = np.zeros((rows + 1, cols + 1), dtype=np.int64)
    np.add.at(diff, (y0, x0), 1)
    np.add.at(diff, (y0, x1 + 1), -1)
    np.add.at(diff, (y1 + 1, x0), -1)
    np.add.at(diff, (y1 + 1, x1 + 1), 1)
    return diff.cumsum(axis=0).cumsum(axis=1)[:rows, :cols] > 0


@cache
def _sql_text(name: str) -> str:
    return resources.files("gis_api").joinpath(f"sql/{name}.sql").read_text(encoding="utf-8")


async def _tree_cells(conn: AsyncConnection, bounds: Bounds, level: int) -> np.ndarray:
    params = {"level": level, **bounds._asdict()}
    cur = await conn.execute(_sql_text("tiles_archive_tree_cells"), params)
    return np.array(await cur.fetchall(), dtype=np.float64).reshape(-1, 4)


async def _boxes(conn: AsyncConnection, table: str, bounds: Bounds) -> np.ndarray:
    query = sql.SQL(_sql_text("tiles_archive_boxes")).format(table=sql.Identifier(table))
    cur = await conn.execute(query, bounds._asdict())
    return np.array(await cur.fetchall(), dtype=np.float64).reshape(-1, 4)


async def coverage(
    conn: AsyncConnection,
    collections: Sequence[TileCollection],
    bounds: Bounds,
    minzoom: int,
    maxzoom: int,
) -> list[ZoomCoverage]:
    """Per zoom from ``minzoom`` to ``maxzoom``, where each collection's features may be.

    The trees are read as the boxes of their cells at ``min(maxzoom, CELL_LEVEL)``, the other
    collections as the bounding boxes of their features (a few thousand).
    """
    level = min(maxzoom, CELL_LEVEL)
    # Read a little beyond the area: a feature just outside it is drawn in an edge tile's buffer.
    margin = 360 / (1 << minzoom) * BUFFER_REACH
    wide = Bounds(
        max(bounds.west - margin, -180),
        max(bounds.south - margin, -90),
        min(bounds.east + margin, 180),
        min(bounds.north + margin, 90),
    )
    boxes: dict[str, np.ndarray] = {}
    for collection in collections:
        if collection.versioned:
            boxes[collection.id] = await _tree_cells(conn, wide, level)
        else:
            boxes[collection.id] = await _boxes(conn, collection.table, wide)
    zooms = []
    for z in range(minzoom, maxzoom + 1):
        r = tile_range(bounds, z, BUFFER_REACH)
        zooms.append(ZoomCoverage(r, {cid: boxes_mask(r, b) for cid, b in boxes.items()}))
    return zooms
