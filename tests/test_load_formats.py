"""Every input format and coordinate system lands each tree where it stands."""

from __future__ import annotations

import csv
from pathlib import Path

import psycopg
import pytest

from etl.trees import LoadOptions, load_trees
from tests.fixtures.survey_writer import make_survey, write_survey

N = 25


def positions(conn: psycopg.Connection) -> dict[str, tuple[float, float]]:
    rows = conn.execute("SELECT tree_code, ST_X(geom), ST_Y(geom) FROM smarttrees.trees").fetchall()
    return {code: (x, y) for code, x, y in rows}


def assert_true_positions(conn: psycopg.Connection, lang: str) -> None:
    truth = make_survey(N, lang=lang)
    lon, lat = ("Kinh độ", "Vĩ độ") if lang == "vi" else ("lon", "lat")
    code = truth.columns[0]
    got = positions(conn)
    assert len(got) == N
    for _, row in truth.iterrows():
        x, y = got[row[code]]
        # Projected inputs are written to the centimetre: 1e-6° is about 10 cm.
        assert abs(x - row[lon]) < 1e-6 and abs(y - row[lat]) < 1e-6, row[code]


@pytest.mark.parametrize(("suffix", "crs", "lang", "recorded"), [
    (".csv", "wgs84", "vi", "EPSG:4326"),
    (".csv", "vn2000-thai-nguyen", "vi", "EPSG:9213"),
    (".csv", "utm48", "en", "EPSG:32648"),
    (".xlsx", "wgs84", "vi", "EPSG:4326"),
    (".xlsx", "vn2000-utm48", "vi", "EPSG:3405"),
    (".geojson", "wgs84", "en", "EPSG:4326"),
    (".gpkg", "vn2000-thai-nguyen", "vi", "EPSG:9213"),
    (".shp", "utm48", "en", "EPSG:32648"),
    (".fgb", "vn2000-tm3-106-30", "en", "EPSG:9213"),
])
def test_every_format_and_crs(db_url: str, conn: psycopg.Connection, tmp_path: Path,
                              suffix: str, crs: str, lang: str, recorded: str) -> None:
    path = write_survey(make_survey(N, lang=lang, crs=crs), tmp_path / f"survey{suffix}", crs=crs)
    tabular = suffix in (".csv", ".xlsx")
    # Tabular files carry no CRS: it is given; GIS files declare theirs.
    options = LoadOptions(crs=crs if tabular and crs != "wgs84" else None)
    res = load_trees(db_url, [path], options).files[0]
    assert (res.inserted, res.refused) == (N, 0)
    assert_true_positions(conn, lang)
    assert conn.execute("SELECT DISTINCT source_crs, source FROM smarttrees.trees").fetchall() == [
        (recorded, path.name)]


def test_semicolon_bom_and_decimal_comma(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    survey = make_survey(N)
    path = tmp_path / "excel_export.csv"
    text = survey.to_csv(index=False, sep=";", decimal=",")
    path.write_bytes("\ufeff".encode() + text.encode())
    res = load_trees(db_url, [path]).files[0]
    assert (res.inserted, res.refused) == (N, 0)
    assert_true_positions(conn, "vi")


@pytest.mark.parametrize("encoding", ["tcvn3", "vni"])
def test_legacy_vietnamese_encodings_detected_or_given(db_url: str, conn: psycopg.Connection,
                                                       tmp_path: Path, encoding: str) -> None:
    survey = make_survey(N)
    survey["Tên cây"] = ["Keo lá tràm", "Bạch đàn urô", "Lim xanh", "Xà cừ", "Sấu"] * (N // 5)
    survey["Tình trạng"] = ["Tốt", "Kém", "Trung bình", "Chết", "Tốt"] * (N // 5)
    path = write_survey(survey, tmp_path / "old.csv", encoding=encoding)
    assert "Mã cây".encode() not in path.read_bytes()
    res = load_trees(db_url, [path]).files[0]                 # detected
    assert (res.inserted, res.refused) == (N, 0)
    names = conn.execute("SELECT s.vietnamese_name, t.condition FROM smarttrees.trees t JOIN "
                         "smarttrees.species s ON s.id = t.species_id WHERE tree_code = 'TN-0000002'").fetchone()
    assert names == ("Bạch đàn urô", "poor")
    again = load_trees(db_url, [path], LoadOptions(encoding=encoding)).files[0]   # given
    assert again.unchanged == N


def test_vn2000_surveying_order_x_northing(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    survey = make_survey(N, crs="vn2000-thai-nguyen")
    survey[["X (m)", "Y (m)"]] = survey[["Y (m)", "X (m)"]].to_numpy()  # X = northing, as surveyors write
    path = write_survey(survey, tmp_path / "vn2000.csv")
    res = load_trees(db_url, [path], LoadOptions(crs="EPSG:9213")).files[0]
    assert (res.inserted, res.refused) == (N, 0)
    assert_true_positions(conn, "vi")


def test_wrong_zone_is_refused_with_a_hint(db_url: str, tmp_path: Path) -> None:
    path = write_survey(make_survey(3, crs="vn2000-thai-nguyen"), tmp_path / "zone.csv")
    res = load_trees(db_url, [path], LoadOptions(crs="vn2000-utm49")).files[0]
    assert res.refused == 3
    with res.rejects_path.open(encoding="utf-8-sig") as handle:
        reasons = [r["reason"] for r in csv.DictReader(handle)]
    assert all("is outside the territory; inside the territory if the CRS is EPSG:9213" in r for r in reasons)


def test_english_mapping_with_unit_conversions(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    mapping = tmp_path / "contractor.toml"
    mapping.write_text(
        'name = "contractor"\n'
        '[fields.tree_code]\ncolumns = ["Tag"]\n'
        '[fields.species]\ncolumns = ["Botanical"]\n'
        '[fields.circumference]\ncolumns = ["Girth (in)"]\nunit = "in"\n'
        '[fields.height_class]\ncolumns = ["H class"]\nvalues = { "A" = 4, "B" = 10 }\n'
        '[fields.crown]\ncolumns = ["Crown (ft)"]\nunit = "ft"\n'
        '[fields.lon]\ncolumns = ["Long"]\n[fields.lat]\ncolumns = ["Lat"]\n'
        '[fixed]\ncategory = "plantation"\nsource = "contractor 2026"\n', encoding="utf-8")
    path = tmp_path / "contractor.csv"
    path.write_text("Tag,Botanical,Girth (in),H class,Crown (ft),Long,Lat\n"
                    "C-1,Acacia mangium,31.4159,B,10,105.8,21.6\n"
                    "C-2,Tectona grandis,10,Z,10,105.8001,21.6\n", encoding="utf-8")
    res = load_trees(db_url, [path], LoadOptions(mapping=mapping)).files[0]
    assert (res.inserted, res.refused) == (1, 1)
    with res.rejects_path.open(encoding="utf-8-sig") as handle:
        assert next(csv.DictReader(handle))["reason"].startswith("H class: 'Z' is not a height class")
    dbh, height, crown, category, source = conn.execute(
        "SELECT dbh_cm::float8, height_m::float8, crown_m::float8, category, source FROM smarttrees.trees").fetchone()
    assert dbh == pytest.approx(25.4, abs=0.01) and crown == pytest.approx(3.048, abs=0.001)
    assert (height, category, source) == (10.0, "plantation", "contractor 2026")
