import httpx
import pytest

from gis_api.collections import COLLECTIONS
from tests.fixtures.server import HOUSEHOLD_OWNER, TREE_COUNT


def get(base, path, **params):
    r = httpx.get(f"{base}{path}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r


def test_landing_page_links_the_api_documents(api_server):
    rels = {link["rel"] for link in get(api_server, "/", f="json").json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels


def test_conformance_lists_features_parts_1_to_4_and_cql2(api_server):
    classes = set(get(api_server, "/conformance").json()["conformsTo"])
    for cls in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                "ogcapi-features-2/1.0/conf/crs", "ogcapi-features-3/1.0/conf/filter",
                "ogcapi-features-4/1.0/conf/create-replace-delete", "cql2/1.0/conf/cql2-text"):
        assert any(c.endswith(cls) for c in classes), cls


def test_every_registry_collection_is_listed(api_server):
    listed = {c["id"] for c in get(api_server, "/collections").json()["collections"]}
    assert listed == {c.id for c in COLLECTIONS}
    assert {"trees", "stands", "nurseries", "seedling_lots", "timber_logs", "communes",
            "documents_by_commune", "citizen_support_by_commune"} <= listed


def test_collection_extent_comes_from_the_data(api_server):
    bbox = get(api_server, "/collections/trees").json()["extent"]["spatial"]["bbox"][0]
    assert bbox == pytest.approx([105.80, 21.50, 105.828, 21.518])


def test_items_are_geojson_with_exact_count_when_cheap(api_server):
    r = get(api_server, "/collections/trees/items", limit=10)
    body = r.json()
    assert r.headers["content-type"] == "application/geo+json"
    assert body["type"] == "FeatureCollection"
    assert body["numberReturned"] == 10 and body["numberMatched"] == TREE_COUNT
    feature = body["features"][0]
    assert feature["geometry"]["type"] == "Point"
    assert feature["properties"]["tree_code"] == "G0"
    assert feature["properties"]["species_name"]


def test_next_links_page_through_every_tree_once(api_server):
    url, seen = f"{api_server}/collections/trees/items?limit=40", []
    while url:
        body = httpx.get(url).json()
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert len(seen) == TREE_COUNT == len(set(seen))
    assert seen == sorted(seen)


def test_offset_still_pages(api_server):
    first = get(api_server, "/collections/trees/items", limit=5).json()["features"]
    second = get(api_server, "/collections/trees/items", limit=5, offset=5).json()["features"]
    assert [f["id"] for f in second] == [f["id"] + 5 for f in first]


def test_bbox_selects_the_trees_inside(api_server):
    # columns 0..4 (lon 105.800..105.808) of rows 0..1 (lat 21.500..21.502): 10 trees
    body = get(api_server, "/collections/trees/items", bbox="105.7999,21.4999,105.8081,21.5021").json()
    assert body["numberMatched"] == 10
    assert {f["properties"]["tree_code"] for f in body["features"]} == {
        f"G{r * 15 + c}" for r in range(2) for c in range(5)
    }


def test_property_query_parameter_filters(api_server):
    body = get(api_server, "/collections/trees/items", category="urban", limit=200).json()
    assert body["numberMatched"] == 50
    assert {f["properties"]["category"] for f in body["features"]} == {"urban"}


def test_one_item_by_id(api_server):
    listed = get(api_server, "/collections/trees/items", limit=1).json()["features"][0]
    one = get(api_server, f"/collections/trees/items/{listed['id']}").json()
    assert one["properties"] == listed["properties"]
    assert any(link["rel"] == "collection" for link in one["links"])


def test_items_and_item_as_html(api_server):
    assert "G0" in get(api_server, "/collections/trees/items", f="html", limit=3).text
    r = get(api_server, "/collections/communes/items/00001", f="html")
    assert r.headers["content-type"].startswith("text/html") and "Phường Một" in r.text


def test_string_ids_and_polygons(api_server):
    body = get(api_server, "/collections/communes/items").json()
    assert [f["id"] for f in body["features"]] == ["00001", "00002"]
    assert body["features"][0]["geometry"]["type"] == "MultiPolygon"


def test_household_owner_names_are_never_published(api_server):
    for path in ("/collections/stands/items", "/collections/stands/items?f=html",
                 "/collections/stands/queryables", "/collections/stands/schema"):
        text = httpx.get(f"{api_server}{path}").text
        assert HOUSEHOLD_OWNER not in text and "owner_name" not in text


def test_citizen_support_is_aggregated_and_small_counts_withheld(api_server):
    body = get(api_server, "/collections/citizen_support_by_commune/items").json()
    by_code = {f["id"]: f["properties"] for f in body["features"]}
    assert by_code["00002"]["people"] is None and by_code["00002"]["suppressed"] is True
    # 00001's 6 are withheld too, or the total of 8 minus 6 would give 00002's 2 away.
    assert by_code["00001"]["amount_vnd"] is None and by_code["00001"]["suppressed"] is True
    assert "Người" not in httpx.get(f"{api_server}/collections/citizen_support_by_commune/items").text


def test_documents_per_commune(api_server):
    body = get(api_server, "/collections/documents_by_commune/items/00001").json()
    assert body["properties"]["documents"] == 20
    assert body["properties"]["electronic"] == 15


def test_seedling_lots_sit_at_their_nursery(api_server):
    lot = get(api_server, "/collections/seedling_lots/items").json()["features"][0]
    assert lot["properties"]["nursery_code"] == "NS-1"
    assert lot["geometry"]["coordinates"] == pytest.approx([105.81, 21.51])


def test_queryables_list_published_properties(api_server):
    props = get(api_server, "/collections/trees/queryables").json()["properties"]
    assert {"tree_code", "dbh_cm", "species_name"} <= set(props)


def test_openapi_describes_items_and_their_filters(api_server):
    doc = get(api_server, "/openapi", f="json").json()
    items = doc["paths"]["/collections/trees/items"]
    names = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in items["get"]["parameters"]}
    assert {"filter", "filter-lang", "bbox", "limit", "crs", "after"} <= names
    assert "post" in items
    assert not [ref for ref in _refs(doc) if not ref.startswith("#")]  # self-contained


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for v in node.values():
            yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_properties_and_skip_geometry_trim_the_features(api_server):
    body = get(api_server, "/collections/trees/items", limit=2, properties="tree_code,dbh_cm",
               skipGeometry="true").json()
    assert [set(f["properties"]) for f in body["features"]] == [{"tree_code", "dbh_cm"}] * 2
    assert body["features"][0]["geometry"] is None


def test_serve_command_runs_the_app(settings_env):
    import subprocess
    import sys
    import time

    from tests.fixtures.server import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "smarttrees", "serve", "--port", str(port)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/collections", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert r.status_code == 200
        # the links name the address the server was told to listen on
        assert f"http://127.0.0.1:{port}/collections" in r.text
    finally:
        proc.terminate()
        proc.wait(15)
