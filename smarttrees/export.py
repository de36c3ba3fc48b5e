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

from smarttrees.errors import ExportError
from smarttrees.layers import LAYERS


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
        A public layer name (see :data:`smarttrees.layers.LAYERS`).
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
    if layer not in LAYERS:
        raise ExportError(f"unknown layer {layer!r}; layers: {', '.join(sorted(LAYERS))}")
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    target = _crs(crs if fmt != "geojson" else None)
    bounds = _bbox(bbox)
    spec = FORMATS[fmt]
    notes: list[str] = []
    with _connection(url) as conn:
        geometry_type, multi = _geometry_type(conn, layer)
        as_columns = None if spec.geometry else ("xy" if geometry_type == "Point" else "wkt")
        query, params = _select(conn, layer, bounds, target, multi, as_columns)
        counter = [0]
        with conn.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute(query, params or None)
            reader = cur.fetch_record_batch()
            if spec.driver == "ESRI Shapefile":
                notes += _shapefile_names(reader.schema.names)
            with _written_beside(out, spec.suffix) as partial:
                _write(_counted(reader, counter), partial, layer, spec, geometry_type, target)
    return ExportResult(out, layer, counter[0], tuple(notes))


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


def _bbox(bbox: Sequence[float] | None) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    if len(bbox) != 4:
        raise ExportError("--bbox needs four numbers: min_lon,min_lat,max_lon,max_lat")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x0 < x1 and y0 < y1):
        raise ExportError("--bbox must be min_lon,min_lat,max_lon,max_lat (minimum first)")
    return x0, y0, x1, y1


def _geometry_type(conn: object, layer: str) -> tuple[str, bool]:
    """The layer's geometry type for GDAL, and whether polygons must be made multi."""
    query = sql.SQL(
        "SELECT DISTINCT GeometryType(geom) FROM ({layer}) AS l WHERE geom IS NOT NULL"
    ).format(layer=sql.SQL(LAYERS[layer]))
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(query.as_string(None))
        kinds = {row[0] for row in cur.fetchall()}
    if not kinds:
        return "Unknown", False
    if len(kinds) == 1:
        kind = kinds.pop()
        return _GDAL_TYPES.get(kind, "Unknown"), False
    if kinds <= {"POLYGON", "MULTIPOLYGON"}:
        return "MultiPolygon", True
    return "Unknown", False


_GDAL_TYPES = {
    "POINT": "Point", "MULTIPOINT": "MultiPoint", "LINESTRING": "LineString",
    "MULTILINESTRING": "MultiLineString", "POLYGON": "Polygon", "MULTIPOLYGON": "MultiPolygon",
}


def _select(
    conn: object,
    layer: str,
    bbox: tuple[float, ...] | None,
    target: pyproj.CRS,
    multi: bool,
    as_columns: str | None,
) -> tuple[str, list[object]]:
    """The layer's public columns and its geometry in the target CRS.

    The geometry is WKB, or for formats without one (``as_columns``) ``x``/``y`` columns of a
    point or a ``wkt`` text column.
    """
    base = sql.SQL(LAYERS[layer])
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute(sql.SQL("SELECT * FROM ({}) AS l LIMIT 0").format(base).as_string(None))
        names = [d[0] for d in cur.description if d[0] != "geom"]
    geom: sql.Composable = sql.SQL("ST_Multi(l.geom)") if multi else sql.SQL("l.geom")
    if target.to_epsg() != 4326:
        # PROJ names the target: PostGIS's spatial_ref_sys lacks some (VN-2000 TM-3 zones).
        geom = sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(target.to_wkt()))
    position = {
        None: sql.SQL("ST_AsBinary({g}) AS geometry"),
        "xy": sql.SQL("ST_X({g}) AS x, ST_Y({g}) AS y"),
        "wkt": sql.SQL("ST_AsText({g}) AS wkt"),
    }[as_columns].format(g=geom)
    query = sql.SQL("SELECT {columns}, {position} FROM ({layer}) AS l").format(
        columns=sql.SQL(", ").join(sql.Identifier("l", n) for n in names),
        position=position,
        layer=base,
    )
    params: list[object] = []
    if bbox is not None:  # ADBC binds PostgreSQL's own $n parameters
        query += sql.SQL(" WHERE l.geom && ST_MakeEnvelope($1, $2, $3, $4, 4326)")
        params.extend(bbox)
    return query.as_string(None), params


def _counted(reader: pa.RecordBatchReader, counter: list[int]) -> pa.RecordBatchReader:
    """The same stream, adding each batch's row count to ``counter[0]`` as it passes."""

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            counter[0] += batch.num_rows
            yield batch

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _write(
    reader: object, path: Path, layer: str, spec: Format, geometry_type: str,
    target: pyproj.CRS,
) -> None:
    import pyogrio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GDAL's notes on truncated names
        pyogrio.write_arrow(
            reader,
            str(path),
            layer=layer,
            driver=spec.driver,
            geometry_name="geometry" if spec.geometry else None,
            geometry_type=geometry_type if spec.geometry else None,
            crs=target.to_wkt() if spec.geometry else None,
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
