"""Opening a user's raster: one band, a CRS, readable, over the territory — or a clear error.

Every check names the file and says what to do. A file that opens but is truncated is caught by
reading its first and last blocks before any work starts.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import rasterio
from pyproj import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from etl.raster.errors import RasterError

Bounds = tuple[float, float, float, float]


@dataclass(frozen=True)
class RasterInput:
    """An opened raster and the band to use."""

    path: Path
    dataset: DatasetReader
    band: int

    @property
    def name(self) -> str:
        """The file's name without its extension."""
        return self.path.stem

    @property
    def crs(self) -> CRS:
        """The raster's CRS, as pyproj understands it."""
        return CRS.from_wkt(self.dataset.crs.to_wkt())

    @property
    def crs_label(self) -> str:
        """``EPSG:n`` when the CRS has a code, else its name."""
        code = self.crs.to_epsg()
        return f"EPSG:{code}" if code else self.crs.name

    @property
    def nodata(self) -> float | None:
        """The band's nodata value, if any."""
        value = self.dataset.nodatavals[self.band - 1]
        return None if value is None else float(value)

    @property
    def bounds_wgs84(self) -> Bounds:
        """The raster's extent in longitude/latitude."""
        west, south, east, north = transform_bounds(
            self.dataset.crs, "EPSG:4326", *self.dataset.bounds, densify_pts=21
        )
        return (west, south, east, north)

    def read_error(self, exc: Exception) -> RasterError:
        """The error for a read that failed half-way (a damaged file)."""
        return RasterError(self.path, f"cannot be read (damaged or truncated?): {exc}")


def _check_readable(path: Path, dataset: DatasetReader, band: int) -> None:
    """Read the first and last blocks: a truncated file fails here, not in the middle of a job."""
    height, width = dataset.block_shapes[band - 1]
    first = Window(0, 0, min(width, dataset.width), min(height, dataset.height))
    last = Window(
        max(0, dataset.width - width), max(0, dataset.height - height),
        min(width, dataset.width), min(height, dataset.height),
    )
    try:
        dataset.read(band, window=first)
        dataset.read(band, window=last)
    except RasterioError as exc:
        raise RasterError(path, f"cannot be read (damaged or truncated?): {exc}") from None


class _GdalWarnings(logging.Handler):
    """Collects what GDAL reports through rasterio's logger while a file is opened."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _gdal_warnings() -> Iterator[_GdalWarnings]:
    """GDAL's warnings during the block, kept from the log (they become our one-line error)."""
    logger = logging.getLogger("rasterio._env")
    handler = _GdalWarnings()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


@contextmanager
def open_raster(path: Path | str, band: int | None = None) -> Iterator[RasterInput]:
    """Open ``path`` for one band, with the checks every raster job needs.

    Parameters
    ----------
    path:
        Any raster GDAL reads.
    band:
        1-based band; may be omitted when the raster has one band.

    Raises
    ------
    RasterError
        Missing or unreadable file, no CRS, several bands and no ``band``, no such band.

    """
    path = Path(path)
    if not path.is_file():
        raise RasterError(path, "no such file")
    with _gdal_warnings() as gdal, warnings.catch_warnings():
        # No CRS is reported below as one clear line, not as a Python warning.
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        try:
            dataset = rasterio.open(path)
        except RasterioError:
            raise RasterError(
                path, "is not a raster GDAL can read (damaged, or not a raster format)"
            ) from None
    with dataset:
        damage = [m for m in gdal.messages if "error" in m.lower()]
        if damage:  # GDAL opened it but skipped parts it could not read: a truncated file
            raise RasterError(path, f"is damaged or truncated ({damage[0]})")
        if band is None:
            if dataset.count > 1:
                raise RasterError(
                    path, f"has {dataset.count} bands; choose one with --band 1…{dataset.count}"
                )
            band = 1
        if not 1 <= band <= dataset.count:
            raise RasterError(path, f"has no band {band} (it has bands 1…{dataset.count})")
        with _gdal_warnings():
            _check_readable(path, dataset, band)
        if dataset.crs is None:
            raise RasterError(
                path, "has no coordinate reference system; give it one (e.g. EPSG:9213) "
                "in the file and try again"
            )
        yield RasterInput(path, dataset, band)


def overlaps(a: Bounds, b: Bounds) -> bool:
    """True when two (west, south, east, north) boxes share some area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def territory_bounds(conn: psycopg.Connection) -> Bounds | None:
    """Longitude/latitude extent of the communes in force, else of the trees; None if neither."""
    for query in (
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom)::geometry FROM smarttrees.communes) s(e)",
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
        "FROM (SELECT ST_Extent(geom)::geometry FROM smarttrees.trees) s(e)",
    ):
        row = conn.execute(query).fetchone()
        if row is not None and row[0] is not None:
            return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    return None


def require_overlap(raster: RasterInput, area: Bounds | None, what: str) -> None:
    """Raise when the raster does not reach ``area`` (lon/lat bounds of ``what``)."""
    if area is None:
        return
    if not overlaps(raster.bounds_wgs84, area):
        west, south, east, north = raster.bounds_wgs84
        raise RasterError(
            raster.path,
            f"does not overlap {what} (the raster covers lon {west:.3f}…{east:.3f}, "
            f"lat {south:.3f}…{north:.3f}; {what} lon {area[0]:.3f}…{area[2]:.3f}, "
            f"lat {area[1]:.3f}…{area[3]:.3f})",
        )
