"""Versioned schema migrations (yoyo), applied by ``smarttrees db upgrade``."""

from __future__ import annotations

import logging
from importlib.resources import files

from yoyo import get_backend, read_migrations

# Yoyo logs every SQL step at INFO; a person wants the migration ids, which we print ourselves.
logging.getLogger("yoyo").setLevel(logging.WARNING)


def _yoyo_url(url: str) -> str:
    """Yoyo picks psycopg 3 from the ``postgresql+psycopg`` scheme.

    Its bookkeeping tables are pinned to ``public``: with the default search path they would
    move into the ``smarttrees`` schema (named like our database user) once it exists.
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        url = f"postgresql+psycopg://{rest}"
    return url + ("&" if "?" in url else "?") + "schema=public"


def pending_migrations(url: str) -> list[str]:
    """Ids of the migrations not yet applied to the database."""
    migrations = read_migrations(str(files("smarttrees") / "migrations"))
    with get_backend(_yoyo_url(url)) as backend:  # closes its connection on exit
        return [m.id for m in backend.to_apply(migrations)]


def upgrade(url: str) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the ids applied.

    The VN-2000 projections PostGIS lacks are registered too (:func:`register_projections`).
    """
    migrations = read_migrations(str(files("smarttrees") / "migrations"))
    with get_backend(_yoyo_url(url)) as backend, backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    register_projections(url)
    return [m.id for m in todo]


# VN-2000 / TM-3 provincial zones (EPSG:9205-9218), missing from PostGIS 3.3's spatial_ref_sys.
VN2000_TM3_ZONES = tuple(range(9205, 9219))


def register_projections(url: str, codes: tuple[int, ...] = VN2000_TM3_ZONES) -> list[int]:
    """Add EPSG codes PostGIS lacks to ``spatial_ref_sys``, from PROJ's own database.

    ``ST_Transform`` to an SRID reuses one transformation per session; to a PROJ text it builds
    one per row (20 ms each for VN-2000 / TM-3: 40 s for 2,000 trees, against 4 ms by SRID).
    Returns the codes added; running it again adds nothing.
    """
    import warnings

    import psycopg
    import pyproj

    added = []
    with psycopg.connect(url, autocommit=True) as conn:
        present = {r[0] for r in conn.execute(
            "SELECT srid FROM public.spatial_ref_sys WHERE srid = ANY(%s)", [list(codes)])}
        for code in codes:
            if code in present:
                continue
            crs = pyproj.CRS.from_epsg(code)
            with warnings.catch_warnings():  # PROJ strings are lossy; PostGIS uses the EPSG code
                warnings.simplefilter("ignore", UserWarning)
                proj4 = crs.to_proj4()
            conn.execute(
                "INSERT INTO public.spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)"
                " VALUES (%s, 'EPSG', %s, %s, %s) ON CONFLICT (srid) DO NOTHING",
                [code, code, crs.to_wkt(version="WKT1_GDAL"), proj4],
            )
            added.append(code)
    return added
