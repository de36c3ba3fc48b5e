"""OGC API – Tiles: vector tiles of trees, stands and communes, decoded with a real MVT decoder.

One database and one server for the module: a town of a few thousand trees (seeded random
positions), two communes and a stand. Tiles are checked against SQL counts over the same
envelopes, so the assertions hold whatever the random positions turn out to be.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import mapbox_vector_tile
import psycopg
import pytest
from psycopg import AsyncConnection

from gis_api.tiles import TileAddress, render
from gis_api.tiles.params import TreeFilters
from smarttrees.settings import Settings
from tests.fixtures.server import serve_database
from tests.fixtures.tiles import tile_bounds_lonlat, tile_of

TOWN = (105.84, 21.59)  # Thái Nguyên city
EXTENT = 4096


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT setseed(0.42)")
        conn.execute(
            """
            INSERT INTO smarttrees.admin_units (level, code, name, valid_from, geom)
            VALUES ('commune', '05500', 'Phường Phan Đình Phùng', '2025-07-01',
                    ST_Multi(ST_MakeEnvelope(105.70, 21.45, 105.84, 21.75, 4326))),
                   ('commune', '05501', 'Xã Tân Cương', '2025-07-01',
                    ST_Multi(ST_MakeEnvelope(105.84, 21.45, 106.00, 21.75, 4326)))
            """
        )
        conn.execute(
            """
            INSERT INTO smarttrees.stands (stand_code, species_id, planting_year, area_ha,
                                           owner_type, owner_name, commune_code, geom)
            VALUES ('ST-0001', 1, 2019, 12.5, 'household', 'Nguyễn Văn A', '05501',
                    ST_Multi(ST_MakeEnvelope(105.86, 21.60, 105.87, 21.61, 4326)))
            """
        )
        # 4000 trees in a 0.1° square around the town centre, 1000 in a dense 300 m block.
        conn.execute(
            """
            INSERT INTO smarttrees.trees (tree_code, category, species_id, dbh_cm, condition,
                                          commune_code, geom)
            SELECT format('TN-%%s', lpad(g::text, 6, '0')),
                   (ARRAY['urban', 'scattered', 'plantation'])[1 + g %% 3],
                   1 + g %% 5,
                   10 + (g %% 40),
                   (ARRAY['good', 'fair', 'poor', 'dead'])[1 + g %% 4],
                   CASE WHEN x < 105.84 THEN '05500' ELSE '05501' END,
                   ST_SetSRID(ST_MakePoint(x, y), 4326)
            FROM (
                SELECT g,
                       CASE WHEN g <= 1000 THEN %(lon)s + random() * 0.003 ELSE %(lon)s - 0.05 + random() * 0.1 END AS x,
                       CASE WHEN g <= 1000 THEN %(lat)s + random() * 0.003 ELSE %(lat)s - 0.05 + random() * 0.1 END AS y
                FROM generate_series(1, 4000) g
            ) p
            """,
            {"lon": TOWN[0], "lat": TOWN[1]},
        )
        conn.execute("ANALYZE smarttrees.trees")


@pytest.fixture(scope="module")
def tiles_server(module_db_url: str) -> Iterator[str]:
    _seed(module_db_url)
    # A small feature cap so that the dense block shows how a crowded tile is aggregated.
    with serve_database(module_db_url, tile_max_features="400") as base:
        yield base




def get_tile(base: str, collection: str, tile: TileAddress, query: str = "") -> httpx.Response:
    url = f"{base}/collections/{collection}/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    return httpx.get(url + (f"?{query}" if query else ""), timeout=30)


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body) if body else {}


def inside(feature: dict) -> bool:
    """Whether a decoded point lies in the tile proper (not in its edge buffer)."""
    x, y = feature["geometry"]["coordinates"]
    return 0 <= x < EXTENT and 0 <= y < EXTENT


def sql_trees_in(url: str, tile: TileAddress, where: str = "TRUE") -> list[tuple[int, str]]:
    west, south, east, north = tile_bounds_lonlat(tile)
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT id, category FROM smarttrees.trees WHERE {where} AND "
            "ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326)) ORDER BY id",
            [west, south, east, north],
        ).fetchall()


def test_point_tile_carries_exactly_the_trees_inside_it(
    tiles_server: str, module_db_url: str
) -> None:
    tile = tile_of(TOWN[0] - 0.03, TOWN[1] - 0.03, 15)  # sparse part of town: points
    response = get_tile(tiles_server, "trees", tile)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layers = decode(response.content)
    assert set(layers) == {"trees"}
    features = [f for f in layers["trees"]["features"] if inside(f)]
    expected = sql_trees_in(module_db_url, tile)
    assert len(expected) > 5
    assert sorted(f["id"] for f in features) == [row[0] for row in expected]
    props = features[0]["properties"]
    assert set(props) == {
        "tree_code", "category", "species_name", "species_vi", "condition", "dbh_cm"
    }
    assert props["tree_code"].startswith("TN-")


def test_low_zoom_tile_counts_add_up_to_the_trees_inside_it(
    tiles_server: str, module_db_url: str
) -> None:
    tile = tile_of(*TOWN, 8)
    response = get_tile(tiles_server, "trees", tile)
    assert response.status_code == 200
    layers = decode(response.content)
    assert set(layers) == {"trees_grid"}
    cells = layers["trees_grid"]["features"]
    expected = sql_trees_in(module_db_url, tile)
    assert sum(c["properties"]["count"] for c in cells) == len(expected) == 4000
    for category in ("urban", "scattered", "plantation"):
        assert sum(c["properties"][category] for c in cells) == sum(
            1 for _, cat in expected if cat == category
        )
    for cell in cells:
        p = cell["properties"]
        assert p["count"] == p["urban"] + p["scattered"] + p["plantation"]


def test_a_tile_over_the_feature_cap_is_aggregated(tiles_server: str, module_db_url: str) -> None:
    tile = tile_of(TOWN[0] + 0.001, TOWN[1] + 0.001, 14)  # the dense block: over the cap of 400
    expected = sql_trees_in(module_db_url, tile)
    assert len(expected) > 400
    layers = decode(get_tile(tiles_server, "trees", tile).content)
    assert set(layers) == {"trees_grid"}
    assert sum(c["properties"]["count"] for c in layers["trees_grid"]["features"]) == len(expected)


def test_filters_apply_to_points_and_to_counts(tiles_server: str, module_db_url: str) -> None:
    low = tile_of(*TOWN, 9)
    cells = decode(get_tile(tiles_server, "trees", low, "category=urban&commune=05500").content)
    expected = sql_trees_in(module_db_url, low, "category = 'urban' AND commune_code = '05500'")
    assert sum(c["properties"]["count"] for c in cells["trees_grid"]["features"]) == len(expected)
    assert all(c["properties"]["scattered"] == 0 for c in cells["trees_grid"]["features"])

    high = tile_of(TOWN[0] - 0.03, TOWN[1] - 0.03, 15)
    layers = decode(get_tile(tiles_server, "trees", high, "species=2").content)
    ids = sorted(f["id"] for f in layers.get("trees", {}).get("features", []) if inside(f))
    assert ids == [r[0] for r in sql_trees_in(module_db_url, high, "species_id = 2")]


def test_stand_and_commune_tiles_carry_public_attributes_only(tiles_server: str) -> None:
    tile = tile_of(105.865, 21.605, 12)
    stands = decode(get_tile(tiles_server, "stands", tile).content)["stands"]["features"]
    assert [f["properties"]["stand_code"] for f in stands] == ["ST-0001"]
    assert "owner_name" not in stands[0]["properties"]
    assert "Nguyễn" not in str(stands)
    communes = decode(get_tile(tiles_server, "communes", tile_of(*TOWN, 10)).content)
    assert sorted(f["properties"]["code"] for f in communes["communes"]["features"]) == [
        "05500",
        "05501",
    ]


def test_empty_tile_is_an_empty_200(tiles_server: str) -> None:
    response = get_tile(tiles_server, "trees", tile_of(0.0, 0.0, 14))
    assert response.status_code == 200
    assert response.content == b""


def test_cache_headers_and_conditional_requests(tiles_server: str) -> None:
    tile = tile_of(*TOWN, 11)
    first = get_tile(tiles_server, "trees", tile)
    assert "max-age=" in first.headers["cache-control"]
    etag = first.headers["etag"]
    url = f"{tiles_server}/collections/trees/tiles/WebMercatorQuad/{tile.z}/{tile.y}/{tile.x}"
    again = httpx.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""


def test_an_edited_tree_shows_in_the_next_tile(tiles_server: str, module_db_url: str) -> None:
    tile = tile_of(TOWN[0] - 0.03, TOWN[1] - 0.03, 15)
    before = decode(get_tile(tiles_server, "trees", tile).content)["trees"]["features"]
    victim = next(f for f in before if inside(f))
    with psycopg.connect(module_db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE smarttrees.trees SET condition = 'removed' WHERE id = %s", [victim["id"]]
        )
    after = decode(get_tile(tiles_server, "trees", tile).content)["trees"]["features"]
    assert next(f for f in after if f["id"] == victim["id"])["properties"]["condition"] == "removed"


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("trees/tiles/WebMercatorQuad/25/0/0", 404, "tile matrix 25"),
        ("trees/tiles/WebMercatorQuad/3/8/0", 404, "outside tile matrix 3"),
        ("trees/tiles/WebMercatorQuad/3/0/-1", 400, "tileCol"),
        ("trees/tiles/WebMercatorQuad/abc/0/0", 400, "tileMatrix"),
        ("trees/tiles/WebMercatorQuad/99999999999/0/0", 400, "tileMatrix"),
        ("trees/tiles/WorldCRS84Quad/3/0/0", 404, "WorldCRS84Quad"),
        ("nosuch/tiles/WebMercatorQuad/3/0/0", 404, "nosuch"),
        ("trees/tiles/WebMercatorQuad/3/0/0?category=palm", 400, "category"),
        ("trees/tiles/WebMercatorQuad/3/0/0?species=keo", 400, "species"),
        ("trees/tiles/WebMercatorQuad/3/0/0?commune=x'--", 400, "commune"),
    ],
)
def test_bad_tile_requests_get_ogc_errors(
    tiles_server: str, path: str, status: int, words: str
) -> None:
    response = httpx.get(f"{tiles_server}/collections/{path}")
    assert response.status_code == status
    body = response.json()
    assert body["code"] in {"InvalidParameterValue", "NotFound"}
    assert words in body["description"]


def test_tileset_metadata_links_to_templated_tiles(tiles_server: str) -> None:
    listing = httpx.get(f"{tiles_server}/collections/trees/tiles").json()
    meta_url = next(
        link["href"] for ts in listing["tilesets"] for link in ts["links"] if link["rel"] == "self"
    )
    meta = httpx.get(meta_url).json()
    assert meta["dataType"] == "vector"
    assert {layer["id"] for layer in meta["layers"]} == {"trees", "trees_grid"}
    west, south, east, north = meta["bounds"]
    assert west < TOWN[0] < east and south < TOWN[1] < north
    item = next(link for link in meta["links"] if link["rel"] == "item")
    assert item["templated"] is True
    tile = tile_of(*TOWN, 10)
    href = item["href"].format(tileMatrix=tile.z, tileRow=tile.y, tileCol=tile.x)
    assert httpx.get(href).status_code == 200
    scheme = next(link["href"] for link in meta["links"] if link["rel"].endswith("tiling-scheme"))
    tms = httpx.get(scheme).json()
    assert tms["id"] == "WebMercatorQuad"
    assert len(tms["tileMatrices"]) == 25
    assert tms["tileMatrices"][0]["matrixWidth"] == 1


def wait_for_grid(url: str, timeout: float = 30) -> None:
    """Wait until the server's background refresh has brought tree_grid up to date."""
    import time

    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            current = conn.execute(
                "SELECT (SELECT version FROM smarttrees.tree_grid_version)"
                " = (SELECT coalesce(max(id), 0) FROM smarttrees.tree_history)"
            ).fetchone()[0]
            if current:
                return
            time.sleep(0.2)
    raise AssertionError("tree_grid was not refreshed")


