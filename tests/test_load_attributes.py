"""Columns the mapping does not know are kept per tree, keyed by the file's own header."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import psycopg
import pytest

from etl.trees import LoadOptions, load_trees
from tests.fixtures.server import serve_database
from tests.fixtures.survey_writer import make_survey, write_survey

NOTES = ["gần trụ điện", "", 'nghiêng "nhẹ"', "rễ nổi\\lề", "  "]


def attributes(conn: psycopg.Connection) -> dict[str, object]:
    conn.commit()
    return dict(conn.execute("SELECT tree_code, attributes FROM smarttrees.trees").fetchall())


def survey_with_extras(n: int = 30):
    frame = make_survey(n).astype(object)
    frame["Ghi chú"] = [NOTES[i % len(NOTES)] for i in range(n)]
    frame["Tuyến đường"] = [f"Đường {i % 3}" for i in range(n)]
    frame["Số điện thoại"] = ["0912345678"] * n
    return frame


def expected(frame, headers: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for _, row in frame.iterrows():
        kept = {h: str(row[h]).strip(" ") for h in headers if str(row[h]).strip(" ")}
        out[row["Mã cây"]] = kept or None
    return out


@pytest.mark.parametrize(("suffix", "encoding"), [
    (".csv", "utf-8"), (".xlsx", "utf-8"), (".csv", "vni")])
def test_unknown_columns_are_kept_and_a_mapping_can_exclude_one(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, suffix: str, encoding: str) -> None:
    mapping = tmp_path / "mine.toml"
    preset = (Path(__file__).parents[1] / "data" / "mappings" / "vi_field_survey.toml").read_text(
        encoding="utf-8")
    mapping.write_text('exclude = ["tuyen duong"]\n' + preset, encoding="utf-8")
    frame = survey_with_extras()
    path = write_survey(frame, tmp_path / f"survey{suffix}", encoding=encoding)
    result = load_trees(db_url, [path], LoadOptions(mapping=mapping))
    assert result.files[0].inserted == 30
    assert attributes(conn) == expected(frame, ("Ghi chú",))


def test_columns_naming_personal_data_are_never_kept(db_url: str, conn: psycopg.Connection,
                                                      tmp_path: Path) -> None:
    frame = survey_with_extras(5)
    frame["Người khảo sát"] = "Nguyễn Văn A"
    frame["CCCD"] = "001234567890"
    frame["Loại đất"] = "đất đỏ"
    load_trees(db_url, [write_survey(frame, tmp_path / "survey.csv")])
    stored = attributes(conn)
    assert {key for value in stored.values() for key in value} == {"Ghi chú", "Tuyến đường",
                                                                   "Loại đất"}


def test_a_changed_attribute_is_an_update_with_history(db_url: str, conn: psycopg.Connection,
                                                       tmp_path: Path) -> None:
    frame = survey_with_extras(20)
    load_trees(db_url, [write_survey(frame, tmp_path / "survey.csv")])
    frame.loc[2, "Tuyến đường"] = "Đường Quang Trung"
    result = load_trees(db_url, [write_survey(frame, tmp_path / "resurvey.csv")])
    f = result.files[0]
    assert (f.inserted, f.updated, f.unchanged) == (0, 1, 19)
    changes = conn.execute("SELECT tree_code, changes FROM smarttrees.tree_history "
                           "WHERE change = 'update'").fetchall()
    assert len(changes) == 1 and changes[0][0] == frame.loc[2, "Mã cây"]
    assert changes[0][1]["attributes"]["new"]["Tuyến đường"] == "Đường Quang Trung"
    assert changes[0][1]["attributes"]["old"]["Tuyến đường"] == "Đường 2"


def test_attributes_are_shown_in_items_and_filtered_in_cql2(db_url: str, tmp_path: Path) -> None:
    frame = survey_with_extras(12)
    load_trees(db_url, [write_survey(frame, tmp_path / "survey.csv")])
    road_1 = set(frame.loc[frame["Tuyến đường"] == "Đường 1", "Mã cây"])
    with serve_database(db_url) as base:
        def features(**params: str) -> list[dict]:
            r = httpx.get(f"{base}/collections/trees/items", params={"limit": "100", **params})
            assert r.status_code == 200, r.text
            return r.json()["features"]

        by_code = {f["properties"]["tree_code"]: f["properties"] for f in features()}
        for code, kept in expected(frame, ("Ghi chú", "Tuyến đường")).items():
            assert by_code[code]["attributes"] == kept
        text = features(filter="\"attributes.Tuyến đường\" = 'Đường 1'")
        assert {f["properties"]["tree_code"] for f in text} == road_1
        as_json = features(**{"filter-lang": "cql2-json", "filter": json.dumps(
            {"op": "=", "args": [{"property": "attributes.Tuyến đường"}, "Đường 1"]})})
        assert {f["properties"]["tree_code"] for f in as_json} == road_1
        bare = httpx.get(f"{base}/collections/trees/items",
                         params={"filter": "attributes = 'Đường 1'"})
        assert bare.status_code == 400 and "attributes is an object" in bare.text
