"""Open city inventories load through their mappings alone (issue 12 point 3).

The files in ``tests/data/open_inventories`` are written here from each inventory's published
column layout (New York 2015 Street Tree Census, Paris "Les arbres", Vienna Baumkataster), with
invented values and a few bad rows each; every count and reason below is read off those files.
"""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest

from etl.boundary import load_boundary
from etl.errors import MappingError
from etl.mappings import PRESETS, load_mapping
from etl.species import load_catalogue, unmatched
from etl.trees import LoadOptions, load_trees
from tests.fixtures.cli import cli_env, run_cli

DATA = Path(__file__).parent / "data" / "open_inventories"


def rejects(path: Path, key: str | None = None) -> dict[str, str]:
    """Rejects file: the tree code (column ``key``, else the first) → the reason."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    at = rows[0].index(key) if key else 0
    return {row[at]: row[-1] for row in rows[1:]}


def stored(conn: psycopg.Connection, code: str) -> tuple:
    return conn.execute(
        "SELECT s.scientific_name, t.dbh_cm::float8, t.height_m::float8, t.crown_m::float8, "
        "t.condition, t.category, round(ST_X(t.geom)::numeric, 6)::float8, "
        "round(ST_Y(t.geom)::numeric, 6)::float8, t.source FROM smarttrees.trees t "
        "JOIN smarttrees.species s ON s.id = t.species_id WHERE t.tree_code = %s",
        [code]).fetchone()


def set_up_city(db_url: str, city: str) -> None:
    load_boundary(db_url, DATA / f"{city}_boundary.geojson")
    load_catalogue(db_url, DATA / f"{city}_species.csv", actor="test")


def test_new_york_inches_health_or_status_and_stumps_left_out(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up_city(db_url, "nyc")
    out = tmp_path / "rejects.csv"
    result = load_trees(db_url, [DATA / "nyc_street_trees_2015.csv"],
                        LoadOptions(mapping="nyc_street_tree_census_2015", rejects=out))
    f = result.files[0]
    assert (f.rows, f.left_out, f.inserted, f.refused) == (18, 2, 15, 3)
    reasons = rejects(out)
    assert set(reasons) == {"900117", "900118", "900119"}
    assert "species" in reasons["900117"] and "Quercus imaginaria" in reasons["900117"]
    assert "outside" in reasons["900118"]
    assert "condition" in reasons["900119"] and "Excellent" in reasons["900119"]
    # Stumps (rows of tree_id 900114, 900115) are not trees: not stored, not refused.
    assert conn.execute("SELECT count(*) FROM smarttrees.trees WHERE tree_code IN "
                        "('900114', '900115')").fetchone() == (0,)
    # 3 inches → 7.62 cm; the health of a living tree; "Dead" from the status when no health.
    with (DATA / "nyc_street_trees_2015.csv").open(newline="") as handle:
        first = next(csv.DictReader(handle))
    row = stored(conn, "900100")
    assert row[0] == "Platanus × acerifolia"
    assert row[1] == pytest.approx(float(first["tree_dbh"]) * 2.54)
    assert row[4:6] == ("good", "urban")
    assert row[6:8] == (float(first["longitude"]), float(first["latitude"]))
    assert row[8] == "NYC 2015 Street Tree Census"
    assert stored(conn, "900116")[4] == "dead"
    # user_type is excluded; other columns are kept in the attributes.
    attrs = conn.execute("SELECT attributes FROM smarttrees.trees WHERE tree_code = '900100'"
                         ).fetchone()[0]
    assert "user_type" not in attrs and attrs["curb_loc"] == "OnCurb"


def test_paris_genus_and_epithet_joined_and_point_in_one_column(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up_city(db_url, "paris")
    out = tmp_path / "rejects.csv"
    result = load_trees(db_url, [DATA / "paris_les_arbres.csv"],
                        LoadOptions(mapping="paris_les_arbres", rejects=out))
    f = result.files[0]
    assert (f.rows, f.left_out, f.inserted, f.refused) == (16, 0, 13, 3)
    reasons = rejects(out)
    assert set(reasons) == {"2113", "2114", "2115"}
    assert "pas de position" in reasons["2113"]
    assert reasons["2114"] == "GENRE + ESPECE: 'Acer' is not in the species catalogue"
    assert "grand" in reasons["2115"]
    with (DATA / "paris_les_arbres.csv").open(newline="") as handle:
        first, second = list(csv.DictReader(handle, delimiter=";"))[:2]
    lat, lon = (float(v) for v in first["geo_point_2d"].split(","))
    row = stored(conn, "2100")
    assert row[0] == "Platanus × hispanica"      # "Platanus" + "x hispanica"
    assert row[1] == pytest.approx(float(first["CIRCONFERENCE (cm)"]) / 3.141592653589793,
                                   abs=0.01)
    assert row[2] == float(first["HAUTEUR (m)"]) and row[5] == "urban"
    assert row[6:8] == (lon, lat)                 # latitude first in the file
    # "AESCULUS" + "HIPPOCASTANUM", case normalised
    assert second["GENRE"] == "AESCULUS" and stored(conn, "2101")[0] == "Aesculus hippocastanum"


def test_vienna_height_and_crown_classes_and_wkt_points(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up_city(db_url, "vienna")
    out = tmp_path / "rejects.csv"
    result = load_trees(db_url, [DATA / "vienna_baumkataster.csv"],
                        LoadOptions(mapping="vienna_baumkataster", rejects=out))
    f = result.files[0]
    assert (f.rows, f.left_out, f.inserted, f.refused) == (15, 0, 12, 3)
    reasons = rejects(out, "BAUM_ID")
    assert set(reasons) == {"880012", "880013", "880014"}
    assert "unbekannt" in reasons["880012"]
    assert "outside" in reasons["880013"]
    mapping = load_mapping("vienna_baumkataster")
    with (DATA / "vienna_baumkataster.csv").open(newline="") as handle:
        for raw in list(csv.DictReader(handle))[:12]:
            row = stored(conn, raw["BAUM_ID"])
            assert row[2] == mapping.fields["height"].classes[raw["BAUMHOEHE_TXT"]]
            assert row[3] == mapping.fields["crown"].classes[raw["KRONENDURCHMESSER_TXT"]]
            lon, lat = (float(v) for v in raw["SHAPE"][7:-1].split())
            assert row[6:8] == (lon, lat)
            assert row[0] == raw["GATTUNG_ART"].split(" (")[0]


def test_species_unmatched_reads_the_joined_names(db_url: str) -> None:
    load_boundary(db_url, DATA / "paris_boundary.geojson")
    column, distinct, unknown = unmatched(db_url, DATA / "paris_les_arbres.csv",
                                          mapping="paris_les_arbres")
    assert column == "GENRE + ESPECE"
    names = {u.name: u.rows for u in unknown}
    assert names["Platanus x hispanica"] == 4 and names["Aesculus hippocastanum"] == 3
    assert distinct == 6        # five species and "Acer" alone


def test_us_dates_and_feet_through_an_own_mapping(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up_city(db_url, "nyc")
    mapping = tmp_path / "city.toml"
    mapping.write_text('crs = "EPSG:4326"\n[fields.tree_code]\ncolumns = ["Tag"]\n'
                       '[fields.species]\ncolumns = ["Botanical"]\n'
                       '[fields.planted_on]\ncolumns = ["Planted"]\nformat = "M/D/YYYY"\n'
                       '[fields.height]\ncolumns = ["Height"]\nunit = "ft"\n'
                       '[fields.point]\ncolumns = ["Location"]\nformat = "auto"\n[fixed]\ncategory = "urban"\n')
    survey = tmp_path / "survey.csv"
    survey.write_text('Tag,Botanical,Planted,Height,Location\n'
                      'A1,Acer rubrum,7/4/2012,30,"POINT (-73.9 40.7)"\n'
                      'A2,Acer rubrum,12/25/2019,10,"{""type"": ""Point"", '
                      '""coordinates"": [-73.91, 40.71]}"\n'
                      'A3,Acer rubrum,25/12/2019,10,"40.72, -73.92"\n', encoding="utf-8")
    out = tmp_path / "rejects.csv"
    f = load_trees(db_url, [survey], LoadOptions(mapping=mapping, rejects=out)).files[0]
    assert (f.rows, f.inserted, f.refused) == (3, 2, 1), rejects(out)
    assert "25/12/2019" in rejects(out)["A3"]
    rows = conn.execute("SELECT tree_code, planted_on::text, height_m::float8, "
                        "ST_X(geom), ST_Y(geom) FROM smarttrees.trees ORDER BY tree_code"
                        ).fetchall()
    assert rows[0][:3] == ("A1", "2012-07-04", pytest.approx(30 * 0.3048))
    assert rows[1][:2] == ("A2", "2019-12-25")
    assert rows[1][3:] == (pytest.approx(-73.91), pytest.approx(40.71))


@pytest.mark.parametrize(("text", "key"), [
    ('[fields.species]\ncolumns = ["GENRE", "NOPE"]\ncombine = "join"\n', "fields.species.columns"),
    ('[skip]\nSTATUT = ["Souche"]\n', "skip.STATUT"),
    ('[fields.point]\ncolumns = ["geo"]\n', "fields.point.columns"),
])
def test_a_mapping_naming_a_missing_column_is_refused_naming_file_and_key(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, text: str, key: str) -> None:
    set_up_city(db_url, "paris")
    mapping = tmp_path / "bad.toml"
    mapping.write_text('[fields.tree_code]\ncolumns = ["IDBASE"]\n' + text, encoding="utf-8")
    before = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()
    with pytest.raises(MappingError) as err:
        load_trees(db_url, [DATA / "paris_les_arbres.csv"], LoadOptions(mapping=mapping))
    assert str(err.value).startswith(f"bad.toml: {key}: paris_les_arbres.csv has no column")
    assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone() == before


@pytest.mark.parametrize(("text", "message"), [
    ('[fields.species]\ncolumns = ["a"]\njoin = " "\n', "fields.species.join: unknown option"),
    ('[fields.height]\ncolumns = ["h"]\nclasses = { "A" = "tall" }\n',
     "fields.height.classes: give class = representative number"),
    ('[fields.point]\ncolumns = ["p"]\nformat = "utm"\n', "fields.point.format: 'utm'"),
    ('[fields.species]\ncolumns = ["a"]\ncombine = "join"\n', "fields.species.combine: needs"),
    ('skip_rows = 2\n', "skip_rows: unknown option"),
])
def test_an_unknown_option_is_refused_naming_file_and_key(
        tmp_path: Path, text: str, message: str) -> None:
    mapping = tmp_path / "bad.toml"
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(MappingError, match="^bad.toml: " + message.replace("{", r"\{")):
        load_mapping(mapping)


def test_the_worked_mappings_ship_with_the_package() -> None:
    names = {p.stem for p in PRESETS.glob("*.toml")}
    assert {"nyc_street_tree_census_2015", "paris_les_arbres", "vienna_baumkataster"} <= names


def test_the_command_says_what_the_skip_rule_left_out_and_names_a_bad_mapping(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    set_up_city(db_url, "nyc")
    env = cli_env(SMARTTREES_DATABASE_URL=db_url)
    survey = DATA / "nyc_street_trees_2015.csv"
    bad = tmp_path / "nyc.toml"
    bad.write_text((PRESETS / "nyc_street_tree_census_2015.toml").read_text(encoding="utf-8")
                   .replace('status = ["Stump"]', 'statut = ["Stump"]'), encoding="utf-8")
    refused = run_cli("load", "trees", str(survey), "--mapping", str(bad), env=env)
    assert refused.code != 0 and "Traceback" not in refused.stderr
    assert refused.error_lines[0].endswith(
        "nyc.toml: skip.statut: nyc_street_trees_2015.csv has no column 'statut' (columns: "
        + ", ".join(survey.read_text(encoding="utf-8").splitlines()[0].split(",")) + ")")
    assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone() == (0,)
    out = run_cli("load", "trees", str(survey), "--mapping", "nyc_street_tree_census_2015",
                  "--rejects", str(tmp_path / "rejects.csv"), env=env)
    assert out.code == 0, out.stderr
    assert "nyc_street_trees_2015.csv: 18 rows" in out.stdout
    assert "left out by the mapping's skip rule: 2 rows" in out.stdout
    again = run_cli("load", "trees", str(survey), "--mapping", "nyc_street_tree_census_2015",
                    "--rejects", str(tmp_path / "rejects.csv"), env=env)
    assert "inserted 0, updated 0, unchanged 15, refused 3" in again.stdout, again.stdout


def test_two_trees_at_one_spot_west_of_greenwich_are_caught(
        db_url: str, tmp_path: Path) -> None:
    """The same-spot checks hold at negative longitudes (a grid key below zero is a key).

    Into an inventory that already holds trees, the checks across rows run in SQL on the
    staged grid keys: a key west of Greenwich used to be staged as NULL and escape them.
    """
    set_up_city(db_url, "nyc")
    load_trees(db_url, [DATA / "nyc_street_trees_2015.csv"],
               LoadOptions(mapping="nyc_street_tree_census_2015", rejects=tmp_path / "r0.csv"))
    with (DATA / "nyc_street_trees_2015.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        first = next(reader)
    moved = dict(first, longitude=f"{float(first['longitude']) + 0.0005:.6f}")  # a free spot
    twins = [dict(moved, tree_id="900998"), dict(moved, tree_id="900999")]
    survey = tmp_path / "nyc_twins.csv"
    with survey.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(first))
        writer.writeheader()
        writer.writerows(twins)
    out = tmp_path / "rejects.csv"
    result = load_trees(db_url, [survey],
                        LoadOptions(mapping="nyc_street_tree_census_2015", rejects=out))
    assert (result.files[0].inserted, result.files[0].refused) == (1, 1)
    assert "same spot as tree 900998" in rejects(out)["900999"]
