import httpx
import pytest

BAD_READS = [
    ("/collections/trees/items?bbox=1,2,3", 400, "bbox"),
    ("/collections/trees/items?bbox=a,b,c,d", 400, "bbox"),
    ("/collections/trees/items?bbox=10,10,5,5", 400, "bbox"),
    ("/collections/trees/items?bbox=1,2,nan,4", 400, "bbox"),
    ("/collections/nowhere/items", 404, "nowhere"),
    ("/collections/nowhere", 404, ""),
    ("/collections/trees/items/999999", 404, "999999"),
    ("/collections/trees/items/not-a-number", 404, "not-a-number"),
    ("/collections/communes/items/99999", 404, "99999"),
    ("/collections/communes/items/99999?f=html", 404, "99999"),
    ("/collections/trees/items?filter=dbh_cm%20%3E", 400, "filter"),
    ("/collections/trees/items?filter=height%20%3E%203", 400, "unknown property 'height'"),
    ("/collections/trees/items?colour=red", 400, "colour"),
    ("/collections/trees/items?limit=10001", 400, "limit"),
    ("/collections/trees/items?limit=0", 400, "limit"),
    ("/collections/trees/items?limit=ten", 400, "limit"),
    ("/collections/trees/items?offset=-1", 400, "offset"),
    ("/collections/trees/items?after=abc", 400, "after"),
    ("/collections/trees/items?crs=EPSG:2154", 400, "crs"),
    ("/collections/trees/items?bbox-crs=urn:nothing&bbox=1,2,3,4", 400, "bbox-crs"),
    ("/collections/trees/items/1?crs=EPSG:27700", 400, "crs"),
    ("/collections/trees/items?sortby=dbh_cm", 400, "sortby"),
    ("/collections/trees/items?limit=1&limit=2", 400, "more than once"),
    ("/collections/trees/items?f=xml", 400, ""),
]


@pytest.mark.parametrize(("path", "status", "says"), BAD_READS)
def test_bad_reads_are_ogc_json_4xx(api_server, path, status, says):
    r = httpx.get(f"{api_server}{path}")
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"code", "description"}
    assert says in body["description"]


def test_wrong_method_is_a_405(api_server):
    r = httpx.delete(f"{api_server}/collections")
    assert r.status_code == 405 and r.json()["code"] == "MethodNotAllowed"


def test_write_without_token_and_with_invalid_geometry(api_server, editor_token):
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": ["x", 1]},
            "properties": {"tree_code": "E1", "category": "urban"}}
    r = httpx.post(f"{api_server}/collections/trees/items", json=body)
    assert r.status_code == 401
    r = httpx.post(f"{api_server}/collections/trees/items", json=body,
                   headers={"Authorization": f"Bearer {editor_token}"})
    assert r.status_code == 400 and "geometry" in r.json()["description"]
