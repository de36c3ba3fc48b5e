"""Zonal statistics of one raster band per commune, stand or polygon of a file.

exactextract weighs each cell by the fraction of it inside the polygon, so a commune boundary
that halves a cell counts half of it: ``count`` is the covered cell area in cells, ``sum`` the
coverage-weighted sum, ``mean`` the weighted mean. The zones are reprojected to the raster's CRS
(cheaper and exact, compared with warping the raster). The zones are cut into spatial parts
(bands north to south); the band under a part is read into memory once (at most
``WINDOW_MAX_CELLS``, else exactextract reads each zone's window itself), so memory stays
bounded on rasters larger than memory. Large zones are cut at raster tiles, the tiles inside
them summed with numpy (:mod:`etl.raster.interior`); parts can go to worker processes
(``SMARTTREES_RASTER_WORKERS``). A categorical band
(integer values with a colour table, or ``categorical=True``) also gives each class's share of
the zone's covered area.

The figures go to a new table ``smarttrees.zonal_<run>`` (with the zone's code, name and
geometry, for QGIS) recorded in ``smarttrees.zonal_runs`` with the raster's name, CRS and date, in
one transaction; and to a CSV written beside its target and moved into place.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import multiprocessing.connection
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg
import shapely
from exactextract.feature import Feature, FeatureSource
from exactextract.raster import NumPyRasterSource, RasterioRasterSource
from exactextract.writer import Writer
from psycopg import sql
from psycopg.types.json import Jsonb
from rasterio import windows
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from etl.raster import interior
from etl.raster.errors import RasterError
from etl.raster.inputs import RasterInput, require_overlap
from etl.raster.interior import ZONE_INDEX  # the field exactextract copies: the zone's row
from smarttrees import collector

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import geopandas as gpd
    import pandas as pd

STATS = ("mean", "min", "max", "sum", "count", "std", "majority")
DEFAULT_STATS = ("mean", "min", "max", "count")
_EXACTEXTRACT_OP = {"std": "stdev"}
ID_FIELDS = ("code", "ma_xa", "commune_code", "stand_code", "zone_code", "id")
NAME_FIELDS = ("name", "ten", "ten_xa", "zone_name")
SMALL_ZONE_CELLS = 256 * 256  # zones smaller than a COG block, on average: read by chunks
PARALLEL_MIN_CELLS = 4_000_000  # below this many box cells (~0.2 s) one process is quicker
PARTS_PER_WORKER = 2  # spatial parts per worker process: a slow part is evened out
WINDOW_MAX_CELLS = 32_000_000  # largest window of a band read into memory (128 MB of float32)
TOUCHED_READ_ALL = 0.75  # zones touching more of a window's blocks than this: read it whole
PER_ZONE_CELLS = 3_000  # the fixed cost of one zone to exactextract, in cells' worth of work
# Read the next part in a thread while exactextract works on this one. Off: on the shared
# two-core machine (load 5-9) the thread cost CPU and wall time in every bench run
# (communes 7.5 s against 3.8 s); bench_raster.py times both, for a machine with idle cores.
READ_AHEAD = False
# GDAL's block cache while a zonal job reads its windows. Each window is read once, block by
# block, and copied into the job's array, so a big cache only holds blocks already copied; its
# blocks (256 KB each, 4 KB pages) were most of the job's system time: every block a process
# decodes into new cache memory costs ~64 page faults, and each worker process starts with
# none (120 K faults per 4,092-zone run; bench/README.md, session 7).
BLOCK_CACHE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Zones:
    """Polygons to summarise: a GeoDataFrame with ``zone_code``, ``zone_name``, ``geometry``."""

    source: str  # "commune", "stand", or the file's name
    frame: gpd.GeoDataFrame


@dataclass(frozen=True)
class ZonalReport:
    """What a zonal run wrote."""

    run_id: int
    table: str
    csv_path: Path
    zones: int
    stats: tuple[str, ...]
    categorical: bool


def parse_stats(text: str | None) -> tuple[str, ...]:
    """``"mean,max"`` → ``("mean", "max")``, refusing unknown names (option ``--stats``)."""
    if not text:
        return DEFAULT_STATS
    names = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in STATS]
    if unknown or not names:
        raise RasterError(
            "--stats",
            f"unknown statistic {', '.join(unknown) or repr(text)}; use {','.join(STATS)}",
        )
    return names


def zones_from_database(conn: psycopg.Connection, kind: str) -> Zones:
    """The communes in force (``commune``) or the stands (``stand``)."""
    import geopandas as gpd

    queries = {
        "commune": "SELECT code, name, ST_AsBinary(geom) FROM smarttrees.communes ORDER BY code",
        "stand": "SELECT stand_code, stand_code, ST_AsBinary(geom) FROM smarttrees.stands "
        "ORDER BY stand_code",
    }
    rows = conn.execute(queries[kind]).fetchall()
    if not rows:
        raise RasterError(f"{kind}s", f"no {kind} is loaded: nothing to summarise")
    frame = gpd.GeoDataFrame(
        {"zone_code": [r[0] for r in rows], "zone_name": [r[1] for r in rows]},
        geometry=shapely.from_wkb([bytes(r[2]) for r in rows]),
        crs="EPSG:4326",
    )
    zones = Zones(kind, frame)
    check_zones(zones, f"{kind}s")
    return zones


def _pick(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    lower = {c.lower(): c for c in columns}
    return next((lower[c] for c in candidates if c in lower), None)


def zones_from_file(path: Path, id_field: str | None = None) -> Zones:
    """Polygons of a vector file GDAL reads; codes from ``id_field`` (else a code-like column)."""
    import geopandas as gpd
    import pyogrio

    if not path.is_file():
        raise RasterError(path, "no such file")
    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise RasterError(path, f"cannot be read as a vector layer: {exc}") from None
    if frame.crs is None:
        raise RasterError(path, "has no coordinate reference system (a .prj, or a CRS member)")
    if len(frame) == 0:
        raise RasterError(path, "holds no feature")
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if id_field is not None and id_field not in columns:
        raise RasterError(path, f"has no field {id_field!r} (fields: {', '.join(columns)})")
    code = id_field or _pick(columns, ID_FIELDS)
    name = _pick(columns, NAME_FIELDS)
    codes = frame[code].astype(str) if code else [str(i) for i in range(1, len(frame) + 1)]
    zones = Zones(
        path.name,
        gpd.GeoDataFrame(
            {
                "zone_code": list(codes),
                "zone_name": list(frame[name].astype(str)) if name else [None] * len(frame),
            },
            geometry=frame.geometry.values,
            crs=frame.crs,
        ),
    )
    check_zones(zones, path)
    return zones


def check_zones(zones: Zones, source: Path | str) -> None:
    """Refuse missing, empty, non-polygon or invalid geometries, naming the first one."""
    geoms = zones.frame.geometry.values
    for i, geom in enumerate(geoms, start=1):
        code = zones.frame["zone_code"].iloc[i - 1]
        where = f"feature {i} (code {code!r})"
        if geom is None or geom.is_empty:
            raise RasterError(source, f"{where}: no geometry")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise RasterError(source, f"{where}: a {geom.geom_type}, not a polygon")
        if not geom.is_valid:
            raise RasterError(
                source, f"{where}: invalid polygon ({shapely.is_valid_reason(geom)}); "
                "repair it (e.g. QGIS Fix geometries) and try again"
            )


def is_categorical(raster: RasterInput) -> bool:
    """An integer band with a colour table is a class map."""
    if not np.issubdtype(np.dtype(raster.dataset.dtypes[raster.band - 1]), np.integer):
        return False
    try:
        raster.dataset.colormap(raster.band)
    except ValueError:
        return False
    return True


def _class_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _ZoneFeature(Feature):
    """One zone handed to exactextract: its WKB and its position in the zone frame."""

    def __init__(self, index: int, wkb: bytes) -> None:
        Feature.__init__(self)
        self.index, self.wkb = index, wkb

    def get(self, name: str) -> int:
        return self.index  # the only field asked for is ZONE_INDEX

    def fields(self) -> list[str]:
        return [ZONE_INDEX]

    def geometry(self) -> bytes:
        return self.wkb

    def set_geometry_format(self) -> str:
        return "wkb"


class _ZoneSource(FeatureSource):
    """Zones as WKB (made in one shapely call, not GeoPandas' GeoJSON per feature).

    ``indices`` are the zones' rows in the whole zone frame, so that a worker given some of
    the zones answers with rows that say which zone each is.
    """

    def __init__(self, wkbs: Sequence[bytes], indices: Sequence[int], srs_wkt: str) -> None:
        super().__init__()
        self.wkbs, self.indices, self.wkt = wkbs, indices, srs_wkt

    def count(self) -> int:
        return len(self.wkbs)

    def __iter__(self) -> Iterator[_ZoneFeature]:
        for index, wkb in zip(self.indices, self.wkbs, strict=True):
            yield _ZoneFeature(int(index), bytes(wkb))

    def srs_wkt(self) -> str:
        return self.wkt


class _BandSource(RasterioRasterSource):
    """exactextract's rasterio source, reading plain arrays when the nodata value says it all.

    The stock source reads masked arrays; when the band's mask is only its nodata value (or
    every cell is valid), exactextract tests the nodata value itself, so building the mask is
    work done twice.
    """

    def __init__(self, dataset: DatasetReader, band: int) -> None:
        super().__init__(dataset, band_idx=band)
        flags = dataset.mask_flag_enums[band - 1]
        self.plain = not self.scaled and (
            flags == [MaskFlags.all_valid] or flags == [MaskFlags.nodata]
        )

    def read_window(self, x0: int, y0: int, nx: int, ny: int) -> Any:
        if not self.plain:
            return super().read_window(x0, y0, nx, ny)
        return self.ds.read(self.band_idx, window=Window(x0, y0, nx, ny))


def _zone_cells(geometries: Any, res: tuple[float, float]) -> np.ndarray:
    """How many raster cells each zone's bounding box holds."""
    bounds = shapely.bounds(geometries)
    return ((bounds[:, 2] - bounds[:, 0]) / res[0]) * ((bounds[:, 3] - bounds[:, 1]) / res[1])


