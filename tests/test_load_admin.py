"""Versioned administrative units from ../shared/data/admin: reforms close, never delete."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import psycopg
import pytest

from etl.admin import load_admin
from etl.errors import InputError
from etl.trees import load_trees
from tests.fixtures.survey_writer import make_survey, write_survey

JULY_2025 = dt.date(2025, 7, 1)


def test_districts_then_communes_then_a_reform(db_url: str, conn: psycopg.Connection,
                                               shared_data: Path, tmp_path: Path) -> None:
    admin = shared_data / "admin"
    districts = load_admin(db_url, admin / "districts_pre2025.geojson", level="district",
                           valid_from=dt.date(2008, 8, 1))
    assert (districts.inserted, districts.closed) == (17, 0)
    communes = load_admin(db_url, admin / "communes_2025_approx.geojson", level="commune",
                          valid_from=JULY_2025)
    assert (communes.inserted, communes.closed, communes.unchanged) == (92, 0, 0)
    again = load_admin(db_url, admin / "communes_2025_approx.geojson", level="commune",
                       valid_from=JULY_2025)
    assert (again.inserted, again.closed, again.unchanged) == (0, 0, 92)

    # Trees loaded now get the commune containing them.
    load_trees(db_url, [write_survey(make_survey(20), tmp_path / "trees.csv")])
    code, old = conn.execute(
        "SELECT t.tree_code, t.commune_code FROM smarttrees.trees t WHERE tree_code = 'TN-0000001'").fetchone()
    assert old == conn.execute("SELECT smarttrees.commune_at(geom) FROM smarttrees.trees "
                               "WHERE tree_code = 'TN-0000001'").fetchone()[0]
    assert old is not None

    # A 2026 reform merges the tree's commune with another into a new unit.
    frame = gpd.read_file(admin / "communes_2025_approx.geojson")
    other = frame.loc[frame.code != old, "code"].iloc[0]
    merged = frame[frame.code.isin([old, other])].dissolve()
    merged["code"], merged["name_vi"] = "99001", "Xã Hợp Nhất"
    reformed = gpd.GeoDataFrame(
        [*frame[~frame.code.isin([old, other])].to_dict("records"), *merged.to_dict("records")],
        crs=frame.crs)
    reformed.to_file(tmp_path / "communes_2026.geojson", driver="GeoJSON")
    reform = load_admin(db_url, tmp_path / "communes_2026.geojson", level="commune",
                        valid_from=dt.date(2026, 1, 1))
    assert (reform.inserted, reform.closed, reform.unchanged) == (1, 2, 90)
    assert reform.trees_moved >= 1

    versions = conn.execute(
        "SELECT code, valid_from, valid_to FROM smarttrees.admin_units WHERE code IN (%s, %s, '99001') "
        "ORDER BY code", (old, other)).fetchall()
    assert sorted(versions) == sorted([(old, JULY_2025, dt.date(2026, 1, 1)),
                                       (other, JULY_2025, dt.date(2026, 1, 1)),
                                       ("99001", dt.date(2026, 1, 1), None)])
    assert conn.execute("SELECT count(*) FROM smarttrees.communes").fetchone() == (91,)
    assert conn.execute("SELECT count(*) FROM smarttrees.admin_units WHERE level = 'district'").fetchone() == (17,)
    at = conn.execute(
        "SELECT commune_code, smarttrees.commune_at(geom, '2025-08-01'), smarttrees.commune_at(geom, '2026-02-01') "
        "FROM smarttrees.trees WHERE tree_code = %s", (code,)).fetchone()
    assert at == ("99001", old, "99001")
    change = conn.execute("SELECT source, changes -> 'commune_code' FROM smarttrees.tree_history "
                          "WHERE tree_code = %s AND change = 'update'", (code,)).fetchone()
    assert change == ("communes_2026.geojson", {"old": old, "new": "99001"})


def test_an_older_version_is_refused(db_url: str, shared_data: Path) -> None:
    path = shared_data / "admin" / "communes_2025_approx.geojson"
    load_admin(db_url, path, level="commune", valid_from=JULY_2025)
    with pytest.raises(InputError, match="newer than --valid-from 2020-01-01"):
        load_admin(db_url, path, level="commune", valid_from=dt.date(2020, 1, 1))


def test_every_problem_of_a_units_file_is_named_at_once(db_url: str, conn: psycopg.Connection,
                                                        tmp_path: Path) -> None:
    from shapely.geometry import Point, box

    frame = gpd.GeoDataFrame({
        "code": ["00101", "x12", "00103", "00101", "00105"],
        "name_vi": ["Xã A", "Xã B", "Xã C", "Xã D", "Xã E"],
        "geometry": [box(105.7, 21.5, 105.8, 21.6), box(105.8, 21.5, 105.9, 21.6),
                     Point(105.9, 21.5), box(106.0, 21.5, 106.1, 21.6),
                     box(106.1, 21.5, 106.2, 21.6)],
    }, crs="EPSG:4326")
    path = tmp_path / "communes.geojson"
    frame.to_file(path, driver="GeoJSON")
    with pytest.raises(InputError) as info:
        load_admin(db_url, path, level="commune", valid_from=JULY_2025)
    message = str(info.value)
    assert message.startswith("communes.geojson: 3 problems, nothing loaded: ")
    for part in ("row 2: code: unit code 'x12' does not follow the unit-code scheme",
                 "row 3: geometry: Point where a polygon was expected",
                 "code: unit code 00101 appears twice"):
        assert part in message, message
    assert conn.execute("SELECT count(*) FROM smarttrees.admin_units").fetchone() == (0,)
