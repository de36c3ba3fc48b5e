"""Tree survey loads through the Python API: exact counts, exact rejects, history, atomicity."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from etl.trees import LoadOptions, load_trees
from tests.fixtures.survey_writer import make_survey, write_survey


def rejects(path: Path) -> dict[int, str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return {int(r["row"]): r["reason"] for r in csv.DictReader(handle)}


def count(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM smarttrees.{table}").fetchone()[0]


def messy_survey() -> pd.DataFrame:
    """200 Vietnamese rows with one known problem (or quirk) each on rows 5..17 of the file."""
    f = make_survey(200).astype(object)
    f.loc[3, "Đường kính (cm)"] = "abc"                               # row 5
    f.loc[5, "Tên cây"] = "Keo la tram"                               # row 7: no diacritics, fine
    f.loc[6, "Tên cây"] = "Keo la trm"                                # row 8: unknown
    f.loc[7, ["Kinh độ", "Vĩ độ"]] = [f.loc[7, "Vĩ độ"], f.loc[7, "Kinh độ"]]   # row 9: swapped
    f.loc[9, "Mã cây"] = f.loc[8, "Mã cây"]                           # row 11 repeats row 10
    f.loc[10, "Tình trạng"] = "Tuyệt vời"                             # row 12: unknown condition
    f.loc[11, "Đường kính (cm)"] = "900"                              # row 13: implausible
    f.loc[12, "Tên cây"] = "Acacia hybrid"                            # row 14: synonym, fine
    f.loc[13, "Ngày trồng"] = "31/02/2015"                            # row 15: no such day
    f.loc[15, ["Kinh độ", "Vĩ độ"]] = f.loc[14, ["Kinh độ", "Vĩ độ"]].to_numpy()  # row 17 = row 16 spot
    f.loc[16, "Đường kính (cm)"] = "12,5"                             # row 18: decimal comma, fine
    f.loc[17, "Mã cây"] = ""                                          # row 19: no code
    return f


def test_vietnamese_survey_exact_counts_and_rejects(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_survey(messy_survey(), tmp_path / "khao_sat.csv")
    result = load_trees(db_url, [path])
    f = result.files[0]
    assert (f.rows, f.inserted, f.updated, f.unchanged, f.refused) == (200, 191, 0, 0, 9)
    got = rejects(f.rejects_path)
    assert sorted(got) == [5, 8, 9, 11, 12, 13, 15, 17, 19]
    assert got[5] == "Đường kính (cm): 'abc' is not a number"
    assert got[8].startswith("Tên cây: 'Keo la trm' is not in the species catalogue; closest: Keo lá tràm")
    assert got[9].endswith("is outside the territory; longitude and latitude look swapped")
    assert got[9].startswith("Kinh độ/Vĩ độ: ")
    assert got[11] == "Mã cây: TN-0000009 already appears in row 10"
    assert got[12].startswith("Tình trạng: 'Tuyệt vời' is not a known condition")
    assert got[13] == "Đường kính (cm): 900.0 cm is outside the plausible range (0.0–500.0 cm)"
    assert got[15].startswith("Ngày trồng: '31/02/2015' is not a date")
    assert got[17] == "Kinh độ/Vĩ độ: same spot as tree TN-0000015 (row 16)"
    assert got[19] == "Mã cây: missing"
    species = dict(conn.execute(
        "SELECT t.tree_code, s.scientific_name FROM smarttrees.trees t JOIN smarttrees.species s "
        "ON s.id = t.species_id WHERE t.tree_code IN ('TN-0000006', 'TN-0000013')").fetchall())
    assert species == {"TN-0000006": "Acacia auriculiformis",
                       "TN-0000013": "Acacia mangium x Acacia auriculiformis"}
    assert conn.execute("SELECT dbh_cm FROM smarttrees.trees WHERE tree_code = 'TN-0000017'").fetchone() == (12.5,)
    history = conn.execute("SELECT change, source, actor, count(*) FROM smarttrees.tree_history "
                           "GROUP BY 1, 2, 3").fetchall()
    assert len(history) == 1 and history[0][0] == "insert" and history[0][1] == "khao_sat.csv"
    assert history[0][2].startswith("load:") and history[0][3] == 191


def test_second_load_changes_nothing_and_changed_rows_update_with_history(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    survey = make_survey(50)
    first = write_survey(survey, tmp_path / "survey.csv")
    assert load_trees(db_url, [first]).files[0].inserted == 50
    before = conn.execute("SELECT xmin::text, updated_at FROM smarttrees.trees ORDER BY id").fetchall()
    again = load_trees(db_url, [first]).files[0]
    assert (again.inserted, again.updated, again.unchanged, again.refused) == (0, 0, 50, 0)
    conn.commit()
    assert conn.execute("SELECT xmin::text, updated_at FROM smarttrees.trees ORDER BY id").fetchall() == before
    assert count(conn, "tree_history") == 50

    changed = survey.astype(object)
    changed.loc[4, "Đường kính (cm)"] = 77.7
    changed.loc[9, "Tình trạng"] = "Kém" if survey.loc[9, "Tình trạng"] != "Kém" else "Tốt"
    resurvey = write_survey(changed, tmp_path / "resurvey_2026.csv")
    res = load_trees(db_url, [resurvey]).files[0]
    assert (res.inserted, res.updated, res.unchanged, res.refused) == (0, 2, 48, 0)
    conn.commit()
    rows = conn.execute("SELECT tree_code, source, changes FROM smarttrees.tree_history "
                        "WHERE change = 'update' ORDER BY tree_code").fetchall()
    assert rows[0][0] == "TN-0000005" and rows[0][1] == "resurvey_2026.csv"
    assert rows[0][2]["dbh_cm"] == {"old": float(survey.loc[4, "Đường kính (cm)"]), "new": 77.7}


def test_a_rerun_is_known_unchanged_until_a_tree_changes(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_survey(make_survey(30), tmp_path / "survey.csv")
    load_trees(db_url, [path])
    assert load_trees(db_url, [path]).files[0].unchanged == 30
    assert conn.execute("SELECT skipped FROM smarttrees.load_runs ORDER BY id").fetchall() == [(False,), (True,)]
    # Someone edits a tree: the same file must now put it back, row checks and all.
    conn.execute("UPDATE smarttrees.trees SET dbh_cm = 1 WHERE tree_code = 'TN-0000003'")
    conn.commit()
    res = load_trees(db_url, [path]).files[0]
    assert (res.inserted, res.updated, res.unchanged) == (0, 1, 29)
    conn.commit()
    assert conn.execute("SELECT skipped FROM smarttrees.load_runs ORDER BY id DESC LIMIT 1").fetchone() == (False,)
    # TRUNCATE leaves no history behind; the loader still notices the trees are gone.
    conn.execute("TRUNCATE smarttrees.trees")
    conn.commit()
    assert load_trees(db_url, [path]).files[0].inserted == 30


def test_source_name_and_actor_are_recorded(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_survey(make_survey(3), tmp_path / "upload_7f3a.csv")
    load_trees(db_url, [path], LoadOptions(source_name="Phiếu điều tra phường Quang Trung 2026",
                                           actor="nguyen.van.a"))
    assert conn.execute("SELECT DISTINCT source, actor FROM smarttrees.tree_history").fetchall() == [
        ("Phiếu điều tra phường Quang Trung 2026", "nguyen.van.a")]


def test_new_code_at_an_occupied_spot_is_refused(db_url: str, tmp_path: Path) -> None:
    load_trees(db_url, [write_survey(make_survey(10), tmp_path / "a.csv")])
    moved = make_survey(10, prefix="HN")  # same positions, other codes
    res = load_trees(db_url, [write_survey(moved.head(2), tmp_path / "b.csv")]).files[0]
    assert res.refused == 2
    assert rejects(res.rejects_path)[2] == "Kinh độ/Vĩ độ: same spot as tree TN-0000001 already in the database"


def test_dry_run_writes_nothing(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_survey(messy_survey(), tmp_path / "s.csv")
    result = load_trees(db_url, [path], LoadOptions(dry_run=True))
    assert not result.written
    assert (result.total("inserted"), result.total("refused")) == (191, 9)
    assert count(conn, "trees") == 0 and count(conn, "tree_history") == 0
    assert len(rejects(result.files[0].rejects_path)) == 9


def test_strict_refuses_the_whole_file(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    path = write_survey(messy_survey(), tmp_path / "s.csv")
    result = load_trees(db_url, [path], LoadOptions(strict=True, rejects=tmp_path / "out" / "bad.csv"))
    assert not result.written
    assert result.total("inserted") == 0 and result.total("refused") == 9
    assert count(conn, "trees") == 0
    assert len(rejects(tmp_path / "out" / "bad.csv")) == 9


def test_a_failure_midway_leaves_the_database_as_it_was(db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    survey = make_survey(40)
    load_trees(db_url, [write_survey(survey.head(20), tmp_path / "first.csv")])
    # A rule the loader does not know about fails the write after part of it is done.
    conn.execute("ALTER TABLE smarttrees.trees ADD CONSTRAINT no_35 CHECK (tree_code <> 'TN-0000035')")
    conn.commit()
    changed = survey.astype(object)
    changed.loc[0, "Đường kính (cm)"] = 55.5      # an update that would go through alone
    with pytest.raises(psycopg.errors.CheckViolation):
        load_trees(db_url, [write_survey(changed, tmp_path / "second.csv")])
    assert count(conn, "trees") == 20 and count(conn, "tree_history") == 20
    assert conn.execute("SELECT dbh_cm FROM smarttrees.trees WHERE tree_code = 'TN-0000001'").fetchone() != (55.5,)


def test_several_files_in_one_run_see_each_others_duplicates(db_url: str, tmp_path: Path) -> None:
    a = write_survey(make_survey(5), tmp_path / "a.csv")
    b = write_survey(make_survey(5, start=5, seed=2), tmp_path / "b.csv")   # TN-0000005 again
    result = load_trees(db_url, [a, b], LoadOptions(rejects=tmp_path / "rejects"))
    assert [(f.inserted, f.refused) for f in result.files] == [(5, 0), (4, 1)]
    assert rejects(tmp_path / "rejects" / "b.rejects.csv") == {2: "Mã cây: TN-0000005 already appears in a.csv row 6"}