@pytest.mark.parametrize("z", [6, 9, 12])
@pytest.mark.parametrize("query", ["", "category=plantation"])
def test_precomputed_grid_counts_add_up(
    tiles_server: str, module_db_url: str, z: int, query: str
) -> None:
    get_tile(tiles_server, "trees", tile_of(*TOWN, 5))  # a low-zoom request starts the refresh
    wait_for_grid(module_db_url)
    tile = tile_of(TOWN[0] - 0.02, TOWN[1] + 0.01, z)
    cells = decode(get_tile(tiles_server, "trees", tile, query).content)["trees_grid"]["features"]
    where = "category = 'plantation'" if query else "TRUE"
    expected = sql_trees_in(module_db_url, tile, where)
    assert sum(c["properties"]["count"] for c in cells) == len(expected) > 0
    assert sum(c["properties"]["plantation"] for c in cells) == sum(
        1 for _, category in expected if category == "plantation"
    )
    assert all(inside(c) for c in cells)


@pytest.mark.parametrize("z", [13, 14])
def test_a_crowded_tile_from_the_fine_cells_is_the_tile_of_the_trees(
    tiles_server: str, module_db_url: str, z: int
) -> None:
    # Over the cap with tree_grid current, the grid is read from tree_grid_fine's cells (0034):
    # the same bytes as the grid counted over the trees themselves (tree_grid not used).
    get_tile(tiles_server, "trees", tile_of(*TOWN, 5))  # a low-zoom request starts the refresh
    wait_for_grid(module_db_url)
    tile = tile_of(TOWN[0] + 0.001, TOWN[1] + 0.001, z)
    served = get_tile(tiles_server, "trees", tile).content
    settings = Settings(database_url=module_db_url, tile_max_features=400)

    async def from_trees() -> bytes:
        async with await AsyncConnection.connect(module_db_url, autocommit=True) as conn:
            return await render.render_trees(conn, tile, TreeFilters(), settings, False)

    assert served == asyncio.run(from_trees())
    cells = decode(served)["trees_grid"]["features"]
    assert sum(c["properties"]["count"] for c in cells) == len(sql_trees_in(module_db_url, tile))



