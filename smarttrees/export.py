"""Exports of public layers to the files GIS users open, streamed from PostGIS.

The layer's public SELECT runs through the ADBC PostgreSQL driver, which hands over Arrow record
batches as it reads (binary COPY underneath), and pyogrio writes those batches with GDAL as they
come (``write_arrow``). Python never touches a row, so memory stays flat at a million trees and
the file is written at GDAL's own speed. The file is written beside its final name and moved
into place when complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyproj
from psycopg import sql

from smarttrees import catalog, read_ahead
from smarttrees.errors import ExportError


@dataclass(frozen=True)
class Format:
    """One output format: its GDAL driver, file suffix and creation options."""

    driver: str
    suffix: str
    media_type: str
    layer_options: tuple[tuple[str, str], ...] = ()
    geometry: bool = True  # False: positions as lon/lat (points) or WKT text columns


FORMATS: dict[str, Format] = {
    "gpkg": Format("GPKG", ".gpkg", "application/geopackage+sqlite3"),
    "fgb": Format("FlatGeobuf", ".fgb", "application/flatgeobuf"),
    # .cpg says UTF-8, so Vietnamese names survive in every GIS.
    "shp": Format("ESRI Shapefile", ".shp", "application/x-shapefile",
                  (("ENCODING", "UTF-8"),)),
    "csv": Format("CSV", ".csv", "text/csv", (("GEOMETRY", "AS_WKT"),)),
    "geojson": Format("GeoJSON", ".geojson", "application/geo+json",
                      (("RFC7946", "YES"), ("COORDINATE_PRECISION", "7"))),
    "xlsx": Format(
        "XLSX", ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        geometry=False,
    ),
}

SHAPEFILE_FIELD_CHARS = 10
_ATTRIBUTE_FORMATS = ("gpkg", "csv", "xlsx")  # formats that hold a table without geometry


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    layer: str
    rows: int
    warnings: tuple[str, ...] = ()


def export_layer(
    url: str,
    layer: str,
    fmt: str,
    out: Path,
    *,
    bbox: Sequence[float] | None = None,
    crs: str | None = None,
) -> ExportResult:
    """Write one public layer to ``out`` in format ``fmt``.

    Parameters
    ----------
    url
        The database.
    layer
        A layer id of :mod:`smarttrees.catalog`; its public fields only are written.
    fmt
        One of :data:`FORMATS` (``gpkg``, ``fgb``, ``shp``, ``csv``, ``geojson``, ``xlsx``).
    out
        The file to write; replaced when it exists, only once the new one is complete.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees: only features intersecting it.
    crs
        Output CRS (``EPSG:9213``, ``4326``, a WKT…); default EPSG:4326. GeoJSON is always
        WGS 84 (RFC 7946).

    """
    found = catalog.get(layer)
    if found is None:
        names = ", ".join(x.id for x in catalog.LAYERS)
        raise ExportError(f"unknown layer {layer!r}; layers: {names}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    if found.geometry is None and fmt not in _ATTRIBUTE_FORMATS:
        raise ExportError(
            f"layer {layer!r} has no geometry: export it as {', '.join(_ATTRIBUTE_FORMATS)}")
    target = _crs(crs if fmt != "geojson" else None)
    bounds = _bbox(bbox)
    spec = FORMATS[fmt]
    geometry_type = found.geometry_type or "Unknown"
    if found.geometry is None:
        as_columns = "none"
    elif not spec.geometry:
        as_columns = "xy" if geometry_type == "Point" else "wkt"
    else:
        as_columns = None
    multi = geometry_type.startswith("Multi")  # a polygon among multipolygons is promoted
    srid = _srid(url, target)
    query, params = _select(found, bounds, target, srid, multi, as_columns)
    fields = [f.name for f in found.default_fields]
    notes = _shapefile_names(fields) if spec.driver == "ESRI Shapefile" else []
    rows = write_select(
        url, query, params, out, layer=layer, fmt=fmt,
        geometry_type=None if found.geometry is None else geometry_type, crs=target.to_wkt(),
    )
    return ExportResult(out, layer, rows, tuple(notes))


def write_select(
    url: str,
    query: str,
    params: Sequence[object],
    out: Path,
    *,
    layer: str,
    fmt: str,
    geometry_type: str | None,
    crs: str | None,
) -> int:
    """Run ``query`` and write its rows to ``out``; the number of rows written.

    Parameters
    ----------
    url
        The database (a URL or libpq key=value string; its options apply, e.g. a timeout).
    query
        A SELECT whose ``geometry`` column is WKB (or none, for a table), ``$n`` parameters.
    params
        The parameters' values.
    out
        The file, moved into place once complete (its side files too, for a Shapefile).
    layer
        The layer name inside the file.
    fmt
        A key of :data:`FORMATS`.
    geometry_type
        GDAL's name of the geometry type (``Point``, ``MultiPolygon``…); ``None``: no geometry.
    crs
        The geometry's CRS as WKT or an authority code.

    """
    spec = FORMATS[fmt]
    counter = [0]
    with _connection(url) as conn, conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(query, list(params) or None)
        reader = cur.fetch_record_batch()
        with _written_beside(out, spec.suffix) as partial, _prefetched(reader, counter) as stream:
            _write(stream, partial, layer, spec, geometry_type, crs)
    return counter[0]


@contextlib.contextmanager
def _connection(url: str) -> Iterator[object]:
    import adbc_driver_postgresql.dbapi as adbc  # heavy: only when exporting

    try:
        conn = adbc.connect(url)
    except Exception as exc:  # the driver's errors carry no stable class to catch
        raise ExportError(f"cannot connect to the database: {str(exc).splitlines()[0]}") from None
    try:
        yield conn
    finally:
        conn.close()


def _crs(value: str | None) -> pyproj.CRS:
    if value is None:
        return pyproj.CRS.from_epsg(4326)
    text = value.strip()
    try:
        return pyproj.CRS.from_user_input(int(text) if text.isdigit() else text)
    except pyproj.exceptions.CRSError:
        raise ExportError(f"--crs {value!r} is not a coordinate system PROJ knows") from None


def _srid(url: str, target: pyproj.CRS) -> int | None:
    """The target's SRID when PostGIS's ``spatial_ref_sys`` has it, else ``None``."""
    import psycopg

    code = target.to_epsg()
    if code is None:
        return None
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT 1 FROM public.spatial_ref_sys WHERE srid = %s", [code]).fetchone()
    except psycopg.OperationalError as exc:
        raise ExportError(f"cannot connect to the database: {exc}") from None
    return code if row else None


def _bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise ExportError("--bbox needs four numbers: min_lon,min_lat,max_lon,max_lat")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x0 < x1 and y0 < y1):
        raise ExportError("--bbox must be min_lon,min_lat,max_lon,max_lat (minimum first)")
    return x0, y0, x1, y1


def _select(
    layer: catalog.Layer,
    bbox: tuple[float, ...] | None,
    target: pyproj.CRS,
    srid: int | None,
    multi: bool,
    as_columns: str | None,
) -> tuple[str, list[object]]:
    """The layer's public fields (lookups joined) and its geometry in the target CRS.

    The geometry is WKB, or for formats without one (``as_columns``) ``x``/``y`` columns of a
    point or a ``wkt`` text column (``"none"``: a layer without geometry).
    """
    columns: list[sql.Composable] = []
    joins: dict[tuple[str, str], str] = {}  # (table, key) -> alias: one join per reference
    if layer.key is not None and layer.field(layer.key) is None:
        columns.append(sql.Identifier("l", layer.key))
    for field in layer.default_fields:
        if field.lookup is None:
            value: sql.Composable = sql.Identifier("l", field.name)
            if field.type == "json":
                value = sql.SQL("{}::text").format(value)
        else:
            ref = (field.lookup.table, field.lookup.key)
            alias = joins.setdefault(ref, f"ref{len(joins)}")
            value = sql.Identifier(alias, field.lookup.column)
        columns.append(sql.SQL("{} AS {}").format(value, sql.Identifier(field.name)))
    if layer.geometry is not None:
        geom: sql.Composable = sql.Identifier("l", layer.geometry)
        if multi:
            geom = sql.SQL("ST_Multi({})").format(geom)
        if srid != 4326:
            # By SRID PostGIS reuses one transformation; a PROJ text is rebuilt for every row.
            to: sql.Composable = sql.Literal(srid) if srid else sql.Literal(target.to_wkt())
            geom = sql.SQL("ST_Transform({}, {})").format(geom, to)
        columns.append({
            None: sql.SQL("ST_AsBinary({g}) AS geometry"),
            "xy": sql.SQL("ST_X({g}) AS x, ST_Y({g}) AS y"),
            "wkt": sql.SQL("ST_AsText({g}) AS wkt"),
        }[as_columns].format(g=geom))
    query = sql.SQL("SELECT {columns} FROM {rel} AS l").format(
        columns=sql.SQL(", ").join(columns), rel=sql.SQL(layer.relation))
    for (table, key), alias in joins.items():
        query += sql.SQL(" LEFT JOIN {t} AS {a} ON {a}.id = {k}").format(
            t=sql.Identifier("smarttrees", table), a=sql.Identifier(alias),
            k=sql.Identifier("l", key))
    params: list[object] = []
    if bbox is not None and layer.geometry is not None:  # ADBC binds PostgreSQL's $n parameters
        query += sql.SQL(" WHERE {g} && ST_MakeEnvelope($1, $2, $3, $4, 4326)").format(
            g=sql.Identifier("l", layer.geometry))
        params.extend(bbox)
    return query.as_string(None), params


@contextlib.contextmanager
def _prefetched(
    reader: pa.RecordBatchReader, counter: list[int]
) -> Iterator[pa.RecordBatchReader]:
    """The same stream, read ahead by a thread while GDAL writes; rows counted into ``counter``.

    Reading (ADBC) and writing (GDAL) both release the GIL, so the database's COPY and the
    file's encoding overlap (:func:`smarttrees.read_ahead.ahead`; a few batches wait, which
    bounds the memory). When the writer stops early (a full disk, a refused file), the reader
    is told to stop and is waited for, so the connection is never closed under it and no
    thread is left behind.
    """
    batches = read_ahead.ahead(iter(reader), depth=4, name="export-reader")

    def counted() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            counter[0] += batch.num_rows
            yield batch

    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, counted())
    finally:
        batches.close()      # stops the reading thread and waits for it


def _write(
    reader: object, path: Path, layer: str, spec: Format, geometry_type: str | None,
    crs: str | None,
) -> None:
    import pyogrio

    with_geometry = spec.geometry and geometry_type is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL's notes on truncated names
        pyogrio.write_arrow(
            reader,
            str(path),
            layer=layer,
            driver=spec.driver,
            geometry_name="geometry" if with_geometry else None,
            geometry_type=geometry_type if with_geometry else None,
            crs=crs if with_geometry else None,
            layer_options=dict(spec.layer_options),
        )


def _shapefile_names(names: Sequence[str]) -> list[str]:
    long = [n for n in names if n != "geometry" and len(n) > SHAPEFILE_FIELD_CHARS]
    if not long:
        return []
    return [
        "Shapefile field names are cut to 10 characters: "
        + ", ".join(f"{n} → {n[:SHAPEFILE_FIELD_CHARS]}" for n in long)
        + " (GeoPackage keeps them whole)"
    ]


@contextlib.contextmanager
def _written_beside(out: Path, suffix: str) -> Iterator[Path]:
    """A temporary path in ``out``'s folder, moved to ``out`` (with its side files) on success."""
    out = out.expanduser()
    folder = out.resolve().parent
    if not folder.is_dir():
        raise ExportError(f"the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"cannot write into {folder}: permission denied")
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    partial = work / (out.stem + suffix)
    try:
        yield partial
        for produced in work.iterdir():  # a shapefile is several files: .shp .shx .dbf .prj .cpg
            os.replace(produced, folder / (out.stem + produced.suffix))
    finally:
        for leftover in work.iterdir():
            leftover.unlink()
        work.rmdir()
