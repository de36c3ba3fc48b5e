"""Real OGC API clients: GDAL's OAPIF driver (what QGIS uses) and OWSLib."""

import re
import shutil
import subprocess

import httpx
import pyogrio
import pytest

from gis_api.collections import COLLECTIONS
from smarttrees.database import connect
from tests.fixtures.server import TREE_COUNT


def table_ids(db, collection):
    from psycopg import sql

    from gis_api.features import relation

    with connect(db) as conn:
        statement = sql.SQL("SELECT {}::text FROM {}").format(
            sql.Identifier("t", collection.id_column), relation(collection))
        return sorted(r[0] for r in conn.execute(statement))


@pytest.mark.parametrize("collection", COLLECTIONS, ids=lambda c: c.id)
def test_gdal_pages_through_every_collection(api_server, api_db, collection):
    # a small page size makes GDAL follow many next links
    url = f"OAPIF:{api_server}/collections/{collection.id}"
    df = pyogrio.read_dataframe(url, PAGE_SIZE=7, fid_as_index=True)
    ids = table_ids(api_db, collection)
    if not len(df):  # an empty collection (e.g. an IOC layer not refreshed): no columns either
        got = []
    elif collection.id_type == "string":
        got = sorted(df["id"].astype(str))  # a string id is GDAL's "id" column
    else:
        got = sorted(str(v) for v in df.index)
    assert got == ids  # every feature once: no duplicates, no gaps
    if collection.id == "trees":
        assert len(df) == TREE_COUNT and df.crs.to_epsg() in (4326, None)
        assert set(df["category"]) == {"urban", "scattered", "plantation"}


def test_gdal_lists_every_layer(api_server):
    layers = {name for name, _ in pyogrio.list_layers(f"OAPIF:{api_server}")}
    assert layers == {c.id for c in COLLECTIONS}


def test_gdal_spatial_filter_uses_bbox(api_server):
    df = pyogrio.read_dataframe(f"OAPIF:{api_server}/collections/trees",
                                bbox=(105.7999, 21.4999, 105.8081, 21.5021))
    assert len(df) == 10


def test_owslib_features_client(api_server):
    from owslib.ogcapi.features import Features

    api = Features(api_server)
    assert "trees" in [c["id"] for c in api.collections()["collections"]]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in api.conformance()["conformsTo"]
    page = api.collection_items("trees", limit=25, bbox=[105.7999, 21.4999, 105.8081, 21.5021])
    assert page["numberReturned"] == 10
    assert api.collection_item("communes", "00001")["properties"]["name"] == "Phường Một"
    assert "dbh_cm" in api.collection_queryables("trees")["properties"]


def test_gdal_reads_every_layer_of_the_generated_province(province_url):
    from tests.fixtures.server import serve_database

    with serve_database(province_url) as base:
        for collection in COLLECTIONS:
            df = pyogrio.read_dataframe(f"OAPIF:{base}/collections/{collection.id}",
                                        PAGE_SIZE=1000, fid_as_index=True)
            ids = table_ids(province_url, collection)
            if df.empty:  # no feature (the care layers of the generated province): no fields
                got = []
            elif collection.id_type == "string":
                got = sorted(df["id"].astype(str))
            else:
                got = sorted(str(v) for v in df.index)
            assert got == ids, collection.id


# -- what QGIS and GDAL show --------------------------------------------------------------------


def test_gdal_reads_integer_fields_as_integers_though_the_first_page_has_only_nulls(api_server):
    # stand_id and load_id are null in every feature of this data set: GDAL types them from
    # the collection's describedBy schema, not from a guess over the first page.
    trees = pyogrio.read_info(f"OAPIF:{api_server}/collections/trees")
    assert dict(zip(trees["fields"], trees["dtypes"], strict=True))["stand_id"] == "int32"
    logs = pyogrio.read_info(f"OAPIF:{api_server}/collections/timber_logs")
    types = dict(zip(logs["fields"], logs["dtypes"], strict=True))
    assert types["load_id"] == "int32" and types["stand_id"] == "int32"
    assert types["felled_on"] == "datetime64[D]" and types["volume_m3"] == "float64"


