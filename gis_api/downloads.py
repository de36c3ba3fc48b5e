"""Items as files: ``/collections/{id}/items?f=gpkg|fgb|csv`` downloads what the filters select.

The items request is parsed and filtered exactly as for GeoJSON (:mod:`gis_api.features`), so a
web-map user downloads what the map shows. The rows stream from PostGIS into GDAL through
:func:`smarttrees.export.write_select` in a worker thread, into a temporary file that is sent
and then deleted. A download is bounded: at most ``SMARTTREES_DOWNLOAD_MAX_FEATURES`` features,
``SMARTTREES_DOWNLOAD_TIMEOUT_S`` seconds of database time, and two at a time per process.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path

from psycopg import AsyncClientCursor, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from gis_api import features
from gis_api.crs import CRS84, content_crs_header, to_output
from gis_api.errors import InvalidParameter
from gis_api.items_params import ItemsQuery
from gis_api.replicas import read_pool
from smarttrees.errors import ExportError
from smarttrees.export import FORMATS, write_select

# The formats offered by the server (a Shapefile is several files; the CLI writes those).
DOWNLOADS = ("gpkg", "fgb", "csv")
_SLOTS = asyncio.Semaphore(2)  # heavy work: two downloads at a time per process


def wanted(request: Request) -> str | None:
    """The download format asked for with ``f=``, or ``None`` for any other answer."""
    f = request.query_params.get("f")
    return f if f in DOWNLOADS else None


def download_sql(query: ItemsQuery, rows: int) -> features.Statement:
    """The first ``rows`` matching features' public properties and geometry (WKB), in id order."""
    c = query.collection
    where, params = features.conditions(query, with_after=True)
    names = c.property_names if query.properties is None else query.properties
    columns: list[sql.Composable] = [sql.Identifier("t", c.id_column)]
    columns += [sql.Identifier("t", name) for name in names if name != c.id_column]
    if c.geometry_column and not query.skip_geometry:
        # Files keep longitude first, whatever the CRS's official axis order.
        crs = CRS84 if query.crs.is_storage else query.crs
        geom = to_output(sql.Identifier("t", c.geometry_column), crs)
        if (c.geometry_type or "").startswith("Multi"):
            geom = sql.SQL("ST_Multi({})").format(geom)  # a file's layer has one type
        columns.append(sql.SQL("ST_AsBinary({}) AS geometry").format(geom))
    statement = sql.SQL(
        "SELECT {columns} FROM {rel} WHERE {where} ORDER BY {id} LIMIT %s OFFSET %s"
    ).format(
        columns=sql.SQL(", ").join(columns),
        rel=features.relation(c),
        where=where,
        id=sql.Identifier("t", c.id_column),
    )
    return statement, [*params, rows, query.offset]


async def download(request: Request, query: ItemsQuery, fmt: str) -> Response:
    """Answer an items request with a file of every matching feature (or the first ``limit``)."""
    settings = request.app.state.settings
    cap = settings.download_max_features
    rows = cap + 1  # one more than the cap tells the request is over it
    if "limit" in request.query_params:
        rows = min(rows, query.limit)
    statement, params = download_sql(query, rows)
    pool = read_pool(request)  # a replica's when one serves the read (gis_api.replicas)
    async with pool.connection() as conn:
        # Rendered with psycopg's own quoting: the file is written over another connection.
        text = AsyncClientCursor(conn).mogrify(statement, params)
    c = query.collection
    with_geometry = bool(c.geometry_column) and not query.skip_geometry
    if fmt == "fgb" and not with_geometry:  # FlatGeobuf has no geometry-less layers
        raise InvalidParameter("f=fgb: a FlatGeobuf file needs geometries; use f=gpkg or f=csv")
    crs = CRS84 if query.crs.is_storage else query.crs
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-download-"))
    out = folder / f"{c.id}{FORMATS[fmt].suffix}"
    try:
        async with _SLOTS:
            written = await asyncio.to_thread(
                write_select, _download_conninfo(pool.url, settings.download_timeout_s), text,
                (), out, layer=c.id, fmt=fmt,
                geometry_type=(c.geometry_type or "Unknown") if with_geometry else None,
                crs=("EPSG:4326" if crs is CRS84 else crs.authority) if with_geometry else None,
            )
    except ExportError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidParameter(f"f={fmt}: {exc}") from None
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if "transform: " in str(exc):  # PostGIS: a bbox outside the area of its CRS
            raise InvalidParameter("bbox: coordinates outside the area their CRS covers") from None
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if written > cap:
        shutil.rmtree(folder, ignore_errors=True)
        raise InvalidParameter(
            f"f={fmt}: more than {cap:,} features match; narrow the request (bbox, filter) or "
            "use `smarttrees export` on the server"
        )
    headers = {**content_crs_header(crs), "X-Feature-Count": str(written)}
    return FileResponse(
        out, media_type=FORMATS[fmt].media_type, filename=out.name, headers=headers,
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )


def _download_conninfo(url: str, timeout_s: int) -> str:
    """The server's connection string with the downloads' own statement timeout."""
    options = str(conninfo_to_dict(url).get("options") or "")
    kept = re.sub(r"-c\s*statement_timeout=\S+", "", options).strip()
    timeout = f"-c statement_timeout={timeout_s * 1000}"
    return make_conninfo(url, options=f"{kept} {timeout}".strip())
