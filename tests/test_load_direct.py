"""The one path: every survey read into Arrow, checked by rule, its rows written in one pass.

Each survey is loaded once. A clean one is written whole; one with refused rows is written
without them, and its rejects file names every problem of each, as expected here, written out
by hand (the wording is the one users have always had in their rejects files).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from etl import direct
from etl.mappings import PRESETS
from etl.trees import LoadOptions, LoadResult, load_trees
from smarttrees.database import connect
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.survey_writer import make_survey, write_survey

Edit = Callable[[pd.DataFrame], pd.DataFrame]


def stored(url: str) -> tuple[list[tuple], list[tuple]]:
    """Every tree (without clocks) and every history row (without id and clock)."""
    with connect(url) as conn:
        trees = conn.execute(
            "SELECT id, tree_code, category, species_id, dbh_cm, height_m, crown_m, condition, "
            "planted_on, commune_code, source, source_crs, stand_id, ST_AsEWKT(geom) "
            "FROM smarttrees.trees ORDER BY id").fetchall()
        history = conn.execute(
            "SELECT tree_id, tree_code, change, actor, source, changes FROM smarttrees.tree_history "
            "ORDER BY tree_id, id").fetchall()
    return trees, history


def counts(result: LoadResult) -> list[tuple[int, int, int, int, int]]:
    return [(f.rows, f.inserted, f.updated, f.unchanged, f.refused) for f in result.files]


def rejects(result: LoadResult, file: int = 0) -> list[tuple[str, str]]:
    """(row, reason) of each line of a file's rejects file."""
    path = result.files[file].rejects_path
    if path is None:
        return []
    with path.open(encoding="utf-8-sig") as handle:
        return [(r["row"], r["reason"]) for r in csv.DictReader(handle)]


def load(url: str, paths: list[Path], options: LoadOptions | None = None) -> LoadResult:
    return load_trees(url, paths, options or LoadOptions(actor="load:test"))


def survey(tmp_path: Path, edit: Edit | None = None, n: int = 60, **kwargs: object) -> Path:
    frame = make_survey(n).astype(object)
    return write_survey(edit(frame) if edit else frame, tmp_path / "survey.csv", **kwargs)


def put(row: int, column: str, value: object) -> Edit:
    """An edit setting one cell; ``row`` counts as the file does (header = 1)."""
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row - 2, column] = value
        return frame
    return edit


def test_a_clean_survey_is_written_whole_with_its_history(db_url: str, tmp_path: Path) -> None:
    first = load(db_url, [survey(tmp_path, n=500)])
    assert counts(first) == [(500, 500, 0, 0, 0)]
    trees, history = stored(db_url)
    assert [t[1] for t in trees] == [f"TN-{i:07d}" for i in range(1, 501)]
    assert len(history) == 500
    assert [h[2:5] for h in history[:1]] == [("insert", "load:test", "survey.csv")]