def stored_points(url: str, tile: TileAddress) -> tuple[int, list[int]] | None:
    """The trees placed in a z15 tile by smarttrees.tree_point_tiles (0035), and their ids."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT placed, ids FROM smarttrees.tree_point_tiles WHERE x = %s AND y = %s",
            [tile.x, tile.y],
        ).fetchone()
    if row is None:
        return None
    return row[0], [int.from_bytes(row[1][i:i + 8], "big") for i in range(0, len(row[1]), 8)]


def test_a_z15_tile_from_the_stored_points_is_the_live_tile_until_an_edit(
    module_db_url: str, tiles_server: str
) -> None:
    # With tree_grid current, a z15 tile of points is read from tree_point_tiles (0035): the
    # same bytes as the tile rendered from the trees. After an edit, until the refresh, the
    # view is stale and the tile is rendered from the trees again: the edit shows at once.
    tile = tile_of(TOWN[0] + 0.001, TOWN[1] + 0.001, 15)  # most of the dense block
    settings = Settings(database_url=module_db_url)  # the server's default cap: points

    async def rendered(current: bool = False) -> bytes:  # current: tree_grid said current
        async with await AsyncConnection.connect(module_db_url, autocommit=True) as conn:
            return await render.render_trees(conn, tile, TreeFilters(), settings, current)

    def condition(body: bytes, tree: int) -> str:
        return next(f for f in decode(body)["trees"]["features"]
                    if f["id"] == tree)["properties"]["condition"]

    with serve_database(module_db_url, tile_cache_mb="0") as base:
        get_tile(base, "trees", tile_of(*TOWN, 5))  # a request starts the refresh
        wait_for_grid(module_db_url)
        stored = stored_points(module_db_url, tile)
        assert stored is not None and stored[0] > 300
        served = get_tile(base, "trees", tile).content
        assert served == asyncio.run(rendered()) == asyncio.run(rendered(current=True))
        assert sorted(f["id"] for f in decode(served)["trees"]["features"]) == stored[1]

        with psycopg.connect(module_db_url, autocommit=True) as conn:
            edited = conn.execute(
                "UPDATE smarttrees.trees SET condition = 'dead'"
                " WHERE id = (SELECT min(id) FROM smarttrees.trees"
                "             WHERE id = ANY(%s) AND condition <> 'dead') RETURNING id",
                [stored[1]],
            ).fetchone()[0]
        # the view still holds the tile as it was: read while stale, it would not show the edit
        assert condition(asyncio.run(rendered(current=True)), edited) != "dead"
        served = get_tile(base, "trees", tile).content
        assert condition(served, edited) == "dead"
        assert served == asyncio.run(rendered())
        wait_for_grid(module_db_url)  # that request started the refresh
        assert get_tile(base, "trees", tile).content == served
        assert condition(asyncio.run(rendered(current=True)), edited) == "dead"


TILESETS_REL = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"


def test_tiles_are_discovered_from_the_collection_documents(tiles_server: str) -> None:
    # What a generic OGC API client does: conformance, then links only, no hard-coded paths.
    conforms = set(httpx.get(f"{tiles_server}/conformance").json()["conformsTo"])
    tiles_conf = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
    assert {tiles_conf + c for c in ("core", "tileset", "tilesets-list", "geodata-tilesets",
                                     "mvt")} <= conforms
    landing = httpx.get(f"{tiles_server}/").json()
    schemes = next(link["href"] for link in landing["links"] if link["rel"].endswith("tiling-schemes"))
    assert [t["id"] for t in httpx.get(schemes).json()["tileMatrixSets"]] == ["WebMercatorQuad"]

    listed = httpx.get(f"{tiles_server}/collections", params={"f": "json"}).json()["collections"]
    with_tiles = {c["id"] for c in listed if any(link["rel"] == TILESETS_REL for link in c["links"])}
    assert with_tiles == {"trees", "stands", "communes",  # nurseries etc. have no tiles
                          "documents_by_commune", "citizen_support_by_commune",
                          "trees_by_commune",  # the IOC's area layers
                          "care_inspections_due", "care_storm_damage"}  # tree care

    town = tile_of(*TOWN, 12)
    for collection in ("trees", "stands", "communes"):
        doc = httpx.get(f"{tiles_server}/collections/{collection}", params={"f": "json"}).json()
        link = next(link for link in doc["links"] if link["rel"] == TILESETS_REL)
        assert link["type"] == "application/json"
        tilesets = httpx.get(link["href"]).json()["tilesets"]
        tileset = next(t for t in tilesets if t["tileMatrixSetURI"].endswith("/WebMercatorQuad"))
        meta = httpx.get(next(x["href"] for x in tileset["links"] if x["rel"] == "self")).json()
        item = next(x for x in meta["links"] if x["rel"] == "item")
        assert item["type"] == "application/vnd.mapbox-vector-tile"
        href = item["href"].format(tileMatrix=town.z, tileRow=town.y, tileCol=town.x)
        response = httpx.get(href, timeout=30)
        assert response.status_code == 200
        layers = decode(response.content)
        assert layers and all(layer["features"] for layer in layers.values()), collection

    nurseries = httpx.get(f"{tiles_server}/collections/nurseries", params={"f": "json"}).json()
    assert not [link for link in nurseries["links"] if link["rel"] == TILESETS_REL]


def test_every_low_zoom_trees_tile_answers(tiles_server: str, module_db_url: str) -> None:
    # Issue 10: tiles whose row or column is 2^(z-2)-1 overflowed a smallint in the grid sum.
    get_tile(tiles_server, "trees", tile_of(*TOWN, 5))
    wait_for_grid(module_db_url)
    with psycopg.connect(module_db_url) as conn:
        total = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0]
    counted = 0
    for y in range(8):
        for x in range(8):
            r = get_tile(tiles_server, "trees", TileAddress(3, y, x))
            assert r.status_code == 200, (x, y, r.text)
            layer = decode(r.content).get("trees_grid", {"features": []})
            counted += sum(cell["properties"]["count"] for cell in layer["features"])
    assert counted == total  # every tree in exactly one z3 tile
    edge = (1 << 3) - 1
    for y, x in [(edge, 0), (0, edge), (edge, edge), (edge, 25), (12, edge), (31, 31)]:
        r = get_tile(tiles_server, "trees", TileAddress(5, y, x))
        assert r.status_code == 200, (x, y, r.text)
        assert r.headers["content-type"].startswith("application/vnd.mapbox-vector-tile")
        decode(r.content)
