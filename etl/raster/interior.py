"""Large zones cut at raster tiles: whole tiles inside a zone summed with numpy, edges exactly.

exactextract spends most of a large zone's time on cells far from its edge: it fills the
coverage of every cell of the zone's box and weighs each covered cell one by one. A commune of
a 10 m raster holds a million cells, nearly all wholly inside it. So a zone whose box spans at
least ``SPLIT_MIN_TILES`` tiles of ``TILE`` × ``TILE`` cells (aligned to the raster's grid) is
cut into

* the tiles wholly inside it: every valid cell weighs 1, so their count, sum, extremes and sum
  of squared deviations are plain numpy reductions of the tile's values;
* pieces: the zone clipped to each run of tiles its edge crosses, narrowed to the columns its
  rings cross in that run, given to exactextract like any zone. Tile and column edges are cell
  edges, so each cell lies in one piece with the coverage it has in the whole zone;
* strips: the columns of a run left out of its piece on the side inside the zone, TILE × 1
  cells each, summed with numpy like the tiles (no ring crosses them, so every cell weighs 1).
  exactextract weighs every cell of a piece's box and traces every cut; narrowed, the
  communes' pieces hold 14 M cells of box instead of 21 M and 0.84 M of traced edge instead of
  1.07 M (bench/README.md, session 9).

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

TILE = 64  # cells on a side of a tile (measured: 128 weighs more edge cells, 32 costs more cuts)
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
    strips: np.ndarray  # (row, col) of the top cell of each strip (TILE × 1 cells) inside
    strip_owner: np.ndarray

    @property
    def inside_owner(self) -> np.ndarray:
        """The zone of each part summed with numpy: the tiles', then the strips'."""
        return np.concatenate([self.tile_owner, self.strip_owner])

    @property
    def has_inside(self) -> bool:
        """True when some cells are summed with numpy (tiles or strips)."""
        return bool(len(self.tiles) or len(self.strips))


def piece_ops(ops: Sequence[str]) -> list[str]:
    """What exactextract is asked of each piece: count and sum, and the rest only if needed."""
    return ["count", "sum", *(op for op in ("min", "max", "stdev") if op in ops)]


def can_split(ops: Sequence[str], transform: Affine) -> bool:
    """True when every statistic asked for pools from parts, on a north-up raster grid."""
    north_up = transform.b == transform.d == 0 and transform.a > 0 > transform.e
    return north_up and all(op in POOLED_OPS for op in ops)


def _polygons(clipped: np.ndarray) -> np.ndarray:
    """The polygonal pieces among ``clipped`` (a clip can add lines where edges touch)."""
    if not len(clipped):
        return clipped
    kind = shapely.get_type_id(clipped)
    polygonal = ((kind == 3) | (kind == 6)) & ~shapely.is_empty(clipped)
    mixed = [g for g in clipped[(kind == 7)] if not g.is_empty]  # geometry collections
    kept = [shapely.MultiPolygon(parts) for parts in (
        [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty]
        for g in mixed) if parts]
    return np.concatenate([clipped[polygonal], np.asarray(kept, dtype=object)])


def _runs(
    rows: np.ndarray, cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The runs of side-by-side tiles in each tile row (tiles given row by row, in cells).

    One piece per run rather than per tile: every cut is an edge exactextract must trace cell
    by cell, so fewer cuts are less work. Each run as its top row, first and end column; and
    the run of each tile.
    """
    start = np.ones(len(rows), dtype=bool)
    start[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1] + TILE)
    first = np.flatnonzero(start)
    last = np.append(first[1:], len(rows)) - 1
    return rows[first], cols[first], cols[last] + TILE, np.cumsum(start) - 1


