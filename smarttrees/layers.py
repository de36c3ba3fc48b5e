"""``read_layer``: kept as a thin alias of :meth:`smarttrees.api.Database.read`.

>>> from smarttrees.layers import read_layer
>>> trees = read_layer("trees", bbox=(105.80, 21.55, 105.88, 21.62))   # doctest: +SKIP

New code should use ``db = smarttrees.connect()`` and its methods (``db.trees(…)``), which
take filters and read through Arrow. The layers and their public fields are those of
:mod:`smarttrees.catalog`; personal data never leave the database through either.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import pandas as pd

from smarttrees import catalog
from smarttrees.api import connect

LAYERS: tuple[str, ...] = tuple(layer.id for layer in catalog.LAYERS)


def read_layer(
    name: str,
    *,
    bbox: Sequence[float] | None = None,
    limit: int | None = None,
    url: str | None = None,
) -> gpd.GeoDataFrame | pd.DataFrame:
    """Read one public layer (EPSG:4326); communes are those in force today.

    Parameters
    ----------
    name:
        A layer id of :data:`LAYERS` (``trees``, ``stands``, ``communes``…).
    bbox:
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees; only features intersecting it.
    limit:
        At most this many rows.
    url:
        Database URL; default: the configured one (``SMARTTREES_DATABASE_URL`` or the local
        PostGIS, started if needed).

    """
    with connect(url) as db:
        if name == "communes":
            communes = db.communes(bbox=bbox)
            return communes if limit is None else communes.head(limit)
        return db.read(name, bbox=bbox, limit=limit)
