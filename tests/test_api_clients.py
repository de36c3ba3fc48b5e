"""Real OGC API clients: GDAL's OAPIF driver (what QGIS uses) and OWSLib."""

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
        got = sorted(df[collection.id_column].astype(str))
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
            got = (sorted(df[collection.id_column].astype(str)) if collection.id_type == "string"
                   else sorted(str(v) for v in df.index))
            assert got == ids, collection.id
