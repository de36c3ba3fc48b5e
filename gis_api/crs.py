"""The coordinate reference systems the features API speaks (OGC API Features Part 2).

Geometry is stored in EPSG:4326 (longitude, latitude). Output and input in another CRS is a
PostGIS ``ST_Transform``; EPSG:4326 itself is served in its official axis order (latitude first),
as Part 2 requires, while CRS84 keeps longitude first. The province's own CRS is VN-2000 / TM-3
with central meridian 106°30' (EPSG:9213), which PostGIS 3.3's ``spatial_ref_sys`` lacks: the
schema upgrade registers it from PROJ's database, because a transformation named by PROJ text is
rebuilt for every row (20 ms each) while one named by SRID is reused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gis_api.errors import InvalidParameter


@dataclass(frozen=True)
class Crs:
    """A CRS the API offers.

    Example: ``Crs("http://www.opengis.net/def/crs/EPSG/0/3857", "EPSG:3857", 3857, 2)``.
    """

    uri: str
    authority: str  # what PROJ understands: "EPSG:9213"
    srid: int | None  # PostGIS SRID when spatial_ref_sys has it
    decimals: int  # GeoJSON coordinate precision
    lat_first: bool = False  # axis order latitude, longitude (EPSG:4326)

    @property
    def is_storage(self) -> bool:
        """True when geometries need no reprojection (only, maybe, an axis swap)."""
        return self.srid == 4326


CRS84 = Crs("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84", 4326, 7)
EPSG4326 = Crs("http://www.opengis.net/def/crs/EPSG/0/4326", "EPSG:4326", 4326, 7, True)
WEB_MERCATOR = Crs("http://www.opengis.net/def/crs/EPSG/0/3857", "EPSG:3857", 3857, 2)
# Registered in spatial_ref_sys by `smarttrees db upgrade` (smarttrees.schema).
VN2000_TN = Crs("http://www.opengis.net/def/crs/EPSG/0/9213", "EPSG:9213", 9213, 3)

SUPPORTED: tuple[Crs, ...] = (CRS84, EPSG4326, WEB_MERCATOR, VN2000_TN)
URIS: tuple[str, ...] = tuple(c.uri for c in SUPPORTED)


def parse_crs(value: str | None, parameter: str = "crs") -> Crs:
    """The supported CRS named by a URI (or a short ``EPSG:n`` / ``CRS84`` form).

    Raises
    ------
    InvalidParameter
        The CRS is not one the API offers (400).

    """
    if value is None or value == "":
        return CRS84
    text = value.strip().strip("[]<>")
    for crs in SUPPORTED:
        short = crs.uri.rsplit("/", 1)[-1]
        if text in (crs.uri, crs.authority, short) or text == f"EPSG:{short}":
            return crs
    raise InvalidParameter(
        f"{parameter}: unsupported CRS {value!r}; use one of {', '.join(URIS)}"
    )


def to_output(geom: sql.Composable, crs: Crs) -> sql.Composable:
    """SQL turning stored geometry ``geom`` into ``crs`` (axis order included)."""
    if crs.is_storage:
        return sql.SQL("ST_FlipCoordinates({})").format(geom) if crs.lat_first else geom
    if crs.srid is not None:
        return sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(crs.srid))
    return sql.SQL("ST_Transform({}, {})").format(geom, sql.Literal(crs.authority))


def from_input(geom: sql.Composable, crs: Crs) -> sql.Composable:
    """SQL turning geometry ``geom`` given in ``crs`` into stored EPSG:4326."""
    if crs.is_storage:
        return sql.SQL("ST_FlipCoordinates({})").format(geom) if crs.lat_first else geom
    if crs.srid is not None:
        return sql.SQL("ST_Transform(ST_SetSRID({}, {}), 4326)").format(
            geom, sql.Literal(crs.srid)
        )
    return sql.SQL("ST_Transform({}, {}, 4326)").format(geom, sql.Literal(crs.authority))


def content_crs_header(crs: Crs) -> dict[str, str]:
    """The ``Content-Crs`` response header for ``crs``."""
    return {"Content-Crs": f"<{crs.uri}>"}


@contextmanager
def transforming(what: str) -> Iterator[None]:
    """Run statements that reproject ``what``; coordinates outside their CRS's area are a 400.

    PostGIS reports them as an internal error ("transform: Point outside of projection
    domain"), which is the client's input, not the server's fault.
    """
    try:
        yield
    except psycopg.errors.InternalError_ as exc:
        if not (exc.diag.message_primary or "").startswith("transform:"):
            raise
        raise InvalidParameter(
            f"{what}: coordinates outside the area their CRS covers ({exc.diag.message_primary})"
        ) from None

