"""OGC API – Tiles: Mapbox vector tiles of trees, stands and communes on WebMercatorQuad.

One module per job:

- :mod:`~gis_api.tiles.layers`: the tiled collections and the MVT layers of their tiles;
- :mod:`~gis_api.tiles.grid`: the WebMercatorQuad tile matrix set (morecantile) and tile math;
- :mod:`~gis_api.tiles.params`: the tile address and filters of a request, parsed;
- :mod:`~gis_api.tiles.render`: the SQL (``gis_api/sql/tiles_*.sql``) that makes a tile;
- :mod:`~gis_api.tiles.mvt`: point features encoded as an MVT layer with numpy;
- :mod:`~gis_api.tiles.tree_points`: a point tile's trees, from the columns PostgreSQL sends;
- :mod:`~gis_api.tiles.cache`: the tile cache keyed by the data version, ETags;
- :mod:`~gis_api.tiles.documents`: tilesets, tileset metadata, tile matrix sets (pydantic);
- :mod:`~gis_api.tiles.endpoints`: the routes.
"""

from gis_api.links import base_url
from gis_api.tiles.endpoints import routes
from gis_api.tiles.grid import TileAddress
from gis_api.tiles.layers import MAX_ZOOM, MVT_MEDIA_TYPE, TMS_ID, TileCollection, tile_collections
from gis_api.tiles.params import parse_tile_address
from gis_api.tiles.render import refresh_tree_grid

__all__ = [
    "MAX_ZOOM",
    "MVT_MEDIA_TYPE",
    "TMS_ID",
    "TileAddress",
    "TileCollection",
    "base_url",
    "parse_tile_address",
    "refresh_tree_grid",
    "routes",
    "tile_collections",
]