def test_history_and_refused_rows_bigger_than_their_memory_spill_to_files(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "HISTORY_IN_MEMORY", 4096)        # a few dozen rows

    def refuse_some(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[f.index % 7 == 0, "Tên cây"] = "Cây lạ"
        return f

    first = load(db_url, [survey(tmp_path, refuse_some, n=500)])
    assert counts(first) == [(500, 428, 0, 0, 72)]
    assert len(rejects(first)) == 72 and len(stored(db_url)[1]) == 428


REFUSED = {
    'text in a number column': (put(5, "Đường kính (cm)", "abc"),
        [('5', "Đường kính (cm): 'abc' is not a number")]),
    'NA in a number column': (put(5, "Chiều cao (m)", "NA"),
        [('5', "Chiều cao (m): 'NA' is not a number")]),
    'NaN written out': (put(6, "Đường kính tán (m)", "NaN"),
        [('6', "Đường kính tán (m): 'NaN' is not a number")]),
    'an infinite number': (put(6, "Đường kính (cm)", "inf"),
        [('6', "Đường kính (cm): 'inf' is not a number")]),
    'a diameter out of range': (put(7, "Đường kính (cm)", "900"),
        [('7', 'Đường kính (cm): 900.0 cm is outside the plausible range (0.0–500.0 cm)')]),
    'a zero height': (put(7, "Chiều cao (m)", "0"),
        [('7', 'Chiều cao (m): 0.0 m is outside the plausible range (0.0–120.0 m)')]),
    'an unknown species': (put(8, "Tên cây", "Keo la trm"),
        [('8', "Tên cây: 'Keo la trm' is not in the species catalogue; closest: Keo lá tràm (Acacia auriculiformis), Keo lai (Acacia mangium x Acacia auriculiformis), Keo tai tượng (Acacia mangium)")]),
    'a missing species': (put(8, "Tên cây", ""),
        [('8', 'Tên cây: missing')]),
    'an unknown condition': (put(9, "Tình trạng", "Tuyệt vời"),
        [('9', "Tình trạng: 'Tuyệt vời' is not a known condition (known: average, bad, binh thuong, chet, critical, da chat, da chat ha, da don, dead, dying, excellent, fair, felled, good, kem, kha, kho chet, khoe, moderate, nghieng do, poor, removed, sau benh, tot, trung binh, xau, yeu)")]),
    'an unknown category': (put(9, "Loại cây", "Cây cảnh"),
        [('9', "Loại cây: 'Cây cảnh' is not a known category (known: cay do thi, cay phan tan, cay xanh do thi, do thi, duong pho, park, phan tan, plantation, rung trong, rung trong tap trung, rural, scattered, street, trong phan tan, trong tap trung, urban)")]),
    'no such day': (put(10, "Ngày trồng", "31/02/2015"),
        [('10', "Ngày trồng: '31/02/2015' is not a date (YYYY-MM-DD or DD/MM/YYYY)")]),
    'a day in the future': (put(10, "Ngày trồng", "2099-01-01"),
        [('10', "Ngày trồng: '2099-01-01' 2099-01-01 is in the future")]),
    'a missing code': (put(11, "Mã cây", ""),
        [('11', 'Mã cây: missing')]),
    'a code of 65 characters': (put(11, "Mã cây", "X" * 65),
        [('11', 'Mã cây: longer than 64 characters')]),
    'a repeated code': (put(12, "Mã cây", "TN-0000001"),
        [('12', 'Mã cây: TN-0000001 already appears in row 2')]),
    'a missing longitude': (put(13, "Kinh độ", ""),
        [('13', 'Kinh độ/Vĩ độ: missing')]),
    'swapped coordinates': (lambda f: put(13, "Kinh độ", f.loc[11, "Vĩ độ"])(
        put(13, "Vĩ độ", f.loc[11, "Kinh độ"])(f)),
        [('13', 'Kinh độ/Vĩ độ: 21.500012, 105.701214 is outside the territory; longitude and latitude look swapped')]),
    'a point in Hanoi': (put(14, "Vĩ độ", 21.03),
        [('14', 'Kinh độ/Vĩ độ: 105.701308, 21.030000 is outside the territory')]),
    'an infinite X beside longitude/latitude': (lambda f: put(16, "X (m)", "inf")(
        f.assign(**{"X (m)": "1"})),
        [('16', "X (m): 'inf' is not a number")]),
    'two codes at one spot': (lambda f: put(15, "Kinh độ", f.loc[12, "Kinh độ"])(
        put(15, "Vĩ độ", f.loc[12, "Vĩ độ"])(f)),
        [('15', 'Kinh độ/Vĩ độ: same spot as tree TN-0000013 (row 14)')]),
}


@pytest.mark.parametrize(("edit", "expected"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_row_is_named_with_its_reason_and_the_others_are_written(
        db_url: str, tmp_path: Path, edit: Edit, expected: list[tuple[str, str]]) -> None:
    first = load(db_url, [survey(tmp_path, edit)])
    assert counts(first) == [(60, 59, 0, 0, 1)]
    assert rejects(first) == expected
    assert len(stored(db_url)[0]) == 59


def test_every_problem_of_a_row_is_named_in_the_order_of_the_rules(
        db_url: str, tmp_path: Path) -> None:
    def edit(f: pd.DataFrame) -> pd.DataFrame:
        f.loc[3, ["Mã cây", "Đường kính (cm)", "Chiều cao (m)", "Tên cây", "Kinh độ"]] = [
            "", "abc", "200", "Cây lạ", ""]
        f.loc[5, ["Ngày trồng", "Tình trạng"]] = ["2099-01-01", "Tuyệt vời"]
        return f

    first = load(db_url, [survey(tmp_path, edit)])
    assert counts(first) == [(60, 58, 0, 0, 2)]
    [(row5, five), (row7, seven)] = rejects(first)
    assert (row5, row7) == ("5", "7")
    assert five.split("; ")[:3] == ["Mã cây: missing", "Đường kính (cm): 'abc' is not a number",
                                    "Chiều cao (m): 200.0 m is outside the plausible range "
                                    "(0.0–120.0 m)"]
    assert five.split("; ")[3].startswith("Tên cây: 'Cây lạ' is not in the species catalogue")
    assert five.endswith("; Kinh độ/Vĩ độ: missing")
    assert seven.startswith("Tình trạng: 'Tuyệt vời' is not a known condition (known: ")
    assert seven.endswith("; Ngày trồng: '2099-01-01' 2099-01-01 is in the future")


@pytest.mark.parametrize("name", ["a repeated code", "two codes at one spot", "a point in Hanoi"])
def test_into_a_loaded_inventory_a_refused_row_is_named_the_same(
        db_url: str, tmp_path: Path, name: str) -> None:
    load(db_url, [write_survey(make_survey(30, start=100, seed=3), tmp_path / "base.csv")])
    edit, expected = REFUSED[name]
    first = load(db_url, [survey(tmp_path, edit)])
    assert counts(first) == [(60, 59, 0, 0, 1)]
    assert rejects(first) == expected


SPECIES = "(SELECT vietnamese_name FROM smarttrees.species s WHERE s.id = species_id)"
ACCEPTED = {      # the edit, then the tree it gives: its code, a stored value and what it holds
    "a decimal comma": (put(5, "Đường kính (cm)", "12,5"), "TN-0000004", "dbh_cm", 12.5),
    "cells padded with spaces": (lambda f: put(6, "Tên cây", "  Keo lá tràm ")(
        put(6, "Mã cây", " TN-X1 ")(f)), "TN-X1", SPECIES, "Keo lá tràm"),
    "a name without diacritics": (put(7, "Tên cây", "Keo la tram"), "TN-0000006", SPECIES,
                                  "Keo lá tràm"),
    "a synonym": (put(8, "Tên cây", "Acacia hybrid"), "TN-0000007", SPECIES, "Keo lai"),
    "an empty height": (put(9, "Chiều cao (m)", ""), "TN-0000008", "height_m", None),
    "a day written DD/MM/YYYY": (put(10, "Ngày trồng", "15/03/2015"), "TN-0000009",
                                 "planted_on::text", "2015-03-15"),
    "an exponent": (put(11, "Đường kính (cm)", "1.25e1"), "TN-0000010", "dbh_cm", 12.5),
    "an exponent as printf writes it": (put(11, "Kinh độ", "1.05700123e+002"), "TN-0000010",
                                        "round(ST_X(geom)::numeric, 8)::float8", 105.700123),
    "a quoted line break in the code": (put(12, "Mã cây", "TN\nX2"), "TN\nX2", "tree_code",
                                        "TN\nX2"),
}


@pytest.mark.parametrize(("edit", "code", "column", "value"), ACCEPTED.values(),
                         ids=ACCEPTED.keys())
def test_quirks_of_survey_sheets_are_read(db_url: str, tmp_path: Path, edit: Edit, code: str,
                                          column: str, value: object) -> None:
    first = load(db_url, [survey(tmp_path, edit)])
    assert counts(first) == [(60, 60, 0, 0, 0)]
    with connect(db_url) as conn:
        assert conn.execute(f"SELECT {column} FROM smarttrees.trees WHERE tree_code = %s",
                            (code,)).fetchone() == (value,)


def test_byte_order_mark_and_semicolons(db_url: str, tmp_path: Path) -> None:
    path = survey(tmp_path, encoding="utf-8-sig", delimiter=";")
    first = load(db_url, [path])
    assert first.files[0].inserted == 60


@pytest.mark.parametrize("delimiter", [";", ","])
def test_decimal_commas_are_read(db_url: str, tmp_path: Path,
                                                delimiter: str) -> None:
    frame = make_survey(300)
    numbers = ["Đường kính (cm)", "Chiều cao (m)", "Đường kính tán (m)", "Kinh độ", "Vĩ độ"]
    written = frame.assign(**{c: frame[c].map(lambda v: str(v).replace(".", ",")) for c in numbers})
    path = write_survey(written, tmp_path / "thap_phan.csv", delimiter=delimiter)
    first = load(db_url, [path])
    assert counts(first) == [(300, 300, 0, 0, 0)]
    with connect(db_url) as conn:
        dbh = dict(conn.execute("SELECT tree_code, dbh_cm FROM smarttrees.trees").fetchall())
    assert all(abs(dbh[code] - d) < 1e-4 for code, d in zip(frame["Mã cây"],
                                                              frame["Đường kính (cm)"], strict=True))


@pytest.mark.parametrize(("suffix", "crs"), [(".gpkg", "wgs84"), (".geojson", "wgs84"),
                                            (".gpkg", "vn2000-tm3-106-30"), (".fgb", "utm48")])
def test_gis_layers_of_points_are_read(db_url: str, tmp_path: Path,
                                                suffix: str, crs: str) -> None:
    frame = make_survey(200, crs=crs)
    path = write_survey(frame, tmp_path / f"survey{suffix}", crs=crs)
    first = load(db_url, [path])
    assert counts(first) == [(200, 200, 0, 0, 0)]


@pytest.mark.parametrize("crs", ["wgs84", "vn2000-utm48"])
def test_workbooks_are_read(db_url: str, tmp_path: Path,
                                     crs: str) -> None:
    frame = make_survey(150, crs=crs).astype(object)
    frame.loc[3, "Đường kính (cm)"] = "12,5"           # a number typed as text
    frame.loc[4, "Chiều cao (m)"] = None
    path = write_survey(frame, tmp_path / "survey.xlsx")
    options = LoadOptions(actor="load:test", crs=None if crs == "wgs84" else crs)
    first = load(db_url, [path], options)
    assert counts(first) == [(150, 150, 0, 0, 0)]


def test_a_gis_layer_with_a_bad_feature_is_reported(
        db_url: str, tmp_path: Path) -> None:
    frame = make_survey(50).astype(object)
    frame.loc[7, "Tên cây"] = "Cây lạ"
    path = write_survey(frame, tmp_path / "survey.gpkg")
    first = load(db_url, [path])
    assert counts(first) == [(50, 49, 0, 0, 1)]
    [(row, reason)] = rejects(first)
    assert row == "8" and reason.startswith("Tên cây: 'Cây lạ' is not in the species catalogue")


def test_english_form_with_a_mapping_of_fixed_values(
        db_url: str, tmp_path: Path) -> None:
    mapping = tmp_path / "contractor.toml"
    mapping.write_text((PRESETS / "en_survey.toml").read_text(encoding="utf-8")
                       + '\n[fixed]\ncategory = "plantation"\nsource = "contract 12/2026"\n',
                       encoding="utf-8")
    frame = make_survey(80, lang="en").drop(columns=["category"])
    path = write_survey(frame, tmp_path / "contract.csv")
    options = LoadOptions(mapping=mapping, actor="load:test")
    assert counts(load(db_url, [path], options)) == [(80, 80, 0, 0, 0)]
    with connect(db_url) as conn:
        assert conn.execute("SELECT DISTINCT category, source FROM smarttrees.trees").fetchall() \
            == [("plantation", "contract 12/2026")]


@pytest.mark.parametrize("crs", ["vn2000-thai-nguyen", "utm48", "vn2000-utm48"])
def test_projected_surveys_are_reprojected(
        db_url: str, tmp_path: Path, crs: str) -> None:
    frame = make_survey(60, crs=crs)
    # Surveyors' VN-2000 order, northing first, on some rows: both orders are read.
    swap = frame.index % 3 == 0
    frame.loc[swap, ["X (m)", "Y (m)"]] = frame.loc[swap, ["Y (m)", "X (m)"]].to_numpy()
    path = write_survey(frame, tmp_path / "survey.csv")
    first = load(db_url, [path], LoadOptions(crs=crs, actor="load:test"))
    assert first.files[0].inserted == 60


def test_a_point_in_the_wrong_zone_is_reported_with_its_hint(
        db_url: str, tmp_path: Path) -> None:
    frame = make_survey(30, crs="vn2000-utm48").astype(object)
    frame.loc[4, "X (m)"] = float(frame.loc[4, "X (m)"]) + 500_000      # row 6: far east
    path = write_survey(frame, tmp_path / "survey.csv")
    first = load(db_url, [path], LoadOptions(crs="vn2000-utm48", actor="load:test"))
    assert first.files[0].refused == 1
    [(row, reason)] = rejects(first)
    assert row == "6" and reason.startswith("X (m)/Y (m): ")
    assert reason.endswith(" is outside the territory")      # no zone holds it either


def test_two_files_repeating_a_code_are_checked_together(
        db_url: str, tmp_path: Path) -> None:
    a = write_survey(make_survey(40), tmp_path / "a.csv")
    b = write_survey(make_survey(40, start=40, seed=2), tmp_path / "b.csv")   # TN-0000040 twice
    first = load(db_url, [a, b])
    assert [f.refused for f in first.files] == [0, 1]
    assert rejects(first, 1) == [("2", "Mã cây: TN-0000040 already appears in a.csv row 41")]


def test_trees_get_the_first_commune_they_touch(db_url: str,
                                                tmp_path: Path) -> None:
    # Two square communes sharing the meridian 105.703: a point on it touches both.
    with connect(db_url) as conn:
        conn.execute(
            "INSERT INTO smarttrees.admin_units (level, code, name, valid_from, geom) "
            "SELECT 'commune', code, 'Xã ' || code, '2025-07-01', ST_Multi(ST_MakeEnvelope("
            "x0, 21.49, x0 + 0.003, 21.51, 4326)) "
            "FROM (VALUES ('00002', 105.700), ('00001', 105.703)) v(code, x0)")
    path = survey(tmp_path, lambda f: put(3, "Kinh độ", 105.703)(put(4, "Vĩ độ", 21.6)(f)), n=40)
    load(db_url, [path])
    with connect(db_url) as conn:
        got = dict(conn.execute("SELECT tree_code, commune_code FROM smarttrees.trees").fetchall())
    assert got["TN-0000002"] == "00001"                 # on the shared edge: the first code
    assert got["TN-0000003"] is None                    # in the province, in neither commune
    assert set(got.values()) == {"00001", "00002", None}


def test_into_a_loaded_inventory_new_changed_and_same_rows_are_merged(
        db_url: str, tmp_path: Path) -> None:
    base = write_survey(make_survey(60), tmp_path / "base.csv")
    load(db_url, [base])
    frame = make_survey(60).astype(object).iloc[30:]                 # TN-0000031 … 60, same
    frame.loc[35, "Chiều cao (m)"] = 31.5                             # TN-0000036 changed
    more = make_survey(20, start=61)                                  # TN-0000061 … 80, new
    path = write_survey(pd.concat([frame, more]), tmp_path / "again.csv")
    first = load(db_url, [path])
    assert counts(first) == [(50, 20, 1, 29, 0)]


def test_a_new_code_at_a_spot_taken_in_the_inventory_is_reported(
        db_url: str, tmp_path: Path) -> None:
    base = write_survey(make_survey(30), tmp_path / "base.csv")
    load(db_url, [base])
    frame = make_survey(10, start=31).astype(object)
    frame.loc[4, ["Kinh độ", "Vĩ độ"]] = make_survey(30).loc[7, ["Kinh độ", "Vĩ độ"]].to_numpy()
    first = load(db_url, [write_survey(frame, tmp_path / "new.csv")])
    assert counts(first) == [(10, 9, 0, 0, 1)]
    assert rejects(first) == [("6", "Kinh độ/Vĩ độ: same spot as tree TN-0000008 already in "
                                    "the database")]


@pytest.mark.parametrize("indexes_after_commit", [False, True])
def test_the_schema_is_whole_after_a_load_into_an_empty_inventory(
        db_url: str, conn: psycopg.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        indexes_after_commit: bool) -> None:
    # 200 trees are rebuilt in the load's transaction; from DEFERRED_FROM, after its commit.
    monkeypatch.setattr(direct, "DEFERRED_FROM", 100 if indexes_after_commit else 50_000)
    shape = """
        SELECT (SELECT array_agg(indexdef ORDER BY indexdef) FROM pg_indexes
                WHERE schemaname = 'smarttrees' AND tablename IN ('trees', 'tree_history')),
               (SELECT array_agg(pg_get_constraintdef(oid) ORDER BY conname) FROM pg_constraint
                WHERE conrelid IN ('smarttrees.trees'::regclass,
                                   'smarttrees.tree_history'::regclass)),
               (SELECT array_agg(tgname || tgenabled::text ORDER BY tgname) FROM pg_trigger
                WHERE tgrelid = 'smarttrees.trees'::regclass AND NOT tgisinternal)"""
    before = conn.execute(shape).fetchone()
    conn.commit()
    assert load_trees(db_url, [survey(tmp_path, n=200)]).files[0].inserted == 200
    assert conn.execute(shape).fetchone() == before
    # The count kept for numberMatched is the trees' (its insert trigger was off for the COPY).
    assert conn.execute("SELECT n FROM smarttrees.row_counts WHERE table_name = 'trees'"
                        ).fetchone() == conn.execute("SELECT count(*) FROM smarttrees.trees"
                                                     ).fetchone() == (200,)
    # The identity carries on after the ids the load gave, and the trigger writes history.
    conn.execute("INSERT INTO smarttrees.trees (tree_code, category, geom) "
                 "VALUES ('NEW-1', 'urban', ST_SetSRID(ST_MakePoint(105.9, 21.6), 4326))")
    new = conn.execute("SELECT t.id, h.change FROM smarttrees.trees t "
                       "JOIN smarttrees.tree_history h ON h.tree_id = t.id "
                       "WHERE t.tree_code = 'NEW-1'").fetchone()
    assert new == (conn.execute("SELECT max(id) FROM smarttrees.trees").fetchone()[0], "insert")
    assert new[0] > 200
    # The territory is held again by the database for other writers.
    with pytest.raises(psycopg.errors.CheckViolation, match="outside the territory"):
        conn.execute("INSERT INTO smarttrees.trees (tree_code, category, geom) "
                     "VALUES ('FAR-1', 'urban', ST_SetSRID(ST_MakePoint(0, 0), 4326))")


def test_an_insert_trigger_switched_off_by_hand_stays_off_after_a_first_load(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    # The load drops the insert triggers for its COPY and makes them again before its commit.
    conn.execute("ALTER TABLE smarttrees.trees DISABLE TRIGGER trees_in_territory_insert")
    conn.commit()
    assert load(db_url, [survey(tmp_path)]).files[0].inserted == 60
    assert conn.execute("SELECT tgname, tgenabled::text FROM pg_trigger WHERE tgname IN "
                        "('trees_in_territory_insert', 'trees_history_insert') ORDER BY 1"
                        ).fetchall() == [("trees_history_insert", "O"),
                                         ("trees_in_territory_insert", "D")]


def test_a_dry_run_of_a_clean_survey_writes_nothing(db_url: str, conn: psycopg.Connection,
                                                    tmp_path: Path) -> None:
    result = load_trees(db_url, [survey(tmp_path)], LoadOptions(dry_run=True))
    assert counts(result) == [(60, 60, 0, 0, 0)] and not result.written
    assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone() == (0,)


def test_progress_counts_the_file_then_names_the_index_build(db_url: str, tmp_path: Path) -> None:
    path = survey(tmp_path, n=300)
    seen: list[tuple[str, int, int]] = []
    load_trees(db_url, [path], progress=lambda phase, done, total: seen.append((phase, done, total)))
    loading = [s for s in seen if s[0] == "loading survey.csv"]
    assert loading and loading[-1][1:] == (path.stat().st_size, path.stat().st_size)
    assert seen[-1][0] == "building keys and indexes"


INDEXES = """
    SELECT array_agg(indexrelid::regclass::text ORDER BY indexrelid::regclass::text)
    FROM pg_index WHERE indrelid IN ('smarttrees.trees'::regclass,
                                     'smarttrees.tree_history'::regclass) AND indisvalid"""
DEFERRED = "SELECT count(*) FROM smarttrees.deferred_indexes"


def leave_unbuilt(conn: psycopg.Connection, index: str) -> None:
    """What a first load killed after its commit leaves: an index of trees not built, recorded."""
    definition = conn.execute("SELECT pg_get_indexdef(%s::regclass)",
                              (f"smarttrees.{index}",)).fetchone()[0]
    conn.execute(sql.SQL("DROP INDEX smarttrees.{}").format(sql.Identifier(index)))
    conn.execute("INSERT INTO smarttrees.deferred_indexes (definition, table_name) "
                 "VALUES (%s, 'smarttrees.trees')", (definition,))
    conn.commit()


def test_indexes_a_first_load_left_unbuilt_are_built_by_the_next_load(
        db_url: str, conn: psycopg.Connection, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "DEFERRED_FROM", 100)     # built after the commit
    whole = conn.execute(INDEXES).fetchone()
    conn.commit()
    load(db_url, [survey(tmp_path, n=100)])
    assert conn.execute(INDEXES).fetchone() == whole and conn.execute(DEFERRED).fetchone() == (0,)
    leave_unbuilt(conn, "trees_geom_idx")
    assert load(db_url, [survey(tmp_path, n=100)]).files[0].unchanged == 100
    assert conn.execute(INDEXES).fetchone() == whole and conn.execute(DEFERRED).fetchone() == (0,)


def test_db_upgrade_builds_the_indexes_a_killed_first_load_left(
        db_url: str, conn: psycopg.Connection) -> None:
    whole = conn.execute(INDEXES).fetchone()
    leave_unbuilt(conn, "trees_species_idx")
    out = run_cli("db", "upgrade", env=cli_env(SMARTTREES_DATABASE_URL=db_url))
    assert out.code == 0, out.stderr
    assert "indexes a first load left unbuilt: 1 built" in out.stdout
    assert conn.execute(INDEXES).fetchone() == whole and conn.execute(DEFERRED).fetchone() == (0,)


def test_a_first_load_refused_whole_leaves_every_index_and_no_record(
        db_url: str, conn: psycopg.Connection, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct, "DEFERRED_FROM", 10)      # would be built after the commit
    whole = conn.execute(INDEXES).fetchone()
    conn.commit()
    result = load(db_url, [survey(tmp_path, put(3, "Đường kính (cm)", "abc"))],
                  LoadOptions(actor="load:test", strict=True))
    assert not result.written
    assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone() == (0,)
    assert conn.execute(INDEXES).fetchone() == whole and conn.execute(DEFERRED).fetchone() == (0,)


@pytest.mark.parametrize("read", ["with fastexcel", "cell by cell"])
def test_a_workbooks_rejects_name_the_sheets_own_rows(db_url: str, tmp_path: Path,
                                                      read: str) -> None:
    # The header on row 3 (two blank rows above it), an empty row among the data: a surveyor
    # looks for a reject on the row Excel shows.
    import openpyxl

    frame = make_survey(6).astype(object)
    frame.loc[4, "Đường kính (cm)"] = "abc"                 # data row 5: sheet row 3 + 1 + 5
    if read == "cell by cell":
        frame.loc[0, "Chiều cao (m)"] = "7,7"               # text among numbers: not fastexcel's
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.cell(row=1, column=3, value=None)
    for c, name in enumerate(frame.columns, start=1):
        sheet.cell(row=3, column=c, value=name)
    at = 4
    for i, record in enumerate(frame.itertuples(index=False)):
        if i == 2:
            at += 1                                         # sheet row 6 left empty
        for c, value in enumerate(record, start=1):
            sheet.cell(row=at, column=c, value=value)
        at += 1
    path = tmp_path / "survey.xlsx"
    book.save(path)
    result = load(db_url, [path])
    assert counts(result) == [(6, 5, 0, 0, 1)]
    [(row, reason)] = rejects(result)
    assert row == "9", (row, reason)
    assert reason.startswith("Đường kính (cm): "), reason
