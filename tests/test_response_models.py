"""Real answers validated against the response models: tiles, collections, errors.

Two servers over one database: one as tests usually run it (the public URL is its own address),
one told it sits behind a proxy at another address. Trees, the stand and the communes lie in
three different places, so a collection shown with another's extent is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import morecantile
import psycopg
import pytest
from pydantic import BaseModel

from gis_api.collection_documents import (
    TILESETS_VECTOR_REL,
    CollectionDocument,
    CollectionsDocument,
)
from gis_api.errors import ErrorDocument
from gis_api.tiles.documents import TileMatrixSets, Tileset, Tilesets
from gis_api.tiles.layers import tile_collections
from smarttrees.settings import Settings
from tests.fixtures.server import serve_database

TILED = ("trees", "stands", "communes", "care_inspections_due", "care_storm_damage")
PROXY = "https://cay-xanh.example.vn/gis"


def _seed(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
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
                    ST_Multi(ST_MakeEnvelope(105.90, 21.50, 105.95, 21.52, 4326)))
            """
        )
        conn.execute(
            """
            INSERT INTO smarttrees.trees (tree_code, category, species_id, dbh_cm, condition,
                                          commune_code, geom)
            SELECT format('TN-%s', lpad(g::text, 6, '0')), 'urban', 1, 20, 'good', '05500',
                   ST_SetSRID(ST_MakePoint(105.80 + g * 0.0001, 21.60 + g * 0.0001), 4326)
            FROM generate_series(1, 200) g
            """
        )
        conn.execute("ANALYZE smarttrees.trees")


@pytest.fixture(scope="module")
def servers(module_db_url: str) -> Iterator[tuple[str, str]]:
    """The direct server's base URL and the proxied one's (whose documents say ``PROXY``)."""
    _seed(module_db_url)
    with serve_database(module_db_url) as direct, serve_database(
        module_db_url, public_url=PROXY
    ) as proxied:
        yield direct, proxied


def _validated(model: type[BaseModel], url: str) -> Any:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    model.model_validate_json(response.content)
    return response.json()


def _extent(url: str, table: str) -> list[float]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT ST_XMin(b), ST_YMin(b), ST_XMax(b), ST_YMax(b)"
            f" FROM (SELECT ST_Extent(geom) FROM smarttrees.{table}) e(b)"
        ).fetchone()
    assert row is not None
    return [round(float(v), 6) for v in row]


@pytest.mark.parametrize("collection", TILED)
def test_tile_documents_match_their_models(servers: tuple[str, str], collection: str) -> None:
    base = servers[0]
    listing = _validated(Tilesets, f"{base}/collections/{collection}/tiles")
    (summary,) = listing["tilesets"]
    self_link = next(link["href"] for link in summary["links"] if link["rel"] == "self")
    meta = _validated(Tileset, self_link)
    assert [layer["id"] for layer in meta["layers"]] == [
        layer["id"] for layer in meta["vector_layers"]
    ]
    _validated(TileMatrixSets, f"{base}/tileMatrixSets")


def test_the_tile_matrix_set_is_the_standard_web_mercator_quad(servers: tuple[str, str]) -> None:
    doc = httpx.get(f"{servers[0]}/tileMatrixSets/WebMercatorQuad").json()
    served = morecantile.TileMatrixSet.model_validate(doc)
    reference = morecantile.tms.get("WebMercatorQuad")
    assert served.uri == reference.uri
    assert [m.cellSize for m in served.tileMatrices] == [m.cellSize for m in reference.tileMatrices]
    z14 = morecantile.Tile(x=13009, y=7188, z=14)
    assert served.xy_bounds(z14) == reference.xy_bounds(z14)


def test_each_collection_is_bounded_by_its_own_extent(
    servers: tuple[str, str], module_db_url: str
) -> None:
    bounds = {
        c: httpx.get(f"{servers[0]}/collections/{c}/tiles/WebMercatorQuad").json()["bounds"]
        for c in ("trees", "stands", "communes")  # tree care's are empty here: no bounds
    }
    assert bounds["stands"] == _extent(module_db_url, "stands")
    assert bounds["communes"] == _extent(module_db_url, "communes")
    # The trees' extent is the planner's estimate: it holds every tree, and no stand.
    west, south, east, north = bounds["trees"]
    tw, ts, te, tn = _extent(module_db_url, "trees")
    assert west <= tw and south <= ts and east >= te and north >= tn
    assert east < bounds["stands"][0]