def _strategy(cells: np.ndarray) -> str:
    """The strategy exactextract uses over a window in memory: by chunks for small zones.

    ``raster-sequential`` (one pass over the window's chunks for all the zones they hold) for
    zones smaller than a 256 × 256 block on average, such as stands; large zones (communes) are
    faster one at a time. Only for a window in memory: over the file, exactextract's
    raster-sequential pass walks the chunks of the whole raster for each part of the zones,
    and over a band with a mask beyond its nodata value exactextract 0.3.0's pass counts masked
    cells (seen on a 600 × 600 masked GeoTIFF).
    """
    if len(cells) == 0:
        return "feature-sequential"
    return "raster-sequential" if float(np.mean(cells)) < SMALL_ZONE_CELLS else (
        "feature-sequential"
    )


def worker_count(workers: int | None = None) -> int:
    """Worker processes for one zonal run: ``workers``, else the setting, else one per core.

    One per core this process may use: on the idle two-core benchmark machine two forked
    workers took the 4,092 zones from 2.4–2.9 s to 1.65–1.75 s (bench/README.md, session 6).
    On a machine whose cores are busy with other work they gain nothing and cost ~1 s more CPU
    (each warms its own caches and pages), so ``SMARTTREES_RASTER_WORKERS=1`` keeps the job in
    the calling process.
    """
    if workers is None:
        from smarttrees.settings import get_settings

        workers = get_settings().raster_workers or len(os.sched_getaffinity(0))
    return max(1, workers)


