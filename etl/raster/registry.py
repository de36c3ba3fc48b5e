"""Rasters registered for serving: ``smarttrees raster add FILE --name NAME``.

A registered raster stays where it is (its absolute path is recorded) and is served as raster
tiles (``/collections/{name}/tiles/WebMercatorQuad/{z}/{y}/{x}.png``) and as an OGC API –
Coverages collection. The colour stretch is stored with it: given, or the 2nd–98th percentiles
of a decimated read (the overviews of a COG make it cheap); a band with its own colour table
(a class map) is drawn with those colours.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from rio_tiler.colormap import cmap

from etl.raster.errors import RasterError
from etl.raster.inputs import RasterInput, open_raster, require_overlap, territory_bounds

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
FILE_COLORMAP = "file"  # draw with the band's own colour table
STRETCH_SAMPLE = 1024  # cells per side read to estimate the stretch


@dataclass(frozen=True)
class Registered:
    """A registered raster, as the server reads it."""

    name: str
    title: str
    path: str
    band: int
    crs: str
    nodata: float | None
    value_min: float | None
    value_max: float | None
    colormap: str
    units: str | None
    bbox: tuple[float, float, float, float]


def _check_name(name: str, reserved: Collection[str]) -> None:
    if not NAME.match(name):
        raise RasterError("--name", f"{name!r}: use lower-case letters, digits and _ (≤ 63)")
    if name in reserved:
        raise RasterError("--name", f"{name!r} is already the name of a published collection")


def stretch(raster: RasterInput) -> tuple[float, float] | None:
    """The 2nd and 98th percentiles of the band's valid cells (None when it has none)."""
    ds = raster.dataset
    scale = max(1, int(np.ceil(max(ds.width, ds.height) / STRETCH_SAMPLE)))
    shape = (max(1, ds.height // scale), max(1, ds.width // scale))
    data = ds.read(raster.band, out_shape=shape, masked=True)
    values = data.compressed().astype(float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [2, 98])
    if high <= low:  # mostly one value (a sparse density): stretch to the largest instead
        high = float(values.max()) if values.max() > low else low + 1
    return float(low), float(high)


def _has_colormap(raster: RasterInput) -> bool:
    try:
        raster.dataset.colormap(raster.band)
    except ValueError:
        return False
    return True


def add_raster(
    conn: psycopg.Connection,
    path: Path,
    name: str,
    *,
    band: int | None = None,
    title: str | None = None,
    colormap: str | None = None,
    value_range: tuple[float, float] | None = None,
    replace: bool = False,
    reserved: Collection[str] = (),
) -> Registered:
    """Check ``path`` and register it as ``name`` (one row of ``smarttrees.rasters``).

    Raises
    ------
    RasterError
        Bad name (or one of ``reserved``, the published collections) or colormap, the name
        taken (without ``replace``), any problem of the file (see
        :func:`etl.raster.inputs.open_raster`), or a raster off the territory.

    """
    _check_name(name, reserved)
    if colormap is not None and colormap != FILE_COLORMAP and colormap not in cmap.list():
        raise RasterError("--colormap", f"{colormap!r} is not a colormap rio-tiler knows "
                          "(e.g. viridis, magma, greens, terrain, rdylgn)")
    with open_raster(path, band) as raster:
        require_overlap(raster, territory_bounds(conn), "the territory")
        chosen = colormap or (FILE_COLORMAP if _has_colormap(raster) else "viridis")
        low_high = value_range or stretch(raster)
        ds = raster.dataset
        record = Registered(
            name=name,
            title=title or raster.name,
            path=str(Path(path).resolve()),
            band=raster.band,
            crs=raster.crs_label,
            nodata=raster.nodata,
            value_min=low_high[0] if low_high else None,
            value_max=low_high[1] if low_high else None,
            colormap=chosen,
            units=ds.tags(raster.band).get("units") or ds.units[raster.band - 1] or None,
            bbox=raster.bounds_wgs84,
        )
        width, height, dtype = ds.width, ds.height, ds.dtypes[raster.band - 1]
    with conn.transaction():
        exists = conn.execute(
            "SELECT 1 FROM smarttrees.rasters WHERE name = %s", (name,)
        ).fetchone()
        if exists and not replace:
            raise RasterError("--name", f"{name!r} is already registered (use --replace)")
        conn.execute("DELETE FROM smarttrees.rasters WHERE name = %s", (name,))
        conn.execute(
            "INSERT INTO smarttrees.rasters (name, title, path, band, crs, width, height, dtype, "
            "nodata, value_min, value_max, colormap, units, bbox) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (record.name, record.title, record.path, record.band, record.crs, width, height,
             dtype, record.nodata, record.value_min, record.value_max, record.colormap,
             record.units, list(record.bbox)),
        )
    return record


def remove_raster(conn: psycopg.Connection, name: str) -> None:
    """Unregister ``name`` (the file is left alone)."""
    deleted = conn.execute("DELETE FROM smarttrees.rasters WHERE name = %s", (name,)).rowcount
    if not deleted:
        raise RasterError("--name", f"no raster {name!r} is registered")