def _ogrinfo_fields(url: str, layer: str) -> dict[str, str]:
    """Field types as the system GDAL (the one Debian's QGIS uses) lists them."""
    out = subprocess.run(["ogrinfo", "-so", "-ro", f"OAPIF:{url}", layer], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return dict(re.findall(r"^(\w+): (\w+) \(", out, flags=re.MULTILINE))


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="gdal-bin (system GDAL) not installed")
def test_system_gdal_like_qgis_sees_integers_and_one_id_column(api_server):
    assert _ogrinfo_fields(api_server, "trees")["stand_id"] == "Integer"
    assert _ogrinfo_fields(api_server, "timber_logs")["load_id"] == "Integer"
    communes = _ogrinfo_fields(api_server, "communes")
    assert "code" not in communes and communes["id"] == "String" and "name" in communes


@pytest.mark.parametrize("collection_id", ["communes", "documents_by_commune",
                                           "citizen_support_by_commune"])
def test_commune_layers_carry_the_commune_code_once(api_server, collection_id):
    info = pyogrio.read_info(f"OAPIF:{api_server}/collections/{collection_id}")
    fields = list(info["fields"])
    assert len(fields) == len(set(fields))
    id_column = next(c for c in COLLECTIONS if c.id == collection_id).id_column
    assert id_column not in fields  # the code is the feature id (GDAL's "id" column)
    df = pyogrio.read_dataframe(f"OAPIF:{api_server}/collections/{collection_id}")
    assert sorted(df["id"]) == ["00001", "00002"]


def test_unfiltered_trees_pages_say_how_many_trees_there_are(api_db):
    from tests.fixtures.server import serve_database

    # Counting is capped at 10 here, as a million trees are above the default cap: the number
    # comes from the count the triggers keep, not from counting.
    with serve_database(api_db, exact_count_max="10") as base:
        _check_trees_counted(base, api_db)


def _check_trees_counted(api_server: str, api_db: str) -> None:
    def matched() -> int:
        body = httpx.get(f"{api_server}/collections/trees/items",
                         params={"limit": 2, "skipGeometry": "true"}).json()
        assert body["numberReturned"] == 2  # more than one page: not counted off the page
        return int(body["numberMatched"])

    assert matched() == TREE_COUNT
    with connect(api_db) as conn:
        conn.execute(
            "INSERT INTO trees (tree_code, category, source, geom) SELECT 'N' || g, 'urban', "
            "'test', ST_SetSRID(ST_MakePoint(105.9, 21.6), 4326) FROM generate_series(1, 3) g")
    assert matched() == TREE_COUNT + 3
    with connect(api_db) as conn:
        conn.execute("DELETE FROM trees WHERE tree_code LIKE 'N%'")
    assert matched() == TREE_COUNT
    # what GDAL (and so QGIS) reports as the layer's feature count, from the first page
    assert pyogrio.read_info(f"OAPIF:{api_server}/collections/trees")["features"] == TREE_COUNT


def test_layer_titles_read_well(api_server):
    from owslib.ogcapi.features import Features

    titles = {c["id"]: c["title"] for c in Features(api_server).collections()["collections"]}
    assert titles["trees"] == "Cây xanh — Trees"
    assert all(title != cid and "_" not in title for cid, title in titles.items())


def test_every_landing_page_link_answers(api_server):
    landing = httpx.get(api_server, params={"f": "json"}).json()
    rels = {link["rel"] for link in landing["links"]}
    assert "service-desc" in rels and "data" in rels
    for link in landing["links"]:
        status = httpx.get(link["href"], follow_redirects=True).status_code
        assert status == 200, link
    html = httpx.get(api_server, params={"f": "html"}).text
    assert "/processes" not in html and "/jobs" not in html