def spatial_parts(geometries: Any, cells: np.ndarray, parts: int) -> list[np.ndarray]:
    """The zones' rows cut into ``parts`` bands from north to south, of about equal work.

    Zones are ordered by the northern edge of their box and cut where the running work (box
    cells, plus a fixed cost per zone) passes each share, so each worker reads one band of the
    raster rather than blocks scattered over it.
    """
    order = np.argsort(-shapely.bounds(geometries)[:, 3], kind="stable")
    work = np.cumsum(cells[order] + PER_ZONE_CELLS)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, parts) / parts)
    return [p for p in np.split(order, cuts) if len(p)]


class _ColumnSink(Feature):
    """Where exactextract copies each zone's results: appended to one list per field."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        Feature.__init__(self)
        self.append = {name: column.append for name, column in columns.items()}

    def set(self, name: str, value: Any) -> None:
        self.append[name](value)

    def set_geometry(self, geometry: Any) -> None:
        pass  # no geometry is asked for


class _ColumnWriter(Writer):
    """exactextract's ``pandas`` output without a GeoJSON-like feature per zone.

    Its writer copies every zone's fields into a new dictionary feature and then appends each
    field to a column; here they go straight to the columns (measured: 3–6 % of exactextract's
    CPU on the stands and the communes' pieces).
    """

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.columns: dict[str, list[Any]] = {name: [] for name in names}
        self.sink = _ColumnSink(self.columns)
        self.rows = 0

    def add_operation(self, op: Any) -> None:
        pass  # the columns are known from the start

    def add_column(self, col_name: str) -> None:
        pass

    def write(self, feature: Any) -> None:
        feature.copy_to(self.sink)
        self.rows += 1
        for column in self.columns.values():  # a field exactextract left unset: None
            if len(column) < self.rows:
                column.append(None)

    def features(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.columns, copy=False)


def _extract(
    source: _BandSource, wkbs: Sequence[bytes], indices: Sequence[int], wkt: str,
    ops: Sequence[str], strategy: str,
) -> pd.DataFrame:
    from exactextract import exact_extract

    frame: pd.DataFrame = exact_extract(
        source, _ZoneSource(wkbs, indices, wkt), list(ops), include_cols=[ZONE_INDEX],
        output=_ColumnWriter([ZONE_INDEX, *ops]), strategy=strategy,
    )
    return frame


@dataclass(frozen=True)
class _Values:
    """A window of the band read into memory, as exactextract's source and as an array."""

    source: NumPyRasterSource
    array: np.ndarray
    origin: tuple[int, int]  # the window's top-left cell (row, column) in the raster


def _window(dataset: DatasetReader, geometries: Any) -> Window | None:
    """The cells of the raster under the zones' boxes; None when they miss it."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(geometries)
    c0, r0 = ~dataset.transform @ (xmin, ymax)
    c1, r1 = ~dataset.transform @ (xmax, ymin)
    col0, row0 = max(0, math.floor(min(c0, c1))), max(0, math.floor(min(r0, r1)))
    col1 = min(dataset.width, math.ceil(max(c0, c1)))
    row1 = min(dataset.height, math.ceil(max(r0, r1)))
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def _touched_runs(
    dataset: DatasetReader, band: int, window: Window, geometries: Any
) -> list[Window]:
    """The windows to read for ``window``: only the raster's blocks some zone's box touches.

    Stands scattered over a province touch a fraction of its blocks: the others are not
    decompressed. One window (all of it) when nearly every block is touched.
    """
    rows, cols = dataset.block_shapes[band - 1]
    top, left = int(window.row_off), int(window.col_off)
    bottom, right = top + int(window.height), left + int(window.width)
    bounds = shapely.bounds(geometries)
    inverse = ~dataset.transform
    c0, r0 = inverse @ (bounds[:, 0], bounds[:, 3])
    c1, r1 = inverse @ (bounds[:, 2], bounds[:, 1])
    first_r = np.clip(np.floor(np.minimum(r0, r1)), top, bottom - 1).astype(int) // rows
    last_r = np.clip(np.ceil(np.maximum(r0, r1)) - 1, top, bottom - 1).astype(int) // rows
    first_c = np.clip(np.floor(np.minimum(c0, c1)), left, right - 1).astype(int) // cols
    last_c = np.clip(np.ceil(np.maximum(c0, c1)) - 1, left, right - 1).astype(int) // cols
    block_top, block_left = top // rows, left // cols
    touched = np.zeros(((bottom - 1) // rows - block_top + 1, (right - 1) // cols - block_left + 1),
                       dtype=bool)
    for a, b, c, d in zip(first_r - block_top, last_r - block_top, first_c - block_left,
                          last_c - block_left, strict=True):
        touched[a:b + 1, c:d + 1] = True
    if touched.mean() > TOUCHED_READ_ALL:
        return [window]
    runs = []
    for block_row in np.flatnonzero(touched.any(axis=1)):
        line = touched[block_row]
        starts = np.flatnonzero(line & ~np.concatenate([[False], line[:-1]]))
        ends = np.flatnonzero(line & ~np.concatenate([line[1:], [False]]))
        for start, end in zip(starts, ends, strict=True):
            runs.append(Window((block_left + start) * cols, (block_top + block_row) * rows,
                               (end - start + 1) * cols, rows).intersection(window))
    return runs


@dataclass(frozen=True)
class _Reading:
    """What to read of a band for one part of the zones (planned by :func:`_plan_read`)."""

    window: Window  # the cells under the zones' boxes
    runs: list[Window]  # the windows read within it (cells outside them left unset)
    nodata: float | int | None
    wkt: str


def _plan_read(source: _BandSource, geometries: Any, wkt: str) -> _Reading | None:
    """What to read under the zones' boxes; None when that exceeds ``WINDOW_MAX_CELLS``.

    exactextract reads a zone's window through Python for every zone (and again for every
    zone a block belongs to); from memory each is a slice.
    """
    dataset = source.ds
    window = _window(dataset, geometries)
    if window is None or window.width * window.height > WINDOW_MAX_CELLS:
        return None
    dtype = np.dtype(dataset.dtypes[source.band_idx - 1])
    nodata: float | int | None = dataset.nodatavals[source.band_idx - 1]
    if nodata is not None and dtype.kind in "iu":  # exactextract wants the band's own type
        info = np.iinfo(dtype)
        if not (float(nodata).is_integer() and info.min <= nodata <= info.max):
            return None  # a nodata value the band cannot hold: left to the stock source
        nodata = int(nodata)
    return _Reading(window, _touched_runs(dataset, source.band_idx, window, geometries),
                    nodata, wkt)


@contextmanager
def _block_cache(limit: int) -> Iterator[None]:
    """GDAL's block cache held to at most ``limit`` bytes, as it was afterwards.

    GDAL's cache size is one per process: the caller's is put back (a server reading tiles
    keeps its own).
    """
    from rasterio.env import get_gdal_config, set_gdal_config

    before = get_gdal_config("GDAL_CACHEMAX")
    if not isinstance(before, int) or before <= limit:
        yield
        return
    set_gdal_config("GDAL_CACHEMAX", limit)
    try:
        yield
    finally:
        set_gdal_config("GDAL_CACHEMAX", before)


def _read(source: _BandSource, reading: _Reading, buffer: np.ndarray | None = None) -> _Values:
    """The band over ``reading.window``, read in its runs: GDAL calls and little else.

    Cells left unread are not set (0 in a new array, an earlier part's values in a reused
    ``buffer``): they lie outside every zone's box, so no figure sees them. Clearing them cost
    a write of the whole window (~10 ms a stands' part) and faulted in pages no zone needs. The
    cells go into ``buffer`` (its first cells, as a 2-D array) when given, else into a new
    array.
    """
    dataset, band, window = source.ds, source.band_idx, reading.window
    shape = (int(window.height), int(window.width))
    array = (np.empty(shape, dtype=dataset.dtypes[band - 1]) if buffer is None
             else buffer[: shape[0] * shape[1]].reshape(shape))
    if reading.runs == [window]:
        dataset.read(band, window=window, out=array)
    else:
        top, left = int(window.row_off), int(window.col_off)
        for run in reading.runs:
            r, c = int(run.row_off) - top, int(run.col_off) - left
            dataset.read(band, window=run, out=array[r:r + int(run.height),
                                                       c:c + int(run.width)])
    west, south, east, north = windows.bounds(window, dataset.transform)
    source_array = NumPyRasterSource(array, west, south, east, north, nodata=reading.nodata,
                                     srs_wkt=reading.wkt)
    return _Values(source_array, array, (int(window.row_off), int(window.col_off)))


@dataclass(frozen=True)
class _Prepared:
    """One part of the zones, read and cut, ready for exactextract (:func:`_finish`)."""

    wkbs: Sequence[bytes]
    indices: Sequence[int]
    values: _Values | None  # the band under the part, else exactextract reads the file
    split: interior.Split | None  # the large zones cut at tiles, else every zone whole
    tiles: np.ndarray | None  # the figures of the split's inside tiles and strips
    strategy: str


def _prepare(
    source: _BandSource, wkbs: Sequence[bytes], indices: Sequence[int], geometries: Any,
    values: _Values | None, ops: Sequence[str],
) -> _Prepared:
    """The zones ``wkbs`` (rows ``indices``) over ``values``, large ones cut, tiles summed.

    With the band in memory, large zones are cut at raster tiles when every statistic pools
    (:mod:`etl.raster.interior`) and their inside tiles summed with numpy.
    """
    dataset = source.ds
    if values is None:
        return _Prepared(wkbs, indices, None, None, None, "feature-sequential")
    if interior.can_split(ops, dataset.transform):
        split = interior.split_zones(
            geometries, wkbs, indices, dataset.transform, dataset.width, dataset.height
        )
        if split is not None and split.has_inside:
            how = _strategy(_zone_cells(shapely.from_wkb(split.pieces), dataset.res))
            tiles = interior.inside_figures(values.array, values.origin,
                                            dataset.nodatavals[source.band_idx - 1], split)
            return _Prepared(wkbs, indices, values, split, tiles, how)
    return _Prepared(wkbs, indices, values, None, None,
                     _strategy(_zone_cells(geometries, dataset.res)))


def _finish(source: _BandSource, part: _Prepared, wkt: str, ops: Sequence[str]) -> pd.DataFrame:
    """The part's figures from exactextract, pooled with its tiles' figures when it was cut."""
    if part.values is None:
        return _extract(source, part.wkbs, part.indices, wkt, ops, part.strategy)
    if part.split is None or part.tiles is None:
        return _extract(part.values.source, part.wkbs, part.indices, wkt, ops, part.strategy)
    split = part.split
    figures = _extract(part.values.source, split.pieces, range(len(split.pieces)), wkt,
                       interior.piece_ops(ops), part.strategy)
    figures = figures.sort_values(ZONE_INDEX).reset_index(drop=True)
    return interior.pool(part.indices, figures, split.piece_owner, part.tiles,
                         split.inside_owner, ops)


class _Claims:
    """Which parts some process has taken: each part is summarised by the first to claim it.

    Shared by the processes of one job (a lock and one byte per part, in memory the forked
    workers inherit), so a process that is through its own share goes on with what another
    has not begun: a share that costs more than its estimate, or a core slowed by other work,
    no longer leaves the other core idle while it finishes.
    """

    def __init__(self, context: Any, parts: int) -> None:
        self.lock = context.Lock()
        self.taken = context.RawArray("b", parts)

    def take(self, part: int) -> bool:
        """True when ``part`` was still free (now this process's), False when taken."""
        with self.lock:
            if self.taken[part]:
                return False
            self.taken[part] = 1
            return True


def _preference(shares: Sequence[Sequence[int]], own: int) -> list[int]:
    """The parts in the order process ``own`` claims them: its share, then the others' ends.

    Its own share first, in order (neighbouring bands of the raster); then every other share's
    parts from the last one back, the parts its owner would reach last.
    """
    others = [int(k) for i, share in enumerate(shares) if i != own for k in reversed(share)]
    return [int(k) for k in shares[own]] + others


def _summarise_parts(
    source: _BandSource, path: str, wkbs: Sequence[bytes], geometries: np.ndarray,
    parts: Sequence[Sequence[int]], wkt: str, ops: Sequence[str],
    order: Sequence[int] | None = None, claims: _Claims | None = None,
) -> list[pd.DataFrame]:
    """The figures of the parts' zones; with ``READ_AHEAD``, the next part read meanwhile.

    ``wkbs`` and ``geometries`` are every zone (in the raster's CRS), ``parts`` their rows.
    The parts are taken in ``order`` (default: all, in turn), each only if this process
    ``claims`` it first (when another process shares the job). GDAL decompresses a window's
    blocks without the GIL, so a reader thread can read the next part while this thread cuts
    the current one and runs exactextract on it. Only the GDAL reads go
    to the thread (what to read is planned here): exactextract holds the GIL through its call
    and seldom runs Python, so each time a thread gets the GIL back beside it costs a wait
    (measured: 20 big numpy sums 10 × slower beside exactextract, GDAL reads of the same CPU
    not slower). The thread reads through its own handle on the raster ``path`` (a GDAL
    dataset is not to be used by two threads at once); ``source`` is the calling thread's.
    """
    from concurrent.futures import ThreadPoolExecutor

    import rasterio

    plans: dict[int, _Reading | None] = {}

    def plan(k: int) -> None:
        plans[k] = _plan_read(source, geometries[parts[k]], wkt) if source.plain else None

    mine = (k for k in (range(len(parts)) if order is None else order)
            if claims is None or claims.take(k))
    # One array, the size of the largest part's window, for every part read one after the
    # other (planned when claimed; the size from the windows alone, before any is claimed)
    buffer = None if READ_AHEAD else _buffer(source, geometries, parts)

    def read(reader: _BandSource, k: int) -> _Values | None:
        reading = plans[k]
        return None if reading is None else _read(reader, reading, buffer)

    def summarise(k: int, values: _Values | None) -> pd.DataFrame:
        rows = list(parts[k])
        part = _prepare(source, [wkbs[i] for i in rows], rows, geometries[rows], values, ops)
        return _finish(source, part, wkt, ops)

    if not READ_AHEAD or len(parts) < 2:
        with _block_cache(BLOCK_CACHE_BYTES):
            results = []
            for k in mine:
                plan(k)
                results.append(summarise(k, read(source, k)))
            return results
    results = []
    with (_block_cache(BLOCK_CACHE_BYTES), rasterio.open(path) as own,
          ThreadPoolExecutor(1, thread_name_prefix="zonal-read") as thread):
        reader = _BandSource(own, source.band_idx)
        current: int | None = next(mine, None)
        if current is not None:
            plan(current)
            ahead = thread.submit(read, reader, current)
        while current is not None:
            values = ahead.result()
            following = next(mine, None)
            if following is not None:
                plan(following)
                ahead = thread.submit(read, reader, following)
            results.append(summarise(current, values))
            current = following
    return results


def _buffer(
    source: _BandSource, geometries: np.ndarray, parts: Sequence[Sequence[int]]
) -> np.ndarray | None:
    """One array for the largest window of the parts read into memory, reused part by part.

    A fresh array per part is fresh pages for the kernel to fault in and clear each time.
    """
    dataset = source.ds
    if not source.plain:
        return None
    cells = []
    for part in parts:
        window = _window(dataset, geometries[part])
        if window is not None and window.width * window.height <= WINDOW_MAX_CELLS:
            cells.append(int(window.width * window.height))
    return np.empty(max(cells), dtype=dataset.dtypes[source.band_idx - 1]) if cells else None


def _extract_part(
    path: str, band: int, wkbs: Sequence[bytes], geometries: np.ndarray, parts: list[list[int]],
    wkt: str, ops: list[str], order: list[int], claims: _Claims, answer: Connection,
) -> None:
    """A worker process's parts (zones: rows of ``wkbs``), read from its own handle.

    The worker claims the parts in ``order`` (its share first) and reads only the windows of
    those it gets (with ``READ_AHEAD``, the next while exactextract works on the current one);
    it sends ``("figures", frames)`` through ``answer``, or ``("error", exception)``.
    """
    import rasterio

    try:
        with collector.paused(), rasterio.open(path) as dataset:  # paused already if forked
            frames = _summarise_parts(_BandSource(dataset, band), path, wkbs, geometries,
                                      parts, wkt, ops, order, claims)
        reply: tuple[str, Any] = ("figures", frames)
    except Exception as exc:  # handed to the parent, which raises it
        reply = ("error", exc)
    try:
        answer.send(reply)
    except Exception as exc:  # an exception that does not pickle
        answer.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        answer.close()


def _part_count(dataset: DatasetReader, geometries: Any, workers: int) -> int:
    """How many parts to cut the zones into.

    Two per worker process, and enough that each part's window is about half
    ``WINDOW_MAX_CELLS`` (so that, widened by its tallest zones, it still fits).
    """
    window = _window(dataset, geometries)
    cells = 0 if window is None else window.width * window.height
    per_worker = PARTS_PER_WORKER if workers > 1 else 1
    return max(workers * per_worker, math.ceil(cells / (WINDOW_MAX_CELLS / 2)), 1)


def _extract_parallel(
    raster: RasterInput, wkbs: np.ndarray, geometries: np.ndarray, parts: list[np.ndarray],
    wkt: str, ops: Sequence[str], workers: int,
) -> pd.DataFrame:
    """The parts summarised by ``workers`` processes, this one among them; every part's rows.

    exactextract holds the GIL through its whole call, so threads do not run it side by side;
    processes do. The others are forked where the platform can (the parent's imports and the
    zones come free, no pickling before they start) and each is given neighbouring parts (a
    band of the raster); this process takes the first share meanwhile, with its raster open
    and its memory warm, and then collects the others' figures through a pipe each. A process
    through its share takes the parts another has not begun, from the end of that share
    (:class:`_Claims`). A pool would fork one process more and hand the work over in a
    thread, which waits for the GIL while this process is inside exactextract.
    """
    import pandas as pd

    # multiprocessing's modules are imported with this one: at the job's start they were
    # ~20 ms before the fork, with the other core idle
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    processes = min(workers, len(parts))
    shares = [s.tolist() for s in np.array_split(np.arange(len(parts)), processes) if len(s)]
    claims = _Claims(context, len(parts))
    rows = [part.tolist() for part in parts]
    zones = list(wkbs)
    children = []
    try:
        for i in range(1, len(shares)):
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_extract_part, daemon=True, args=(
                str(raster.path), raster.band, zones, geometries, rows, wkt, list(ops),
                _preference(shares, i), claims, send,
            ))
            child.start()
            send.close()  # the child's end: EOF here if the child dies
            children.append((child, receive))
        frames = _summarise_parts(_BandSource(raster.dataset, raster.band), str(raster.path),
                                  zones, geometries, rows, wkt, ops, _preference(shares, 0),
                                  claims)
        for _child, receive in children:
            try:
                kind, payload = receive.recv()
            except EOFError:
                raise RasterError(raster.path, "a zonal worker process ended before sending "
                                  "its figures (out of memory?); try "
                                  "SMARTTREES_RASTER_WORKERS=1") from None
            if kind == "error":
                raise payload
            frames.extend(payload)
        return pd.concat(frames, ignore_index=True)
    finally:
        for child, receive in children:
            receive.close()
            child.join(timeout=5)
            if child.is_alive():  # only after an error here: its figures are not wanted
                child.terminate()
                child.join()


def _extract_all(
    raster: RasterInput, source: _BandSource, wkbs: np.ndarray, geometries: np.ndarray,
    parts: list[np.ndarray], wkt: str, ops: Sequence[str], processes: int,
) -> pd.DataFrame:
    """Every part's rows, from ``processes`` processes or from this one."""
    import pandas as pd

    if processes > 1:
        return _extract_parallel(raster, wkbs, geometries, parts, wkt, ops, processes)
    frames = _summarise_parts(source, str(raster.path), list(wkbs), geometries,
                              [part.tolist() for part in parts], wkt, ops)
    return pd.concat(frames, ignore_index=True)


def zonal_statistics(
    raster: RasterInput, zones: Zones, stats: Sequence[str], categorical: bool,
    workers: int | None = None,
) -> pd.DataFrame:
    """One row per zone: ``zone_code``, ``zone_name``, the stats, and ``class_shares``.

    ``class_shares`` (categorical only) maps each class to its share of the covered area. The
    zones are cut into spatial parts (:func:`spatial_parts`), each summarised by
    :func:`_summarise_parts`; with ``workers`` (default: :func:`worker_count`, one per core)
    above 1 and zones covering at least ``PARALLEL_MIN_CELLS`` cells (or ``workers`` given),
    the parts go to that many worker processes. The figures are exactextract's over each whole
    zone however the zones are shared out (to rounding where large zones are cut at tiles).
    """
    import pandas as pd

    wkt = raster.crs.to_wkt()
    frame = zones.frame.to_crs(wkt)
    require_overlap(raster, tuple(zones.frame.to_crs(4326).total_bounds), f"the {zones.source}s")
    ops = [_EXACTEXTRACT_OP.get(s, s) for s in stats]
    if categorical:
        ops += ["unique", "frac"]
    geometries = frame.geometry.values
    wkbs = shapely.to_wkb(geometries)
    cells = _zone_cells(geometries, raster.dataset.res)
    source = _BandSource(raster.dataset, raster.band)
    processes = worker_count(workers)
    if len(wkbs) < 2 or (workers is None and float(cells.sum()) < PARALLEL_MIN_CELLS):
        processes = 1
    parts = spatial_parts(geometries, cells, _part_count(raster.dataset, geometries, processes))
    try:
        with collector.paused():  # the workers are forked with it paused too
            result = _extract_all(raster, source, wkbs, np.asarray(geometries, dtype=object),
                                  parts, wkt, ops, processes)
    except (RuntimeError, RasterioError) as exc:  # exactextract: RuntimeError from C++ on a
        raise raster.read_error(exc) from None      # failed read; anything else is our bug
    # Parts and raster-sequential give zones in the order met: back to the frame's order
    result = result.sort_values(ZONE_INDEX).reset_index(drop=True)
    order = result.pop(ZONE_INDEX).to_numpy()
    result.insert(0, "zone_name", frame["zone_name"].to_numpy()[order])
    result.insert(0, "zone_code", frame["zone_code"].to_numpy()[order])
    result = result.rename(columns={v: k for k, v in _EXACTEXTRACT_OP.items()})
    if categorical:
        shares = [
            {_class_label(c): round(float(f), 6) for c, f in sorted(zip(u, fr, strict=True))}
            for u, fr in zip(result.pop("unique"), result.pop("frac"), strict=True)
        ]
        result["class_shares"] = pd.Series(shares, index=result.index, dtype=object)
    return result


def _clean(value: Any) -> Any:
    """NaN (a zone over nodata only) becomes NULL / an empty CSV cell."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value


def store(
    conn: psycopg.Connection,
    raster: RasterInput,
    zones: Zones,
    result: pd.DataFrame,
    stats: Sequence[str],
    categorical: bool,
) -> tuple[int, str]:
    """Record the run and create its table ``smarttrees.zonal_<id>``; (run id, table name).

    The caller's transaction holds both: on any error neither remains.
    """
    row = conn.execute(
        "INSERT INTO smarttrees.zonal_runs (raster_name, raster_path, raster_crs, band, zones, "
        "stats, categorical, zone_count, table_name) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '') RETURNING id",
        (raster.name, str(raster.path.resolve()), raster.crs_label, raster.band, zones.source,
         list(stats), categorical, len(result)),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    table = f"zonal_{run_id}"
    conn.execute("UPDATE smarttrees.zonal_runs SET table_name = %s WHERE id = %s", (table, run_id))
    ident = sql.Identifier("smarttrees", table)
    columns: list[sql.Composable] = [
        sql.SQL("{} double precision").format(sql.Identifier(s)) for s in stats
    ]
    if categorical:
        columns.append(sql.SQL("class_shares jsonb"))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (zone_code text NOT NULL, zone_name text, {}, "
            "geom geometry(MultiPolygon, 4326))"
        ).format(ident, sql.SQL(", ").join(columns))
    )
    comment = (
        f"zonal statistics of {raster.name} ({raster.crs_label}, band {raster.band}) "
        f"per {zones.source}, run {run_id}"
    )
    conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(comment)))
    names = ["zone_code", "zone_name", *stats] + (["class_shares"] if categorical else [])
    values = sql.SQL(", ").join(sql.Placeholder() for _ in names)
    insert = sql.SQL("INSERT INTO {} ({}, geom) VALUES ({}, ST_Multi(ST_GeomFromWKB({}, 4326)))")
    statement = insert.format(
        ident, sql.SQL(", ").join(map(sql.Identifier, names)), values, sql.Placeholder()
    )
    geoms = shapely.to_wkb(zones.frame.to_crs(4326).geometry.values)
    # Column by column (tolist gives Python values), not a pandas row object per zone
    fields: list[list[Any]] = [
        [_clean(v) for v in result[n].tolist()] for n in names if n != "class_shares"
    ]
    if categorical:
        fields.append([Jsonb(shares) for shares in result["class_shares"]])
    with conn.cursor() as cur:
        cur.executemany(statement, list(zip(*fields, geoms, strict=True)))
    return run_id, table


def write_csv(result: pd.DataFrame, target: Path) -> None:
    """The figures as CSV (class shares as JSON), written beside ``target`` then moved."""
    if not target.parent.is_dir():
        raise RasterError(target, f"the folder {target.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".csv", dir=target.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(result.columns)
            for rec in result.itertuples(index=False):
                writer.writerow(
                    json.dumps(v, ensure_ascii=False) if isinstance(v, dict)
                    else ("" if _clean(v) is None else _clean(v))
                    for v in rec
                )
        os.chmod(name, 0o644)
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def run_zonal(
    conn: psycopg.Connection,
    raster: RasterInput,
    zones: Zones,
    stats: Sequence[str],
    csv_path: Path,
    categorical: bool | None = None,
) -> ZonalReport:
    """Compute, store (one transaction on ``conn``) and write the CSV of one zonal run."""
    kind = is_categorical(raster) if categorical is None else categorical
    result = zonal_statistics(raster, zones, stats, kind)
    with conn.transaction():
        run_id, table = store(conn, raster, zones, result, stats, kind)
        write_csv(result, csv_path)  # last: a CSV failure rolls the tables back
    return ZonalReport(run_id, table, csv_path, len(result), tuple(stats), kind)
