"""The territory is data: loaded units or a boundary decide what is inside, never a constant.

A fictional city abroad ("Westhaven", around 4.85 E, 52.35 N) with letter-coded districts is
loaded as admin units and as a boundary; its trees load, the demo province's are refused with
one line naming the territory and the file's extent. With no territory, commands refuse and say
how to set one.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from etl.admin import load_admin
from etl.errors import InputError
from etl.trees import load_trees
from smarttrees import territory
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.survey_writer import make_survey, write_survey

# An L-shaped city: two square districts; the square north-east of them is outside.
WEST = [[4.80, 52.30], [4.85, 52.30], [4.85, 52.40], [4.80, 52.40], [4.80, 52.30]]
EAST = [[4.85, 52.30], [4.90, 52.30], [4.90, 52.35], [4.85, 52.35], [4.85, 52.30]]


def districts(path: Path, units: list[tuple[str, str, list[list[float]]]]) -> Path:
    features = [{"type": "Feature", "properties": {"code": code, "name": name},
                 "geometry": {"type": "Polygon", "coordinates": [ring]}}
                for code, name, ring in units]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def city_trees(path: Path, points: list[tuple[float, float]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tree_code", "species", "category", "dbh_cm", "lon", "lat"])
        for i, (lon, lat) in enumerate(points, start=1):
            writer.writerow([f"WH-{i:04d}", "Tilia cordata", "urban", 30, lon, lat])
    return path


def rejects(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {int(r["row"]): r["reason"] for r in csv.DictReader(handle)}


@pytest.fixture
def city_url(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test database with Westhaven's two districts as the territory (no boundary)."""
    from smarttrees.settings import get_settings

    monkeypatch.setenv("SMARTTREES_UNIT_CODE_PATTERN", r"^[A-Z]{2,3}$")
    get_settings.cache_clear()
    with psycopg.connect(db_url) as conn:
        territory.clear_boundary(conn)
        conn.execute("INSERT INTO smarttrees.species (scientific_name, vietnamese_name, "
                     "vietnamese_ascii) VALUES ('Tilia cordata', 'Linde', 'linde')")
    load_admin(db_url, districts(tmp_path / "districts.geojson",
                                 [("WST", "West", WEST), ("EST", "East", EAST)]),
               level="commune", valid_from=dt.date(2026, 1, 1))
    yield db_url
    get_settings.cache_clear()


def test_units_in_force_are_the_territory(city_url: str, conn: psycopg.Connection) -> None:
    found = territory.current(conn)
    assert (found.origin, found.units, found.name) == (
        "admin_units", 2, "2 administrative units in force")
    assert found.extent == pytest.approx((4.80, 52.30, 4.90, 52.40))
    inside = conn.execute("SELECT smarttrees.in_territory(4.82, 52.38), "
                          "smarttrees.in_territory(4.88, 52.38)").fetchone()
    assert inside == (True, False)     # the second lies in the L's notch, inside its extent


