"""The value of a raster band at every tree (or at a point on every stand), stored by name.

Points are reprojected to the raster's CRS and grouped by the raster block they fall in; each
block holding a point is read once (a windowed read), so memory is one block plus the points,
whatever the raster's size. Values go to ``smarttrees.raster_samples`` — a side table, so that
sampling writes no tree history and changes no tree column — replacing an earlier sample of the
same name in one transaction. A point on nodata, or outside the raster, gets NULL. The samples
are the OGC collection ``raster_samples`` (``?name=…``, CQL2 on ``value``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql
from pyproj import Transformer
from rasterio.errors import RasterioError
from rasterio.windows import Window

from etl.raster.errors import RasterError
from etl.raster.inputs import RasterInput, require_overlap, territory_bounds
from etl.raster.points import tree_chunks

Progress = Callable[[str, int, int], None]
LAYERS = ("trees", "stands")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class SampleReport:
    """What a sampling run stored."""

    name: str
    layer: str
    features: int
    with_value: int  # the others are on nodata or outside the raster


def column_name(text: str) -> str:
    """A sample name from ``--column`` or the file name: ``"NDVI 2025"`` → ``ndvi_2025``."""
    name = re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")
    if name and not name[0].isalpha():
        name = f"r_{name}"
    if not NAME.match(name):
        raise RasterError(
            "--column", f"{text!r} cannot name a column: use letters, digits and _ (≤ 63)"
        )
    return name


def sample_points(raster: RasterInput, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Band values at the points ``(x, y)`` (raster CRS); NaN on nodata and outside."""
    ds = raster.dataset
    cols_f, rows_f = ~ds.transform * (x, y)
    cols = np.floor(cols_f).astype(np.int64)
    rows = np.floor(rows_f).astype(np.int64)
    values = np.full(len(x), np.nan)
    inside = np.flatnonzero((cols >= 0) & (cols < ds.width) & (rows >= 0) & (rows < ds.height))
    block_h, block_w = ds.block_shapes[raster.band - 1]
    blocks_x = -(-ds.width // block_w)
    keys = (rows[inside] // block_h) * blocks_x + cols[inside] // block_w
    order = np.argsort(keys, kind="stable")
    inside, keys = inside[order], keys[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    ends = np.r_[starts[1:], len(keys)]
    for start, end in zip(starts, ends, strict=True):
        row0 = int(keys[start] // blocks_x) * block_h
        col0 = int(keys[start] % blocks_x) * block_w
        window = Window(col0, row0, min(block_w, ds.width - col0), min(block_h, ds.height - row0))
        try:
            block = ds.read(raster.band, window=window)
        except RasterioError as exc:
            raise raster.read_error(exc) from None
        points = inside[start:end]
        values[points] = block[rows[points] - row0, cols[points] - col0]
    nodata = raster.nodata
    if nodata is not None and not np.isnan(nodata):
        values[values == nodata] = np.nan
    return values


def _tree_points(conn: psycopg.Connection, raster: RasterInput,
                 progress: Progress | None) -> tuple[np.ndarray, np.ndarray]:
    """(tree ids, values) of every tree, read in chunks."""
    total_row = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()
    total = int(total_row[0]) if total_row else 0
    ids: list[np.ndarray] = []
    values: list[np.ndarray] = []
    done = 0
    for chunk in tree_chunks(conn, raster.crs, sql.SQL("true"), sql.SQL("t.id")):
        assert chunk.values is not None
        ids.append(chunk.values.astype(np.int64))
        values.append(sample_points(raster, chunk.x, chunk.y))
        done += len(chunk.x)
        if progress:
            progress("trees", done, max(total, done))
    if not ids:
        return np.empty(0, np.int64), np.empty(0)
    return np.concatenate(ids), np.concatenate(values)


def _stand_points(conn: psycopg.Connection, raster: RasterInput) -> tuple[np.ndarray, np.ndarray]:
    """(stand ids, values) at a point on each stand's surface."""
    rows = conn.execute(
        "SELECT id, ST_X(p), ST_Y(p) FROM (SELECT id, ST_PointOnSurface(geom) AS p "
        "FROM smarttrees.stands) s ORDER BY id"
    ).fetchall()
    if not rows:
        return np.empty(0, np.int64), np.empty(0)
    table = np.array(rows, dtype=float)
    to_raster = Transformer.from_crs(4326, raster.crs, always_xy=True)
    x, y = to_raster.transform(table[:, 1], table[:, 2])
    return table[:, 0].astype(np.int64), sample_points(raster, np.asarray(x), np.asarray(y))


def sample(
    conn: psycopg.Connection,
    raster: RasterInput,
    name: str,
    layer: str = "trees",
    progress: Progress | None = None,
) -> SampleReport:
    """Sample ``raster`` at every feature of ``layer`` and store the values as ``name``.

    Parameters
    ----------
    conn:
        An open connection; the rows are replaced in one transaction on it.
    raster:
        The opened raster and band.
    name:
        The sample's name (see :func:`column_name`).
    layer:
        ``trees`` (each tree's point) or ``stands`` (a point on each stand's surface).
    progress:
        Called as ``progress(step, done, total)``.

    """
    if layer not in LAYERS:
        raise RasterError("--layer", f"{layer!r} is not one of {', '.join(LAYERS)}")
    require_overlap(raster, territory_bounds(conn), "the territory")
    ids, values = _tree_points(conn, raster, progress) if layer == "trees" else (
        _stand_points(conn, raster)
    )
    path = str(raster.path.resolve())
    with conn.transaction():
        conn.execute(
            "DELETE FROM smarttrees.raster_samples WHERE layer = %s AND name = %s", (layer, name)
        )
        with conn.cursor().copy(
            "COPY smarttrees.raster_samples (layer, feature_id, name, value, raster_path, band) "
            "FROM STDIN"
        ) as copy:
            for feature_id, value in zip(ids.tolist(), values.tolist(), strict=True):
                copy.write_row(
                    (layer, feature_id, name, None if value != value else value, path, raster.band)
                )
    return SampleReport(name, layer, len(ids), int(np.count_nonzero(~np.isnan(values))))