def _narrowed(
    run: np.ndarray, west: np.ndarray, east: np.ndarray, col0: np.ndarray, col1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each run's columns narrowed to those the zone's rings cross: (first, end) column.

    exactextract weighs every cell of a piece's box and traces every cut; a run of edge tiles
    is mostly cells wholly inside or outside the zone, on either side of where the rings pass.
    ``run``, ``west`` and ``east`` give each stretch of ring in the runs (:func:`_edge_tiles`).
    The columns left out on each side hold no ring, so each side is wholly inside or wholly
    outside (:func:`split_zones` sums the inside ones with numpy, as strips of cells). The
    rings' extent is widened by 1e-6 of a cell before it is rounded out to cell edges, so
    rounding never puts a crossed cell outside.
    """
    low, high = np.full(len(col0), np.inf), np.full(len(col0), -np.inf)
    np.minimum.at(low, run, west)
    np.maximum.at(high, run, east)
    crossed = low <= high
    first = np.where(crossed, np.floor(np.where(crossed, low, 0) - 1e-6), col0)
    end = np.where(crossed, np.ceil(np.where(crossed, high, 0) + 1e-6), col1)
    first = np.clip(first, col0, col1).astype(np.int64)
    return first, np.clip(end, first, col1).astype(np.int64)


def _inside_strips(
    geom: Any, row: np.ndarray, col0: np.ndarray, col1: np.ndarray, transform: Affine
) -> np.ndarray:
    """(row, column) of each TILE × 1 strip of the sides ``col0``…``col1`` inside ``geom``.

    Each side holds no ring (:func:`_narrowed`), so its middle says whether it is inside.
    """
    wide = col1 > col0
    row, col0, col1 = row[wide], col0[wide], col1[wide]
    x, y = transform @ ((col0 + col1) / 2, row + TILE / 2)
    inside = shapely.contains_xy(geom, x, y)
    row, col0, width = row[inside], col0[inside], (col1 - col0)[inside]
    step = np.arange(int(width.sum())) - np.repeat(np.cumsum(width) - width, width)
    return np.column_stack([np.repeat(row, width), np.repeat(col0, width) + step])


def _edge_tiles(
    geom: Any, inverse: Affine
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, column) of every tile some ring of ``geom`` passes through, in tile units.

    With each, the columns (in cells) the ring spans in that tile: the western and eastern
    ends of the stretch of segment in it.

    Each segment is cut where it crosses a tile's side; the middle of each cut lies in a tile
    the segment passes through. A tile no ring passes through is wholly inside or wholly
    outside the zone (a ring lying on a tile's side leaves both tiles so); a ring closer to a
    tile's side than floating-point rounding (~1e-12 of a cell) can be put on either side,
    which moves a coverage by as little.
    """
    coords, ring = shapely.get_coordinates(
        shapely.get_rings(shapely.get_parts(geom)), return_index=True
    )
    cols, rows = inverse @ (coords[:, 0], coords[:, 1])
    u, v = np.asarray(cols) / TILE, np.asarray(rows) / TILE
    same = ring[1:] == ring[:-1]  # segments join points of one ring
    u0, v0, u1, v1 = u[:-1][same], v[:-1][same], u[1:][same], v[1:][same]
    n = len(u0)
    segment, along = [np.arange(n), np.arange(n)], [np.zeros(n), np.ones(n)]
    for a0, a1 in ((u0, u1), (v0, v1)):  # the tile sides each segment crosses
        first = np.floor(np.minimum(a0, a1)) + 1
        crossed = np.maximum(np.ceil(np.maximum(a0, a1)) - first, 0).astype(np.int64)
        which = np.repeat(np.arange(n), crossed)
        step = np.arange(len(which)) - np.repeat(np.cumsum(crossed) - crossed, crossed)
        segment.append(which)
        along.append((first[which] + step - a0[which]) / (a1[which] - a0[which]))
    seg, t = np.concatenate(segment), np.concatenate(along)
    order = np.lexsort((t, seg))
    seg, t = seg[order], t[order]
    keep = seg[1:] == seg[:-1]
    mid, seg = (t[1:][keep] + t[:-1][keep]) / 2, seg[1:][keep]
    tile_c = np.floor(u0[seg] + mid * (u1[seg] - u0[seg])).astype(np.int64)
    tile_r = np.floor(v0[seg] + mid * (v1[seg] - v0[seg])).astype(np.int64)
    ends = (u0[seg] + np.stack([t[:-1][keep], t[1:][keep]]) * (u1[seg] - u0[seg])) * TILE
    return tile_r, tile_c, ends.min(axis=0), ends.max(axis=0)


def split_zones(
    geometries: Any, wkbs: Sequence[bytes], indices: Sequence[int], transform: Affine,
    width: int, height: int,
) -> Split | None:
    """Cut the large zones among ``geometries`` (in the raster's CRS) at the raster's tiles.

    ``wkbs`` are the zones as WKB (kept as they are for the zones left whole). Only tiles wholly
    within the raster are summed with numpy; any other stays in the pieces, where exactextract
    leaves out what lies beyond the raster. A tile is inside a zone when no ring of the zone
    passes through it (:func:`_edge_tiles`) and its centre is in the zone. None when no zone
    is large enough to cut.
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
    whole: list[bytes] = [bytes(w) for w, big in zip(wkbs, large, strict=True) if not big]
    whole_owner: list[int] = [i for i, big in zip(indices, large, strict=True) if not big]
    pieces: list[np.ndarray] = []  # the cut zones' pieces, as geometries (WKB in one call)
    piece_owner: list[np.ndarray] = []
    tiles: list[np.ndarray] = []
    tile_owner: list[np.ndarray] = []
    strips: list[np.ndarray] = []
    strip_owner: list[np.ndarray] = []
    for k in np.flatnonzero(large):
        geom, owner = geometries[k], int(indices[int(k)])
        tc0, tr0, tc1, tr1 = first_c[k], first_r[k], last_c[k], last_r[k]
        edge = np.zeros((tr1 - tr0 + 1, tc1 - tc0 + 1), dtype=bool)
        er, ec, west, east = _edge_tiles(geom, inverse)
        met = (er >= tr0) & (er <= tr1) & (ec >= tc0) & (ec <= tc1)
        er, ec, west, east = er[met] - tr0, ec[met] - tc0, west[met], east[met]
        edge[er, ec] = True
        grid_r, grid_c = np.nonzero(~edge)  # inside or outside: the centre says which
        grid_r, grid_c = (grid_r + tr0) * TILE, (grid_c + tc0) * TILE
        x, y = transform @ (grid_c + TILE / 2, grid_r + TILE / 2)
        shapely.prepare(geom)
        inside = shapely.contains_xy(geom, x, y)
        tiles.append(np.column_stack([grid_r[inside], grid_c[inside]]))
        tile_owner.append(np.full(int(inside.sum()), owner, dtype=np.int64))
        # The rest: the zone clipped to each run of tiles its edge crosses (row by row),
        # narrowed to the columns its rings cross (the sides inside go to numpy as strips),
        # and whatever of it lies beyond those tiles.
        edge_r, edge_c = np.nonzero(edge)
        clips = []
        if len(edge_r):
            row, col0, col1, run_of = _runs((edge_r + tr0) * TILE, (edge_c + tc0) * TILE)
            runs = np.empty(edge.shape, dtype=np.int64)
            runs[edge_r, edge_c] = run_of
            first, end = _narrowed(runs[er, ec], west, east, col0, col1)
            west, north = transform @ (first, row)
            east, south = transform @ (end, row + TILE)
            clips = list(shapely.intersection(geom, shapely.box(west, south, east, north)))
            sides = _inside_strips(geom, np.concatenate([row, row]),
                                   np.concatenate([col0, end]),
                                   np.concatenate([first, col1]), transform)
            strips.append(sides)
            strip_owner.append(np.full(len(sides), owner, dtype=np.int64))
        grid = shapely.box(*(transform @ (tc0 * TILE, (tr1 + 1) * TILE)),
                           *(transform @ ((tc1 + 1) * TILE, tr0 * TILE)))
        if not shapely.contains(grid, geom):  # near the raster's edge
            clips.append(shapely.difference(geom, grid))
        polygons = _polygons(np.asarray(clips, dtype=object))
        pieces.append(polygons)
        piece_owner.append(np.full(len(polygons), owner, dtype=np.int64))
    cut: list[bytes] = [bytes(w) for w in shapely.to_wkb(np.concatenate(pieces))] if pieces else []
    return Split(
        whole + cut,
        np.concatenate([np.asarray(whole_owner, dtype=np.int64), *piece_owner]),
        np.concatenate(tiles).astype(np.int64).reshape(-1, 2),
        np.concatenate(tile_owner),
        np.concatenate([np.empty((0, 2), dtype=np.int64), *strips]).astype(np.int64),
        np.concatenate([np.empty(0, dtype=np.int64), *strip_owner]),
    )


CELLS_AT_ONCE = 1 << 18  # cells of the tiles gathered per numpy pass (held in a core's cache)


def _sum_spread(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each tile's sum and sum of squared deviations from its mean (one tile per row)."""
    x = cells.astype(np.float64)  # as exactextract's accumulators
    total = x.sum(axis=1)
    np.subtract(x, (total / cells.shape[1])[:, None], out=x)
    return total, np.einsum("ij,ij->i", x, x)


def _masked_figures(cells: np.ndarray, missing: Any) -> np.ndarray:
    """Count, sum, min, max and spread of tiles with NaN or nodata cells, over valid cells."""
    x = cells.astype(np.float64)
    valid = ~np.isnan(x)
    if missing is not None:
        valid &= cells != missing
    count = valid.sum(axis=1).astype(np.float64)
    total = np.where(valid, x, 0.0).sum(axis=1)
    low = np.where(valid, x, np.inf).min(axis=1)
    high = np.where(valid, x, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        deviation = np.where(valid, x - (total / count)[:, None], 0.0)
    empty = count == 0
    low[empty] = high[empty] = np.nan
    spread = np.einsum("ij,ij->i", deviation, deviation)
    return np.column_stack([count, total, low, high, spread])


def tile_figures(
    values: np.ndarray, origin: tuple[int, int], nodata: float | None, tiles: np.ndarray,
    shape: tuple[int, int] = (TILE, TILE),
) -> np.ndarray:
    """Count, sum, min, max and sum of squared deviations of each tile's valid cells.

    ``values`` is the window of the band whose top-left cell is ``origin`` (row, column) of the
    raster; every tile (``shape`` cells, its top-left cell a multiple of ``shape`` in the
    raster) lies wholly in it. A cell is valid when it is neither ``nodata`` nor NaN, as in
    exactextract. A tile without valid cells gives (0, 0, NaN, NaN, 0). The tiles are gathered
    ``CELLS_AT_ONCE`` cells at a time and reduced together (numpy leaves the GIL to other
    threads meanwhile).
    """
    out = np.empty((len(tiles), 5))
    if not len(tiles):
        return out
    # The window seen as a grid of the raster's tiles: a view, no copy.
    height, width = shape
    shift_r, shift_c = (-origin[0]) % height, (-origin[1]) % width
    grid_rows = (values.shape[0] - shift_r) // height
    grid_cols = (values.shape[1] - shift_c) // width
    grid = values[shift_r:shift_r + grid_rows * height, shift_c:shift_c + grid_cols * width]
    grid = grid.reshape(grid_rows, height, grid_cols, width)
    where_r = (tiles[:, 0] - origin[0] - shift_r) // height
    where_c = (tiles[:, 1] - origin[1] - shift_c) // width
    missing = None if nodata is None else values.dtype.type(nodata)
    n = height * width
    at_once = max(1, CELLS_AT_ONCE // n)
    for start in range(0, len(tiles), at_once):
        cells = grid[where_r[start:start + at_once], :, where_c[start:start + at_once], :]
        cells = cells.reshape(len(cells), n)  # a copy already: one row of cells per tile
        low, high = cells.min(axis=1), cells.max(axis=1)
        block = out[start:start + len(cells)]
        block[:, 0], block[:, 2], block[:, 3] = n, low, high
        # A NaN cell makes the extremes NaN; a nodata cell lies between them. Tiles with
        # neither (most of a zone's inside) are summed as they are; the others cell by cell.
        suspect = np.isnan(low)
        if missing is not None:
            suspect |= (low <= missing) & (missing <= high)
        # A tile of one finite value (a density surface's empty land, 41 % of the communes'
        # inside tiles): its sum is n times the value, exactly in float64, and its spread 0;
        # only the others are summed cell by cell.
        even = (low == high) & np.isfinite(low) & ~suspect
        block[even, 1], block[even, 4] = low[even].astype(np.float64) * n, 0.0
        varying = ~(even | suspect)
        if varying.all():
            block[:, 1], block[:, 4] = _sum_spread(cells)
        elif varying.any():
            block[varying, 1], block[varying, 4] = _sum_spread(cells[varying])
        if suspect.any():
            block[suspect] = _masked_figures(cells[suspect], missing)
    return out


def inside_figures(
    values: np.ndarray, origin: tuple[int, int], nodata: float | None, split: Split
) -> np.ndarray:
    """The figures (:func:`tile_figures`) of the split's tiles, then of its strips."""
    return np.concatenate([tile_figures(values, origin, nodata, split.tiles),
                           tile_figures(values, origin, nodata, split.strips, (TILE, 1))])


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
    order = np.argsort(np.asarray(zones, dtype=np.int64), kind="stable")
    rows = order[np.searchsorted(np.asarray(zones, dtype=np.int64)[order], owner)]
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
    if "min" in ops:  # else the pieces have no minimum (not asked of exactextract)
        np.minimum.at(zone_min, rows[has], low[has])
    if "max" in ops:
        np.maximum.at(zone_max, rows[has], high[has])
    empty = zone_count <= 0
    zone_min[empty] = zone_max[empty] = np.nan
    columns = {"count": zone_count, "sum": zone_sum, "mean": zone_mean, "min": zone_min,
               "max": zone_max, "stdev": zone_stdev}
    frame = pd.DataFrame({ZONE_INDEX: np.asarray(zones, dtype=np.int64)})
    for op in ops:
        frame[op] = columns[op]
    return frame