def test_trees_of_the_city_load_and_the_notch_is_refused(city_url: str, conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    path = city_trees(tmp_path / "trees.csv",
                      [(4.82, 52.31), (4.87, 52.32), (4.88, 52.38), (52.32, 4.87)])
    f = load_trees(city_url, [path]).files[0]
    assert (f.rows, f.inserted, f.refused) == (4, 2, 2)
    got = rejects(f.rejects_path)
    assert got[4] == "lon/lat: 4.880000, 52.380000 is outside the territory"
    assert got[5] == ("lon/lat: 52.320000, 4.870000 is outside the territory; "
                      "longitude and latitude look swapped")
    assert f.all_outside is None
    assert conn.execute("SELECT array_agg(commune_code ORDER BY tree_code) FROM smarttrees.trees"
                        ).fetchone()[0] == ["WST", "EST"]


def test_a_file_entirely_outside_gets_one_line(city_url: str, tmp_path: Path) -> None:
    path = write_survey(make_survey(20, lang="en"), tmp_path / "thai_nguyen.csv")
    out = run_cli("load", "trees", str(path), "--mapping", "en_survey",
                  env=cli_env(SMARTTREES_DATABASE_URL=city_url,
                              SMARTTREES_UNIT_CODE_PATTERN=r"^[A-Z]{2,3}$"))
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "refused 20" in lines[0]
    assert lines[1].startswith("  thai_nguyen.csv: all 20 positions lie outside the territory "
                               "2 administrative units in force (2 administrative unit(s) in "
                               "force; lon 4.800 to 4.900, lat 52.300 to 52.400); the file's "
                               "positions span lon 105.70")
    assert "refused rows and reasons" in lines[2]


def test_a_loaded_boundary_takes_precedence_and_can_be_retired(
        city_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    square = [[4.80, 52.30], [4.90, 52.30], [4.90, 52.40], [4.80, 52.40], [4.80, 52.30]]
    path = districts(tmp_path / "westhaven.geojson", [("X", "Westhaven", square)])
    env = cli_env(SMARTTREES_DATABASE_URL=city_url)
    out = run_cli("load", "territory", str(path), "--name", "Westhaven", env=env)
    assert out.code == 0, out.stderr
    assert out.stdout.strip() == ("territory: Westhaven (boundary of 1 polygon(s); "
                                  "lon 4.800 to 4.900, lat 52.300 to 52.400)")
    assert conn.execute("SELECT smarttrees.in_territory(4.88, 52.38)").fetchone() == (True,)
    out = run_cli("territory", "clear", env=env)
    assert out.code == 0, out.stderr
    assert "2 administrative unit(s) in force" in out.stdout
    assert conn.execute("SELECT smarttrees.in_territory(4.88, 52.38)").fetchone() == (False,)
    # Retired boundaries are kept (the template's test area and Westhaven's), none in force.
    assert conn.execute("SELECT count(*), count(*) FILTER (WHERE replaced_at IS NULL) "
                        "FROM smarttrees.territory_boundaries").fetchone() == (2, 0)


def test_no_territory_refuses_and_says_how_to_set_one(db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(db_url) as conn:
        territory.clear_boundary(conn)
    path = write_survey(make_survey(5), tmp_path / "survey.csv")
    env = cli_env(SMARTTREES_DATABASE_URL=db_url)
    for args in (("load", "trees", str(path)), ("territory", "show")):
        out = run_cli(*args, env=env)
        assert out.code != 0
        assert out.error_lines == [f"error: no territory set: {territory.HOW_TO_SET}"], out.stderr
        assert "Traceback" not in out.stderr
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone() == (0,)


def test_unit_codes_follow_the_scheme(db_url: str, tmp_path: Path) -> None:
    path = districts(tmp_path / "city.geojson", [("WST", "West", WEST)])
    with pytest.raises(InputError) as refused:
        load_admin(db_url, path, level="commune", valid_from=dt.date(2026, 1, 1))
    assert str(refused.value) == ("city.geojson, row 1, field 'code': unit code 'WST' does not "
                                  "follow the unit-code scheme ^[0-9]+$ "
                                  "(SMARTTREES_UNIT_CODE_PATTERN)")


def test_overlapping_units_are_refused_and_nothing_changes(city_url: str, conn: psycopg.Connection,
                                                           tmp_path: Path) -> None:
    shifted = [[x + 0.02, y] for x, y in WEST]
    path = districts(tmp_path / "overlap.geojson",
                     [("WST", "West", WEST), ("EST", "East", EAST), ("NTH", "North", shifted)])
    with pytest.raises(InputError) as refused:
        load_admin(city_url, path, level="commune",
                   valid_from=dt.date(2026, 6, 1))
    assert str(refused.value).startswith("overlap.geojson, field 'geometry': units NTH (row 3) "
                                         "and WST (row 1) overlap over 60.0% of the smaller one")
    assert conn.execute("SELECT count(*) FROM smarttrees.admin_units").fetchone() == (2,)


def test_a_territory_file_without_polygons_is_refused(db_url: str, conn: psycopg.Connection,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "points.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Point",
                                                          "coordinates": [4.8, 52.3]}}]}))
    out = run_cli("load", "territory", str(path), env=cli_env(SMARTTREES_DATABASE_URL=db_url))
    assert out.code != 0
    assert out.error_lines == ["error: points.geojson, row 1, field 'geometry': Point where a polygon "
                               "was expected"]
    before = territory.current(conn)
    assert before.name == "Thái Nguyên test area"


def test_the_database_refuses_trees_put_or_moved_outside(city_url: str, conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    load_trees(city_url, [city_trees(tmp_path / "trees.csv", [(4.82, 52.31), (4.87, 52.32)])])
    for statement in (
        "INSERT INTO smarttrees.trees (tree_code, category, geom) "
        "VALUES ('OUT-1', 'urban', ST_SetSRID(ST_MakePoint(4.88, 52.38), 4326))",
        "UPDATE smarttrees.trees SET geom = ST_SetSRID(ST_MakePoint(4.88, 52.38), 4326) "
        "WHERE tree_code = 'WH-0001'",
    ):
        with pytest.raises(psycopg.errors.CheckViolation) as refused, conn.transaction():
            conn.execute(statement)
        assert refused.value.diag.message_primary == (
            "geometry: POINT(4.88 52.38) is outside the territory (2 administrative units in "
            "force)")
    # A reform that leaves a tree outside every unit still loads: trees that did not move are
    # not refused, they lose their commune.
    load_admin(city_url, districts(tmp_path / "reform.geojson", [("WST", "West", WEST)]),
               level="commune", valid_from=dt.date(2026, 6, 1))
    assert conn.execute("SELECT tree_code, commune_code FROM smarttrees.trees ORDER BY 1"
                        ).fetchall() == [("WH-0001", "WST"), ("WH-0002", None)]
