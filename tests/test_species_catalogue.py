"""The species catalogue as data: `load species` merges by scientific name with history, fills
wood densities from the Global Wood Density Database, and `species unmatched` lists a survey's
unknown names so that a newcomer can build a catalogue from an inventory.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from etl.errors import InputError
from etl.species import load_catalogue, load_species, unmatched
from tests.fixtures.cli import cli_env, run_cli

HEADER = ["scientific_name", "local_names", "family", "wood_density", "synonyms"]


def species_file(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def catalogue(conn: psycopg.Connection, name: str) -> tuple:
    return conn.execute(
        "SELECT vietnamese_name, family, wood_density::float8, wood_density_level, "
        "wood_density_source, synonyms FROM smarttrees.species WHERE scientific_name = %s",
        [name]).fetchone()


def counts(conn: psycopg.Connection) -> tuple[int, int]:
    return conn.execute("SELECT (SELECT count(*) FROM smarttrees.species), "
                        "(SELECT count(*) FROM smarttrees.species_history)").fetchone()


@pytest.fixture(scope="module")
def gwdd(shared_data: Path) -> Path:
    path = shared_data / "species" / "gwdd_v1_global.csv"
    if not path.exists():
        pytest.skip(f"GWDD v1 not found at {path}")
    return path


def gwdd_mean(path: Path, **taxon: str) -> tuple[float, int]:
    """The mean and record count of a taxon, computed here from the GWDD records."""
    frame = pd.read_csv(path)
    for column, value in taxon.items():
        frame = frame[frame[column] == value]
    return round(float(frame["wd"].mean()), 3), len(frame)


def test_merge_by_scientific_name_with_history_and_gwdd_fill(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, gwdd: Path) -> None:
    path = species_file(tmp_path / "city_species.csv", [
        ["Tilia cordata", "Small-leaved lime; Linde", "Malvaceae", "0,49", "Tilia parvifolia"],
        ["Platanus orientalis", "Oriental plane", "Platanaceae", "", ""],
        ["Platanus zzyzx", "Unknown plane", "", "", ""],
        ["Acacia mangium", "Keo tai tượng; Mangium", "Fabaceae", "", ""],
    ])
    species_before, history_before = counts(conn)
    result = load_catalogue(db_url, path, wood_densities=gwdd, actor="test-curator")
    assert (result.rows, result.inserted, result.updated, result.unchanged) == (4, 3, 1, 0)
    assert result.given == 1 and result.filled["species"] + result.filled["genus"] == 3

    assert catalogue(conn, "Tilia cordata") == (
        "Small-leaved lime", "Malvaceae", 0.49, "given", "given in city_species.csv",
        ["Linde", "Tilia parvifolia"])
    value, n = gwdd_mean(gwdd, genus="Platanus", species="orientalis")
    assert catalogue(conn, "Platanus orientalis")[2:5] == (
        value, "species", f"GWDD v1 species mean ({n} records)")
    value, n = gwdd_mean(gwdd, genus="Platanus")
    assert catalogue(conn, "Platanus zzyzx")[2:5] == (
        value, "genus", f"GWDD v1 genus mean ({n} records)")
    # The shipped density of Acacia mangium is kept: the file gave none, the GWDD's would be
    # the same species mean, so nothing but the names changed.
    assert catalogue(conn, "Acacia mangium")[0] == "Keo tai tượng"
    assert catalogue(conn, "Acacia mangium")[5] == ["Mangium"]

    history = conn.execute(
        "SELECT scientific_name, change, actor, source FROM smarttrees.species_history "
        "WHERE id > %s ORDER BY id", [history_before]).fetchall()
    assert sorted(history) == [
        ("Acacia mangium", "update", "test-curator", "city_species.csv"),
        ("Platanus orientalis", "insert", "test-curator", "city_species.csv"),
        ("Platanus zzyzx", "insert", "test-curator", "city_species.csv"),
        ("Tilia cordata", "insert", "test-curator", "city_species.csv"),
    ]
    assert counts(conn) == (species_before + 3, history_before + 4)
    again = load_catalogue(db_url, path, wood_densities=gwdd)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 4)
    assert counts(conn) == (species_before + 3, history_before + 4)


def test_family_mean_when_the_genus_is_unknown(db_url: str, conn: psycopg.Connection,
                                               tmp_path: Path, gwdd: Path) -> None:
    path = species_file(tmp_path / "rare.csv", [["Notagenus rarus", "", "Platanaceae", "", ""]])
    load_catalogue(db_url, path, wood_densities=gwdd)
    value, n = gwdd_mean(gwdd, family="Platanaceae")
    assert catalogue(conn, "Notagenus rarus")[:5] == (
        "Notagenus rarus", "Platanaceae", value, "family", f"GWDD v1 family mean ({n} records)")


def test_an_xlsx_catalogue_without_wood_density_table(db_url: str, conn: psycopg.Connection,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "loai_cay.xlsx"
    pd.DataFrame({"Tên khoa học": ["Tilia cordata"], "Tên Việt Nam": ["Đoạn lá nhỏ"],
                  "Họ": ["Malvaceae"]}).to_excel(path, index=False)
    result = load_catalogue(db_url, path)
    assert (result.inserted, result.unknown) == (1, ["Tilia cordata"])
    assert catalogue(conn, "Tilia cordata")[:4] == ("Đoạn lá nhỏ", "Malvaceae", None, None)
    assert "no wood density for 1: Tilia cordata" in result.summary()


@pytest.mark.parametrize(("rows", "message"), [
    ([["Tilia cordata", "", "", "", ""], ["tilia  CORDATA", "", "", "", ""]],
     "bad.csv, row 3, field 'scientific_name': 'tilia CORDATA' repeats row 2: one row per "
     "scientific name"),
    ([["Tilia cordata", "", "", "0.5", ""], ["Tilia tomentosa", "", "", "620", ""]],
     "bad.csv, row 3, field 'wood_density': 620 g/cm³ is outside 0.1–1.5 g/cm³ (a wood density "
     "in kg/m³? divide by 1,000)"),
    ([["Tilia cordata", "", "", "heavy", ""]],
     "bad.csv, row 2, field 'wood_density': 'heavy' is not a number"),
    ([["", "Linde", "", "", ""]], "bad.csv, row 2, field 'scientific_name': missing"),
])
def test_bad_catalogues_name_file_row_and_field_and_change_nothing(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, rows: list[list[str]],
        message: str) -> None:
    before = counts(conn)
    with pytest.raises(InputError) as refused:
        load_catalogue(db_url, species_file(tmp_path / "bad.csv", rows))
    assert str(refused.value) == message
    assert counts(conn) == before


def test_the_shipped_catalogue_never_overwrites_a_loaded_species(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    load_catalogue(db_url, species_file(tmp_path / "own.csv",
                                        [["Acacia mangium", "Mangium", "Fabaceae", "0.52", ""]]))
    load_species(conn)      # what `smarttrees db upgrade` runs
    assert catalogue(conn, "Acacia mangium")[:4] == ("Mangium", "Fabaceae", 0.52, "given")


def test_unmatched_names_of_a_survey_then_loaded(db_url: str, tmp_path: Path) -> None:
    survey = species_file(tmp_path / "inventory.csv", [
        ["T1", "Keo lá tràm", "Fabaceae"], ["T2", "Tilia cordata", "Malvaceae"],
        ["T3", "Tilia cordata", "Malvaceae"], ["T4", "Acacia mangiun", "Fabaceae"],
    ], header=["tree_id", "species", "family"])
    env = cli_env(SMARTTREES_DATABASE_URL=db_url)
    starter = tmp_path / "starter.csv"
    out = run_cli("species", "unmatched", str(survey), "--csv", str(starter), env=env)
    assert out.code == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "inventory.csv: column 'species': 3 distinct name(s), 2 not in the catalogue"
    assert lines[1].startswith("  Tilia cordata (2 row(s)): ")
    assert lines[2].startswith("  Acacia mangiun (1 row(s)): closest: Keo tai tượng "
                               "(Acacia mangium)")
    with starter.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["scientific_name"], r["family"], r["survey_rows"]) for r in rows] == [
        ("Tilia cordata", "Malvaceae", "2"), ("Acacia mangiun", "Fabaceae", "1")]
    out = run_cli("load", "species", str(starter), env=env)
    assert out.code == 0, out.stderr
    assert out.stdout.startswith("starter.csv: 2 species: inserted 2, updated 0, unchanged 0")
    _, _, left = unmatched(db_url, survey)
    assert left == []


def test_unmatched_in_an_open_inventory(db_url: str, shared_data: Path) -> None:
    path = shared_data / "street_trees" / "melbourne_urban_forest_subset.csv"
    if not path.exists():
        pytest.skip(f"{path} not found")
    column, distinct, unknown = unmatched(db_url, path, column="scientific_name")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    names = frame["scientific_name"].str.split().str.join(" ")
    expected = names[names != ""].value_counts()
    assert (column, distinct) == ("scientific_name", len(expected))
    assert 0 < len(unknown) < distinct      # some of Melbourne's species are Vietnam's too
    assert [u.rows for u in unknown] == sorted((u.rows for u in unknown), reverse=True)
    for u in unknown[:5]:
        assert u.rows == expected[u.name]
        assert u.family == frame.loc[names == u.name, "family"].iloc[0]
        assert u.local_name == frame.loc[names == u.name, "common_name"].iloc[0]
