"""Rasters registered for serving: ``smarttrees raster add FILE --name NAME``.

A registered raster stays where it is (its absolute path is recorded) and is served as raster
tiles (``/collections/{name}/tiles/WebMercatorQuad/{z}/{y}/{x}.png``) and as an OGC API –
Coverages collection. The tiles are read from a Web Mercator copy written at registration in
the data folder (:mod:`etl.raster.mercator`), deleted with the registration. The colour
stretch is stored with it: given, or the 2nd–98th percentiles of a decimated read (the
overviews of a COG make it cheap); a band with its own colour table (a class map) is drawn
with those colours.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from rio_tiler.colormap import cmap

from etl.raster.errors import RasterError
from etl.raster.inputs import RasterInput, open_raster, require_overlap, territory_bounds
from etl.raster.mercator import copies_folder, remove_copy, write_mercator_copy

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
    mercator_path: str


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
    copies: Path | None = None,
) -> Registered:
    """Check ``path`` and register it as ``name`` (one row of ``smarttrees.rasters``).

    The Web Mercator copy the tiles are read from is written into ``copies`` (default: the
    ``rasters`` folder of the data folder) before the row; a replaced raster's copy is
    deleted once the new row is committed, and a failed registration deletes the new copy.

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
    if copies is None:
        from smarttrees.settings import get_settings

        copies = copies_folder(get_settings().data_dir)
    # A new file for every registration (the name alone would overwrite the copy a running
    # server still reads while the old row is current).
    mercator = Path(copies).resolve() / f"{name}.{secrets.token_hex(4)}.3857.tif"
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
            mercator_path=str(mercator),
        )
        width, height, dtype = ds.width, ds.height, ds.dtypes[raster.band - 1]
    if not replace and _registered_copy(conn, name) is not None:  # before the long warp
        raise RasterError("--name", f"{name!r} is already registered (use --replace)")
    write_mercator_copy(Path(record.path), record.band, mercator,
                        categorical=chosen == FILE_COLORMAP)
    try:
        with conn.transaction():
            previous = _registered_copy(conn, name)
            if previous is not None and not replace:
                raise RasterError("--name", f"{name!r} is already registered (use --replace)")
            conn.execute("DELETE FROM smarttrees.rasters WHERE name = %s", (name,))
            conn.execute(
                "INSERT INTO smarttrees.rasters (name, title, path, band, crs, width, height, "
                "dtype, nodata, value_min, value_max, colormap, units, bbox, mercator_path) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (record.name, record.title, record.path, record.band, record.crs, width, height,
                 dtype, record.nodata, record.value_min, record.value_max, record.colormap,
                 record.units, list(record.bbox), record.mercator_path),
            )
    except BaseException:
        remove_copy(record.mercator_path)
        raise
    if previous:
        remove_copy(previous[0])
    return record


def _registered_copy(conn: psycopg.Connection, name: str) -> tuple[str | None] | None:
    """``(mercator_path,)`` of the raster registered as ``name``, or None when there is none."""
    row = conn.execute(
        "SELECT mercator_path FROM smarttrees.rasters WHERE name = %s", (name,)
    ).fetchone()
    return None if row is None else (row[0],)


def remove_raster(conn: psycopg.Connection, name: str) -> None:
    """Unregister ``name`` and delete its Web Mercator copy (the registered file is left alone)."""
    with conn.transaction():
        row = conn.execute(
            "DELETE FROM smarttrees.rasters WHERE name = %s RETURNING mercator_path", (name,)
        ).fetchone()
    if row is None:
        raise RasterError("--name", f"no raster {name!r} is registered")
    remove_copy(row[0])
