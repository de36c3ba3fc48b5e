"""Bad input: one clear message naming file, row and field; nothing stored changes."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import psycopg
import pytest
from shapely.geometry import Point, box

from etl.errors import InputError
from etl.trees import LoadOptions, load_trees
from tests.fixtures.survey_writer import make_survey, write_survey


@pytest.fixture
def loaded(db_url: str, tmp_path: Path) -> int:
    """Ten trees already in the database: a failed load must leave them alone."""
    load_trees(db_url, [write_survey(make_survey(10, prefix="OLD", start=5000), tmp_path / "old.csv")])
    return 10


def unchanged(conn: psycopg.Connection, trees: int) -> bool:
    return conn.execute("SELECT count(*), (SELECT count(*) FROM smarttrees.tree_history) "
                        "FROM smarttrees.trees").fetchone() == (trees, trees)


def fails(db_url: str, path: Path, **options: object) -> InputError:
    with pytest.raises(InputError) as info:
        load_trees(db_url, [path], LoadOptions(**options))  # type: ignore[arg-type]
    return info.value


def test_empty_file(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    assert str(fails(db_url, path)) == "empty.csv: the file is empty"
    assert unchanged(conn, loaded)


def test_header_without_rows(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    path = tmp_path / "header.csv"
    path.write_text("Mã cây,Tên cây,Kinh độ,Vĩ độ\n", encoding="utf-8")
    assert str(fails(db_url, path)) == "header.csv: has a header but no data rows"
    assert unchanged(conn, loaded)


def test_wrong_encoding_names_the_row(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    survey = make_survey(30)
    survey.loc[20, "Tên cây"] = "Sấu"
    path = tmp_path / "mixed.csv"
    good = survey.head(20).to_csv(index=False).encode()
    path.write_bytes(good + survey.iloc[20:].to_csv(index=False, header=False).encode("tcvn3"))
    error = fails(db_url, path, encoding="utf-8")
    assert error.row == 22 and "row 22, field 'Tên cây': not UTF-8 (looks like TCVN3)" in str(error)
    assert unchanged(conn, loaded)


def test_missing_columns(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    path = write_survey(make_survey(5).drop(columns=["Mã cây"]), tmp_path / "nocode.csv")
    error = fails(db_url, path)
    assert str(error).startswith("nocode.csv, row 1: no column for tree code: expected one of 'Mã cây'")
    path = write_survey(make_survey(5).drop(columns=["Kinh độ"]), tmp_path / "nolon.csv")
    assert "no coordinates" in str(fails(db_url, path))
    assert unchanged(conn, loaded)


def test_text_in_number_columns_is_refused_per_row(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    survey = make_survey(5).astype(object)
    survey.loc[1, "Chiều cao (m)"] = "cao"
    survey.loc[2, "Vĩ độ"] = "21°30'N"
    res = load_trees(db_url, [write_survey(survey, tmp_path / "s.csv")]).files[0]
    assert (res.inserted, res.refused) == (3, 2)
    text = res.rejects_path.read_text(encoding="utf-8-sig")
    assert "Chiều cao (m): 'cao' is not a number" in text
    assert "Vĩ độ: '21°30''N' is not a number" in text


def test_shapefile_without_prj(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    path = write_survey(make_survey(5, lang="en", crs="utm48"), tmp_path / "trees.shp", crs="utm48")
    path.with_suffix(".prj").unlink()
    error = fails(db_url, path)
    assert str(error).startswith("trees.shp: has no .prj file: its coordinate system is unknown")
    assert unchanged(conn, loaded)
    res = load_trees(db_url, [path], LoadOptions(crs="utm48")).files[0]   # the fix the message gives
    assert res.inserted == 5


def test_polygons_where_points_were_expected(db_url: str, conn: psycopg.Connection, tmp_path: Path, loaded: int) -> None:
    frame = gpd.GeoDataFrame({"tree_code": ["P-1"], "species": ["Acacia mangium"]},
                             geometry=[box(105.8, 21.6, 105.81, 21.61)], crs=4326)
    frame.to_file(tmp_path / "polys.geojson", driver="GeoJSON")
    error = fails(db_url, tmp_path / "polys.geojson")
    assert str(error) == ("polys.geojson, field 'geometry': the layer holds Polygon geometries: "
                          "trees need points")
    mixed = gpd.GeoDataFrame({"tree_code": ["P-1", "P-2"], "species": ["Acacia mangium"] * 2},
                             geometry=[Point(105.8, 21.6), box(105.8, 21.6, 105.81, 21.61)], crs=4326)
    mixed.to_file(tmp_path / "mixed.gpkg", driver="GPKG", geometry_type="Unknown")
    res = load_trees(db_url, [tmp_path / "mixed.gpkg"]).files[0]
    assert (res.inserted, res.refused) == (1, 1)
    assert "geometry: Polygon where a point was expected" in res.rejects_path.read_text(encoding="utf-8-sig")


def test_unknown_crs_name(db_url: str, tmp_path: Path) -> None:
    from etl.crs import CRSNameError

    path = write_survey(make_survey(2, crs="utm48"), tmp_path / "s.csv")
    with pytest.raises(CRSNameError, match="no VN-2000 3° zone with central meridian 999°"):
        load_trees(db_url, [path], LoadOptions(crs="vn2000-tm3-999"))
    with pytest.raises(CRSNameError, match="vn2000-tm3-106-30"):
        load_trees(db_url, [path], LoadOptions(crs="gauss-kruger"))
