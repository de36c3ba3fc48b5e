"""Issue 12: a province other than the demo's, generated from a boundary file of its own.

The test writes a small made-up province far from Thái Nguyên (five units around Đà Lạt, two
of them wards), clears the test territory, and runs ``smarttrees generate --communes`` on it:
the territory is then those units, every tree is inside one of them, and the API serves them.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pytest
import shapely
from shapely.geometry import box, mapping

from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, serve_database

pytestmark = pytest.mark.slow  # a small province generated and served: about 30 s

WEST, SOUTH = 108.40, 11.90  # the province's south-west corner
SIDE = 0.04  # each unit is a square of this side, in a row of five
UNITS = [  # code, name, type
    ("24901", "Phường Hồ Xanh", "phường"),
    ("24902", "Phường Đồi Thông", "phường"),
    ("24905", "Xã Suối Vàng", "xã"),
    ("24907", "Xã Cao Nguyên", "xã"),
    ("24909", "Xã Thác Bạc", "xã"),
]
EXTENT = (WEST, SOUTH, WEST + SIDE * len(UNITS), SOUTH + SIDE)


def write_boundary(path: Path) -> None:
    """A GeoJSON of the made-up units, with code, name and type columns."""
    features = [
        {"type": "Feature",
         "properties": {"ma_xa": code, "ten_xa": name, "division_type": kind},
         "geometry": mapping(box(WEST + i * SIDE, SOUTH, WEST + (i + 1) * SIDE, SOUTH + SIDE))}
        for i, (code, name, kind) in enumerate(UNITS)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}),
                    encoding="utf-8")


def test_a_province_generated_from_its_own_boundary_file(db_url: str, tmp_path: Path) -> None:
    boundary = tmp_path / "lam_vien.geojson"
    write_boundary(boundary)
    env = cli_env(SMARTTREES_DATABASE_URL=db_url)
    cleared = run_cli("territory", "clear", env=env)
    assert cleared.code == 0 and "no territory set" in cleared.stdout, cleared.stderr
    made = run_cli("generate", "--communes", str(boundary), env=env, timeout=600)
    assert made.code == 0, made.stderr

    shown = run_cli("territory", "show", env=env)
    # The union of the units in force: the five communes and the province the generator adds.
    assert shown.code == 0 and "6 administrative unit(s) in force" in shown.stdout, shown.stdout
    assert "lon 108.400 to 108.600, lat 11.900 to 11.940" in shown.stdout
    assert "lam_vien (synthetic)" in shown.stdout and "Thái Nguyên" not in shown.stdout
    with psycopg.connect(db_url) as conn:
        codes = {r[0] for r in conn.execute(
            "SELECT code FROM smarttrees.communes ORDER BY code")}
        assert codes == {code for code, _, _ in UNITS}
        total, inside, in_listed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE ST_Within(t.geom, c.geom)), "
            "count(*) FILTER (WHERE t.commune_code = ANY(%s)) "
            "FROM smarttrees.trees t LEFT JOIN smarttrees.communes c ON c.code = t.commune_code",
            [sorted(codes)]).fetchone()  # type: ignore[misc]
        assert total > 1000 and inside == in_listed == total
        wards = conn.execute("SELECT count(*) FROM smarttrees.trees t JOIN smarttrees.communes c "
                             "ON c.code = t.commune_code WHERE c.unit_type = 'phường' "
                             "AND t.category = 'urban'").fetchone()
        assert wards is not None and wards[0] > 0  # street trees in the two wards

    token = make_token(db_url, "editor")
    with serve_database(db_url) as base, httpx.Client(base_url=base, timeout=30) as client:
        page = client.get("/collections/trees/items", params={
            "bbox": ",".join(map(str, EXTENT)), "limit": 10}).json()
        assert page["numberReturned"] == 10
        for feature in page["features"]:
            lon, lat = feature["geometry"]["coordinates"]
            assert shapely.intersects_xy(box(*EXTENT), lon, lat)
        in_ward = client.get("/collections/trees/items", params={
            "commune_code": "24901", "limit": 10_000}).json()
        assert in_ward["features"] and all(
            f["properties"]["commune_code"] == "24901" for f in in_ward["features"])
        communes = client.get("/collections/communes/items").json()
        assert {f["properties"]["name"] for f in communes["features"]} == {
            name for _, name, _ in UNITS}
        # The territory is the file's units: a tree in Thái Nguyên is outside it now.
        auth = {"Authorization": f"Bearer {token}"}
        for lon, lat, status in ((WEST + 0.01, SOUTH + 0.01, 201), (105.84, 21.59, 400)):
            feature = {"type": "Feature",
                       "geometry": {"type": "Point", "coordinates": [lon, lat]},
                       "properties": {"tree_code": f"LV-{status}", "category": "urban"}}
            written = client.post("/collections/trees/items", json=feature, headers=auth)
            assert written.status_code == status, written.text
        assert "outside the territory" in written.json()["description"]
