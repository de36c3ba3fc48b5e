"""Large zones cut at raster tiles: whole tiles inside a zone summed with numpy, edges exactly.

exactextract spends most of a large zone's time on cells far from its edge: it fills the
coverage of every cell of the zone's box and weighs each covered cell one by one. A commune of
a 10 m raster holds a million cells, nearly all wholly inside it. So a zone whose box spans at
least ``SPLIT_MIN_TILES`` tiles of ``TILE`` × ``TILE`` cells (aligned to the raster's grid) is
cut into

* the tiles wholly inside it: every valid cell weighs 1, so their count, sum, extremes and sum
  of squared deviations are plain numpy reductions of the tile's values;
* pieces: the zone clipped to each tile its edge crosses, given to exactextract like any zone.
  Tile edges are cell edges, so each cell lies in one piece with the coverage it has in the
  whole zone.

The parts' figures are then pooled per zone (Chan's formula for the spread), giving the same
count, sum, mean, min, max and weighted standard deviation as exactextract over the whole zone,
up to the order of floating-point additions. Only statistics that pool this way are cut;
``majority`` and class shares need the cells themselves and are left to whole zones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from rasterio.transform import Affine

if TYPE_CHECKING:
    import pandas as pd

TILE = 128  # cells on a side of a tile
SPLIT_MIN_TILES = 16  # a zone whose box spans fewer tiles is left whole
POOLED_OPS = frozenset({"count", "sum", "mean", "min", "max", "stdev"})  # exactextract's names
ZONE_INDEX = "zone_index"  # the column naming each row's zone


@dataclass(frozen=True)
class Split:
    """Zones as exactextract pieces and numpy tiles, each part naming its zone (``owner``)."""

    pieces: list[bytes]  # WKB of each piece (a whole small zone is one piece)
    piece_owner: np.ndarray
    tiles: np.ndarray  # (row, col) of each tile's top-left cell, shape (n, 2)
    tile_owner: np.ndarray


def piece_ops(ops: Sequence[str]) -> list[str]:
    """What exactextract is asked of each piece: count and sum, and the rest only if needed."""
    return ["count", "sum", *(op for op in ("min", "max", "stdev") if op in ops)]


def can_split(ops: Sequence[str], transform: Affine) -> bool:
    """True when every statistic asked for pools from parts, on a north-up raster grid."""
    north_up = transform.b == transform.d == 0 and transform.a > 0 > transform.e
    return north_up and all(op in POOLED_OPS for op in ops)


def _polygonal(geom: Any) -> Any:
    """The polygons of a clipped piece, or None (a clip can add lines where edges touch)."""
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return None if geom.is_empty else geom
    polygons = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    return shapely.MultiPolygon(polygons) if polygons else None


def _runs(rows: np.ndarray, cols: np.ndarray, transform: Affine) -> np.ndarray:
    """Boxes of the runs of side-by-side tiles in each tile row (tiles given row by row).

    One piece per run rather than per tile: every cut is an edge exactextract must trace cell
    by cell, so fewer cuts are less work.
    """
    start = np.ones(len(rows), dtype=bool)
    start[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1] + TILE)
    first = np.flatnonzero(start)
    last = np.append(first[1:], len(rows)) - 1
    west, north = transform @ (cols[first], rows[first])
    east, south = transform @ (cols[last] + TILE, rows[first] + TILE)
    return shapely.box(west, south, east, north)


def split_zones(
    geometries: Any, wkbs: Sequence[bytes], indices: Sequence[int], transform: Affine,
    width: int, height: int,
) -> Split | None:
    """Cut the large zones among ``geometries`` (in the raster's CRS) at the raster's tiles.

    ``wkbs`` are the zones as WKB (kept as they are for the zones left whole). Only tiles wholly
    within the raster are summed with numpy; any other stays in the pieces, where exactextract
    leaves out what lies beyond the raster. None when no zone is large enough to cut.
    """
    rows, cols = height // TILE, width // TILE  # tiles wholly inside the raster
    bounds = shapely.bounds(geometries)
    inverse = ~transform
    c0, r0 = inverse @ (bounds[:, 0], bounds[:, 3])
    c1, r1 = inverse @ (bounds[:, 2], bounds[:, 1])
    first_c = np.maximum(0, np.floor_divide(c0, TILE)).astype(np.int64)
    first_r = np.maximum(0, np.floor_divide(r0, TILE)).astype(np.int64)
    last_c = np.minimum(cols - 1, np.floor_divide(c1, TILE)).astype(np.int64)
    last_r = np.minimum(rows - 1, np.floor_divide(r1, TILE)).astype(np.int64)
    spanned = np.maximum(last_c - first_c + 1, 0) * np.maximum(last_r - first_r + 1, 0)
    large = spanned >= SPLIT_MIN_TILES
    if not large.any():
        return None
    pieces: list[bytes] = [bytes(w) for w, big in zip(wkbs, large, strict=True) if not big]
    piece_owner: list[int] = [i for i, big in zip(indices, large, strict=True) if not big]
    tiles: list[tuple[int, int]] = []
    tile_owner: list[int] = []
    for k in np.flatnonzero(large):
        geom, owner = geometries[k], int(indices[int(k)])
        tc0, tr0, tc1, tr1 = first_c[k], first_r[k], last_c[k], last_r[k]
        grid_r, grid_c = np.mgrid[tr0:tr1 + 1, tc0:tc1 + 1]
        grid_r, grid_c = grid_r.ravel() * TILE, grid_c.ravel() * TILE
        west, north = transform @ (grid_c, grid_r)
        east, south = transform @ (grid_c + TILE, grid_r + TILE)
        boxes = shapely.box(west, np.minimum(south, north), east, np.maximum(south, north))
        shapely.prepare(geom)
        inside = shapely.contains_properly(geom, boxes)
        tiles += zip(grid_r[inside].tolist(), grid_c[inside].tolist(), strict=True)
        tile_owner += [owner] * int(inside.sum())
        # The rest: the zone clipped to each other tile of its box it meets (one piece per tile
        # keeps each piece's box small), and whatever of it lies beyond those tiles.
        edge = ~inside & shapely.intersects(geom, boxes)
        for clipped in shapely.intersection(geom, _runs(grid_r[edge], grid_c[edge], transform)):
            piece = _polygonal(clipped)
            if piece is not None:
                pieces.append(shapely.to_wkb(piece))
                piece_owner.append(owner)
        grid = shapely.box(*(transform @ (tc0 * TILE, (tr1 + 1) * TILE)),
                           *(transform @ ((tc1 + 1) * TILE, tr0 * TILE)))
        if not shapely.contains(grid, geom):  # near the raster's edge
            beyond = _polygonal(shapely.difference(geom, grid))
            if beyond is not None:
                pieces.append(shapely.to_wkb(beyond))
                piece_owner.append(owner)
    return Split(
        pieces,
        np.asarray(piece_owner, dtype=np.int64),
        np.asarray(tiles, dtype=np.int64).reshape(-1, 2),
        np.asarray(tile_owner, dtype=np.int64),
    )


def tile_figures(
    values: np.ndarray, origin: tuple[int, int], nodata: float | None, tiles: np.ndarray
) -> np.ndarray:
    """Count, sum, min, max and sum of squared deviations of each tile's valid cells.

    ``values`` is the window of the band whose top-left cell is ``origin`` (row, column) of the
    raster. A cell is valid when it is neither ``nodata`` nor NaN, as in exactextract. A tile
    without valid cells gives (0, 0, NaN, NaN, 0).
    """
    out = np.empty((len(tiles), 5))
    missing = None if nodata is None else values.dtype.type(nodata)
    for i, (row, col) in enumerate(tiles - np.asarray(origin)):
        tile = values[row:row + TILE, col:col + TILE]
        valid = ~np.isnan(tile) if tile.dtype.kind == "f" else np.ones(tile.shape, bool)
        if missing is not None:
            valid &= tile != missing
        # A tile with every cell valid (most of a zone's inside) is summed as it is.
        cells = tile.astype(np.float64) if valid.all() else tile[valid].astype(np.float64)
        if cells.size == 0:
            out[i] = (0.0, 0.0, np.nan, np.nan, 0.0)
            continue
        total = float(cells.sum())
        spread = float(np.square(cells - total / cells.size).sum())
        out[i] = (cells.size, total, cells.min(), cells.max(), spread)
    return out


def pool(
    zones: Sequence[int], pieces: pd.DataFrame, piece_owner: np.ndarray,
    tiles: np.ndarray, tile_owner: np.ndarray, ops: Sequence[str],
) -> pd.DataFrame:
    """Each zone's ``ops`` from its pieces' exactextract figures and its tiles' figures.

    ``pieces`` has exactextract's :func:`piece_ops` per piece, in the order of
    ``piece_owner``; rows come back in the order of ``zones``, with their ``ZONE_INDEX``.
    """
    import pandas as pd

    def column(name: str, tile_column: int) -> np.ndarray:
        if name not in pieces:  # not asked for: not computed
            return np.full(len(pieces) + len(tiles), np.nan)
        return np.concatenate([pieces[name].to_numpy(float), tiles[:, tile_column]])

    count, total = column("count", 0), column("sum", 1)
    low, high = column("min", 2), column("max", 3)
    stdev = pieces["stdev"].to_numpy(float) if "stdev" in pieces else np.zeros(len(pieces))
    spread = np.concatenate([count[: len(stdev)] * np.nan_to_num(stdev) ** 2, tiles[:, 4]])
    owner = np.concatenate([piece_owner, tile_owner])
    position = {zone: i for i, zone in enumerate(zones)}
    rows = np.array([position[o] for o in owner.tolist()], dtype=np.int64)
    n = len(zones)
    zone_count = np.bincount(rows, weights=count, minlength=n)
    zone_sum = np.bincount(rows, weights=total, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        zone_mean = np.where(zone_count > 0, zone_sum / zone_count, np.nan)
        part_mean = np.where(count > 0, total / count, 0.0)
        deviation = np.where(count > 0, count * (part_mean - zone_mean[rows]) ** 2, 0.0)
        zone_spread = np.bincount(rows, weights=spread + deviation, minlength=n)
        zone_stdev = np.where(zone_count > 0, np.sqrt(zone_spread / zone_count), np.nan)
    zone_min = np.full(n, np.inf)
    zone_max = np.full(n, -np.inf)
    has = count > 0
    np.minimum.at(zone_min, rows[has], low[has])
    np.maximum.at(zone_max, rows[has], high[has])
    empty = zone_count <= 0
    zone_min[empty] = zone_max[empty] = np.nan
    columns = {"count": zone_count, "sum": zone_sum, "mean": zone_mean, "min": zone_min,
               "max": zone_max, "stdev": zone_stdev}
    frame = pd.DataFrame({ZONE_INDEX: np.asarray(zones, dtype=np.int64)})
    for op in ops:
        frame[op] = columns[op]
    return frame
