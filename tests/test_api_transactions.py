import httpx
import pytest

from smarttrees.database import connect


def feature(code="NEW-1", lon=105.83, lat=21.52, **props):
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"tree_code": code, "category": "urban", "dbh_cm": 31.5, **props}}


def auth(token):
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"}


def history(db, tree_id):
    with connect(db) as conn:
        return conn.execute(
            "SELECT change, actor, source, changes FROM tree_history WHERE tree_id = %s ORDER BY id",
            [tree_id],
        ).fetchall()


def create(base, token, body):
    r = httpx.post(f"{base}/collections/trees/items", json=body, headers=auth(token))
    assert r.status_code == 201, r.text
    return r.headers["location"]


def test_create_read_and_history(api_server, api_db, editor_token):
    location = create(api_server, editor_token, feature("NEW-C", species_id=2))
    got = httpx.get(location).json()
    assert got["properties"]["tree_code"] == "NEW-C"
    assert got["properties"]["species_name"]  # joined from the catalogue
    assert got["geometry"]["coordinates"] == pytest.approx([105.83, 21.52])
    assert history(api_db, got["id"])[0][:3] == ("insert", "test-editor", "api")


def test_replace_update_delete_each_leave_a_trace(api_server, api_db, editor_token, admin_token):
    location = create(api_server, editor_token, feature("NEW-R"))
    tree_id = int(location.rsplit("/", 1)[1])
    r = httpx.put(location, json=feature("NEW-R", lon=105.831, dbh_cm=40, condition="fair"),
                  headers=auth(editor_token))
    assert r.status_code == 204, r.text
    r = httpx.patch(location, json={"properties": {"condition": "poor"}}, headers=auth(admin_token))
    assert r.status_code == 204, r.text
    got = httpx.get(location).json()
    assert got["properties"]["dbh_cm"] == 40 and got["properties"]["condition"] == "poor"
    assert got["geometry"]["coordinates"][0] == pytest.approx(105.831)
    assert httpx.delete(location, headers=auth(editor_token)).status_code == 204
    assert httpx.get(location).status_code == 404
    changes = history(api_db, tree_id)
    assert [c[0] for c in changes] == ["insert", "update", "update", "delete"]
    assert [c[1] for c in changes] == ["test-editor", "test-editor", "test-admin", "test-editor"]
    assert changes[2][3] == {"condition": {"old": "fair", "new": "poor"}}


def test_put_in_vn2000_is_stored_in_wgs84(api_server, editor_token):
    from pyproj import Transformer

    location = create(api_server, editor_token, feature("NEW-VN"))
    x, y = Transformer.from_crs(4326, 9213, always_xy=True).transform(105.8345, 21.5123)
    headers = {**auth(editor_token), "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/9213>"}
    body = feature("NEW-VN")
    body["geometry"]["coordinates"] = [x, y]
    assert httpx.put(location, json=body, headers=headers).status_code == 204
    xy = httpx.get(location).json()["geometry"]["coordinates"]
    assert xy == pytest.approx([105.8345, 21.5123], abs=1e-7)
    httpx.delete(location, headers=auth(editor_token))


def count_trees(db):
    with connect(db) as conn:
        return conn.execute("SELECT count(*), (SELECT count(*) FROM tree_history) FROM trees").fetchone()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({**feature(), "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}, "Point"),
        ({**feature(), "geometry": {"type": "Point", "coordinates": [500, 21]}}, "longitude"),
        ({**feature(), "geometry": None}, "Point"),
        ({**feature(), "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}},
         "geometry: POINT(2.35 48.85) is outside the territory"),
        (feature(category="forest"), "trees_category_check"),
        (feature(dbh_cm="thick"), "properties.dbh_cm: expected number, got string"),
        (feature(tree_code=["a"]), "properties.tree_code: expected string, got array"),
        (feature(species_id=2.5), "properties.species_id: expected integer, got number"),
        (feature(dbh_cm=True), "properties.dbh_cm: expected number, got boolean"),
        (feature(colour="green"), "colour"),
        (feature(species_name="Acacia"), "species_name"),
        (feature(species_id=99999), "foreign key"),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [105.8, 21.5]}, "properties": {"category": "urban"}}, "tree_code"),
    ],
)
def test_invalid_writes_are_400s_and_write_nothing(api_server, api_db, editor_token, body, says):
    before = count_trees(api_db)
    r = httpx.post(f"{api_server}/collections/trees/items", json=body, headers=auth(editor_token))
    assert r.status_code == 400, r.text
    assert says in r.json()["description"]
    assert count_trees(api_db) == before


def test_duplicate_code_is_a_conflict(api_server, editor_token):
    r = httpx.post(f"{api_server}/collections/trees/items", json=feature("G1"),
                   headers=auth(editor_token))
    assert r.status_code == 409


def test_not_json_body_is_a_400(api_server, editor_token):
    r = httpx.post(f"{api_server}/collections/trees/items", content=b"{not json",
                   headers=auth(editor_token))
    assert r.status_code == 400 and r.json()["code"] == "InvalidParameterValue"


def test_changing_a_missing_tree_is_a_404(api_server, editor_token):
    r = httpx.patch(f"{api_server}/collections/trees/items/987654",
                    json={"properties": {"condition": "dead"}}, headers=auth(editor_token))
    assert r.status_code == 404


def test_read_only_collections_refuse_writes(api_server, editor_token):
    r = httpx.post(f"{api_server}/collections/communes/items", json=feature(),
                   headers=auth(editor_token))
    assert r.status_code == 405 and r.json()["code"] == "MethodNotAllowed"
