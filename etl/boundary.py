"""``smarttrees load territory FILE``: a boundary read from a file becomes the territory.

The file's polygons (any format GDAL reads, any CRS it declares) are reprojected to WGS 84 and
their union stored by :func:`smarttrees.territory.store_boundary`; the boundary loaded before
is kept, replaced. A file without a polygon is refused, naming the file and the first row that
is not one; nothing changes.
"""

from __future__ import annotations

from pathlib import Path

from etl.errors import InputError
from etl.readers import read_gis_frame
from smarttrees import territory
from smarttrees.database import connect


def read_polygons(path: Path) -> list[bytes]:
    """The file's polygons as WKB in EPSG:4326; refuses a file with anything else or none."""
    import shapely

    frame = read_gis_frame(path)
    if frame.crs is None:
        raise InputError(path, "declares no CRS (a Shapefile without .prj?)")
    frame = frame.to_crs(4326)
    polygons: list[bytes] = []
    for row, geom in enumerate(frame.geometry, start=1):
        if geom is None or geom.is_empty:
            raise InputError(path, "no geometry where a polygon was expected", row=row,
                             field="geometry")
        if geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise InputError(path, f"{geom.geom_type} where a polygon was expected", row=row,
                             field="geometry")
        polygons.append(shapely.to_wkb(geom))
    if not polygons:
        raise InputError(path, "holds no polygon: a territory needs at least one",
                         field="geometry")
    return polygons


def load_boundary(url: str | None, path: Path, *, name: str | None = None) -> territory.Territory:
    """Make the polygons of ``path`` the territory (all or nothing); return it."""
    polygons = read_polygons(path)
    with connect(url) as conn:
        return territory.store_boundary(conn, polygons, name=name or path.stem, source=path.name)
