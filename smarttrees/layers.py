"""The analyst's entry point: any public layer as a GeoDataFrame in one line.

>>> from smarttrees.layers import read_layer
>>> trees = read_layer("trees", bbox=(105.80, 21.55, 105.88, 21.62))   # doctest: +SKIP

Only public layers are offered: personal data (citizen-support cases, household owners of
stands) never leave the database through this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import pandas as pd
import shapely
from psycopg import sql

from smarttrees.database import connect

# Each layer is a SELECT of public columns with the geometry last, named ``geom``.
LAYERS: dict[str, str] = {
    "trees": """
        SELECT t.id, t.tree_code, t.category, s.scientific_name, s.vietnamese_name,
               s.wood_density::float8 AS wood_density, t.dbh_cm, t.height_m, t.crown_m,
               t.condition, t.planted_on,
               t.commune_code, t.stand_id, t.source, t.updated_at, t.geom
        FROM smarttrees.trees t LEFT JOIN smarttrees.species s ON s.id = t.species_id""",
    "stands": """
        SELECT st.id, st.stand_code, s.scientific_name, s.vietnamese_name, st.planting_year,
               st.area_ha::float8 AS area_ha, st.planted_count, st.owner_type,
               CASE WHEN st.owner_type = 'household' THEN NULL ELSE st.owner_name END AS owner_name,
               st.forest_function, st.harvest_allowed_m3::float8 AS harvest_allowed_m3,
               st.commune_code, st.geom
        FROM smarttrees.stands st LEFT JOIN smarttrees.species s ON s.id = st.species_id""",
    "nurseries": """
        SELECT id, nursery_code, name, operator, certificate_no, capacity, commune_code, geom
        FROM smarttrees.nurseries""",
    "communes": """
        SELECT id, code, name, name_ascii, unit_type, valid_from, geom FROM smarttrees.communes""",
    "citizen_support_by_commune": """
        SELECT commune_code, commune_name, people, amount_vnd, suppressed, geom
        FROM smarttrees.citizen_support_by_commune""",
}


def read_layer(
    name: str,
    *,
    bbox: Sequence[float] | None = None,
    limit: int | None = None,
    url: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one public layer into a GeoDataFrame (EPSG:4326).

    Parameters
    ----------
    name:
        One of :data:`LAYERS` (``trees``, ``stands``, ``nurseries``, ``communes``,
        ``citizen_support_by_commune``).
    bbox:
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees; only features intersecting it.
    limit:
        At most this many rows (in id order where the layer has one).
    url:
        Database URL; default: the configured one (``SMARTTREES_DATABASE_URL`` or the local
        PostGIS, started if needed).

    """
    if name not in LAYERS:
        raise KeyError(f"unknown layer {name!r}; layers: {', '.join(sorted(LAYERS))}")
    query = sql.SQL("SELECT * FROM ({layer}) AS layer").format(layer=sql.SQL(LAYERS[name]))
    params: list[object] = []
    if bbox is not None:
        query += sql.SQL(" WHERE geom && ST_MakeEnvelope(%s, %s, %s, %s, 4326)")
        params.extend(float(v) for v in bbox)
    if limit is not None:
        query += sql.SQL(" LIMIT %s")
        params.append(int(limit))
    wrapped = sql.SQL("SELECT *, ST_AsBinary(geom) AS wkb FROM ({q}) AS q").format(q=query)
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(wrapped, params)
        columns = [c.name for c in cur.description or []]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
    geometry = shapely.from_wkb(frame.pop("wkb").to_numpy())
    return gpd.GeoDataFrame(frame.drop(columns="geom"), geometry=geometry, crs="EPSG:4326")
