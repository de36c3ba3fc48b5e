import httpx
import pytest
from pyproj import Transformer

from tests.fixtures.server import tree_position

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG = "http://www.opengis.net/def/crs/EPSG/0/{}"


def first_tree(base, **params):
    r = httpx.get(f"{base}/collections/trees/items", params={"limit": 1, **params})
    assert r.status_code == 200, r.text
    return r, r.json()["features"][0]["geometry"]["coordinates"]


def test_default_is_crs84_and_says_so(api_server):
    r, xy = first_tree(api_server)
    assert r.headers["content-crs"] == f"<{CRS84}>"
    assert xy == pytest.approx(tree_position(0))


def test_epsg_4326_is_served_latitude_first(api_server):
    r, xy = first_tree(api_server, crs=EPSG.format(4326))
    assert r.headers["content-crs"] == f"<{EPSG.format(4326)}>"
    lon, lat = tree_position(0)
    assert xy == pytest.approx([lat, lon])


@pytest.mark.parametrize("code", [3857, 9213])
def test_projected_output_matches_pyproj(api_server, code):
    r, xy = first_tree(api_server, crs=EPSG.format(code))
    expected = Transformer.from_crs(4326, code, always_xy=True).transform(*tree_position(0))
    assert xy == pytest.approx(expected, abs=0.01)
    assert r.headers["content-crs"] == f"<{EPSG.format(code)}>"


def test_one_item_in_vn2000(api_server):
    r = httpx.get(f"{api_server}/collections/trees/items/1", params={"crs": EPSG.format(9213)})
    expected = Transformer.from_crs(4326, 9213, always_xy=True).transform(*tree_position(0))
    assert r.json()["geometry"]["coordinates"] == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("code", [3857, 9213])
def test_bbox_in_another_crs_selects_the_same_trees(api_server, code):
    lon1, lat1, lon2, lat2 = 105.7999, 21.4999, 105.8081, 21.5021
    to = Transformer.from_crs(4326, code, always_xy=True)
    x1, y1 = to.transform(lon1, lat1)
    x2, y2 = to.transform(lon2, lat2)
    plain = httpx.get(f"{api_server}/collections/trees/items",
                      params={"bbox": f"{lon1},{lat1},{lon2},{lat2}"}).json()
    other = httpx.get(f"{api_server}/collections/trees/items",
                      params={"bbox": f"{x1},{y1},{x2},{y2}", "bbox-crs": EPSG.format(code)}).json()
    assert [f["id"] for f in other["features"]] == [f["id"] for f in plain["features"]]
    assert len(plain["features"]) == 10


def test_collections_advertise_their_crs(api_server):
    crs = httpx.get(f"{api_server}/collections/trees").json()["crs"]
    assert {CRS84, EPSG.format(4326), EPSG.format(3857), EPSG.format(9213)} <= set(crs)


def test_unsupported_crs_is_a_400(api_server):
    r = httpx.get(f"{api_server}/collections/trees/items", params={"crs": EPSG.format(32648)})
    assert r.status_code == 400
    assert "unsupported CRS" in r.json()["description"]