def _hrefs(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("href", "tiles") and isinstance(value, str):
                yield value
            elif key == "tiles" and isinstance(value, list):
                yield from value
            else:
                yield from _hrefs(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from _hrefs(value)


@pytest.mark.parametrize("collection", TILED)
def test_every_link_starts_at_the_public_url(servers: tuple[str, str], collection: str) -> None:
    # Behind a proxy the request's host is not what clients see: every document says PROXY.
    base = servers[1]
    paths = [
        f"/collections/{collection}",
        f"/collections/{collection}/tiles",
        f"/collections/{collection}/tiles/WebMercatorQuad",
        "/tileMatrixSets",
        "/collections",
    ]
    for path in paths:
        hrefs = list(_hrefs(httpx.get(base + path, timeout=30).json()))
        assert hrefs, path
        assert [h for h in hrefs if h.removeprefix(PROXY)[:1] not in ("", "/", "?")] == [], path


@pytest.fixture(scope="module")
def unnamed_server(servers: tuple[str, str], module_db_url: str) -> Iterator[str]:
    """A server without a public URL (pygeoapi is configured with its default address)."""
    with serve_database(module_db_url, public_url="") as base:
        yield base


@pytest.mark.parametrize("path", ["/", "/collections", "/collections/trees", "/openapi"])
def test_without_a_public_url_links_follow_the_host_the_client_used(
    unnamed_server: str, path: str
) -> None:
    # A client that reached the server as "localhost" must be able to follow every link,
    # pygeoapi's own included (pygeoapi was configured with another address).
    other = unnamed_server.replace("127.0.0.1", "localhost")
    document = httpx.get(other + path, params={"f": "json"}, timeout=30).json()
    hrefs = [s["url"] for s in document["servers"]] if path == "/openapi" else list(_hrefs(document))
    assert hrefs, path
    assert [h for h in hrefs if not h.startswith(other)] == [], path


def test_collection_documents_match_their_models(servers: tuple[str, str]) -> None:
    base = servers[0]
    listing = _validated(CollectionsDocument, f"{base}/collections?f=json")
    ids = [c["id"] for c in listing["collections"]]
    assert set(TILED) < set(ids)
    for cid in ids:
        doc = CollectionDocument.model_validate(
            _validated(CollectionDocument, f"{base}/collections/{cid}?f=json")
        )
        tilesets = doc.link(TILESETS_VECTOR_REL)
        # Every tiled collection links its tilesets (the IOC's and tree care's too), no other.
        assert (tilesets is not None) == (cid in tile_collections(Settings())), cid
        if tilesets is not None:
            _validated(Tilesets, tilesets.href)


BAD_REQUESTS = [
    ("GET", "/collections/trees/tiles/WebMercatorQuad/3/x/1", 400),
    ("GET", "/collections/trees/tiles/WebMercatorQuad/3/9/1", 404),
    ("GET", "/collections/trees/tiles/WebMercatorQuad/25/0/0", 404),
    ("GET", "/collections/trees/tiles/WebMercatorQuad/3/1/1?category=palm", 400),
    ("GET", "/collections/trees/tiles/WebMercatorQuad?species=oak", 400),
    ("GET", "/collections/trees/tiles/EuropeanETRS89/3/1/1", 404),
    ("GET", "/collections/nurseries/tiles", 404),
    ("GET", "/tileMatrixSets/EuropeanETRS89", 404),
    ("GET", "/collections/trees/items?bbox=1,2,3", 400),
    ("GET", "/collections/trees/items?limit=2&limit=3", 400),
    ("GET", "/collections/trees/items?colour=green", 400),
    ("GET", "/collections/trees/items?filter=dbh_cm%20%3E", 400),
    ("GET", "/collections/trees/items/999999", 404),
    ("GET", "/collections/trees/items/1?zoom=3", 400),
    ("GET", "/collections/unicorns/items", 404),
    ("POST", "/collections/trees/items", 401),
    ("DELETE", "/collections/trees/items/1", 401),
]


@pytest.mark.parametrize(("method", "path", "status"), BAD_REQUESTS)
def test_error_answers_match_the_error_document(
    servers: tuple[str, str], method: str, path: str, status: int
) -> None:
    response = httpx.request(method, servers[0] + path, timeout=30)
    assert response.status_code == status, response.text
    doc = ErrorDocument.model_validate_json(response.content)
    assert doc.description
