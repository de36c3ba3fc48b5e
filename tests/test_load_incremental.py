"""Incremental reloads: a resubmitted survey's unchanged rows are known by their digest.

Only the changed and new rows are checked, staged and written (with history); unchanged trees
keep their row version. A tree changed since by anything but a load is checked again.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import psycopg
import pytest

from etl import merge
from etl.trees import LoadOptions, load_trees
from tests.fixtures.survey_writer import make_survey, write_survey


def versions(conn: psycopg.Connection) -> dict[str, str]:
    conn.commit()
    return dict(conn.execute("SELECT tree_code, xmin::text FROM smarttrees.trees").fetchall())


def history(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute("SELECT tree_code, change FROM smarttrees.tree_history "
                        "WHERE change <> 'insert' ORDER BY id").fetchall()


def counts(result: object) -> tuple[int, ...]:
    f = result.files[0]  # type: ignore[attr-defined]
    return f.inserted, f.updated, f.unchanged, f.refused, f.skipped


def resurvey(survey: pd.DataFrame) -> pd.DataFrame:
    """Three trees measured again, two new trees."""
    changed = survey.astype(object)
    for i in (3, 50, 111):
        changed.loc[i, "Đường kính (cm)"] = float(survey.loc[i, "Đường kính (cm)"]) + 1.5
    new = make_survey(2, start=9001)
    return pd.concat([changed, new], ignore_index=True)


def test_only_changed_and_new_rows_are_written(db_url: str, conn: psycopg.Connection,
                                               tmp_path: Path) -> None:
    survey = make_survey(200)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    before = versions(conn)
    result = load_trees(db_url, [write_survey(resurvey(survey), tmp_path / "resurvey.csv")])
    assert counts(result) == (2, 3, 197, 0, 197)
    after = versions(conn)
    moved = {code for code in before if after[code] != before[code]}
    assert moved == {survey.loc[i, "Mã cây"] for i in (3, 50, 111)}
    assert sorted(history(conn)) == sorted((survey.loc[i, "Mã cây"], "update") for i in (3, 50, 111))
    dbh = conn.execute("SELECT dbh_cm FROM smarttrees.trees WHERE tree_code = %s",
                       (survey.loc[50, "Mã cây"],)).fetchone()
    assert dbh is not None and abs(dbh[0] - (survey.loc[50, "Đường kính (cm)"] + 1.5)) < 1e-4


def test_a_changed_tree_stays_on_its_page(db_url: str, conn: psycopg.Connection,
                                         tmp_path: Path) -> None:
    # Room left in each page (migration 0032): the new version of a changed tree goes beside
    # the old one, so the indexes keep their entries (a HOT update) rather than take new ones.
    survey = make_survey(200)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    page = ("SELECT tree_code, (ctid::text::point)[0] FROM smarttrees.trees "
            "WHERE tree_code = ANY(%s)")
    codes = [survey.loc[i, "Mã cây"] for i in (3, 50, 111)]
    conn.commit()
    before = dict(conn.execute(page, (codes,)).fetchall())
    load_trees(db_url, [write_survey(resurvey(survey), tmp_path / "resurvey.csv")])
    conn.commit()
    assert dict(conn.execute(page, (codes,)).fetchall()) == before
    assert len(set(before.values())) == 3          # three pages, each full but for its room


def test_a_tree_edited_since_is_checked_and_set_back(db_url: str, conn: psycopg.Connection,
                                                     tmp_path: Path) -> None:
    survey = make_survey(60)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    code = survey.loc[7, "Mã cây"]
    conn.execute("UPDATE smarttrees.trees SET dbh_cm = 1 WHERE tree_code = %s", (code,))
    conn.commit()
    changed = survey.astype(object)
    changed.loc[20, "Chiều cao (m)"] = 29.9
    result = load_trees(db_url, [write_survey(changed, tmp_path / "resurvey.csv")])
    assert counts(result) == (0, 2, 58, 0, 58)
    dbh = conn.execute("SELECT dbh_cm FROM smarttrees.trees WHERE tree_code = %s", (code,)).fetchone()
    assert dbh is not None and abs(dbh[0] - survey.loc[7, "Đường kính (cm)"]) < 1e-4


def test_a_code_repeated_beside_an_unchanged_row_is_refused(db_url: str, conn: psycopg.Connection,
                                                            tmp_path: Path) -> None:
    survey = make_survey(40)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    twin = survey.iloc[[5]].assign(**{"Kinh độ": survey.loc[39, "Kinh độ"] + 0.001})
    result = load_trees(db_url, [write_survey(pd.concat([survey, twin], ignore_index=True),
                                              tmp_path / "twice.csv")])
    f = result.files[0]
    assert (f.inserted, f.updated, f.unchanged, f.refused) == (0, 0, 40, 1)
    reasons = f.rejects_path.read_text(encoding="utf-8-sig")
    assert f"{survey.loc[5, 'Mã cây']} already appears in row 7" in reasons
    assert history(conn) == []


def test_same_trees_written_differently_are_unchanged_then_known(
        db_url: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    survey = make_survey(80)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    before = versions(conn)
    reordered = survey[list(reversed(survey.columns))]      # other headers: other digests
    first = load_trees(db_url, [write_survey(reordered, tmp_path / "reordered.csv")])
    assert counts(first) == (0, 0, 80, 0, 0)
    assert history(conn) == []
    changed = reordered.astype(object)
    changed.loc[0, "Chiều cao (m)"] = 28.5
    again = load_trees(db_url, [write_survey(changed, tmp_path / "reordered_2.csv")])
    assert counts(again) == (0, 1, 79, 0, 79)
    assert history(conn) == [(survey.loc[0, "Mã cây"], "update")]
    assert len(versions(conn)) == len(before)


def test_the_loader_writes_the_history_the_update_trigger_would(
        db_url: str, conn: psycopg.Connection, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    survey = make_survey(20).astype(object)
    survey["Ghi chú"] = "gốc to"
    survey.loc[9, "Đường kính tán (m)"] = None
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    changed = survey.copy()
    changed.loc[1, "Đường kính (cm)"] = float(survey.loc[1, "Đường kính (cm)"]) + 1.5
    changed.loc[2, "Chiều cao (m)"] = None
    changed.loc[3, "Tên cây"] = "Gạo" if survey.loc[3, "Tên cây"] != "Gạo" else "Vải"
    changed.loc[4, "Loại cây"] = "Cây phân tán" if survey.loc[4, "Loại cây"] != "Cây phân tán" \
        else "Rừng trồng"
    changed.loc[5, "Tình trạng"] = "Kém"
    changed.loc[6, "Ngày trồng"] = "2011-02-03"
    changed.loc[7, "Kinh độ"] = float(survey.loc[7, "Kinh độ"]) + 0.0001
    changed.loc[8, "Ghi chú"] = "bị sâu"
    changed.loc[9, "Đường kính tán (m)"] = 4.5
    codes = {survey.loc[i, "Mã cây"] for i in range(1, 10)}
    # With the trigger not told, it records every change too: its rows beside the loader's.
    monkeypatch.setattr(merge, "_HISTORY_BY_LOADER", "SELECT 1")
    result = load_trees(db_url, [write_survey(changed, tmp_path / "resurvey.csv")],
                        LoadOptions(actor="load:test"))
    assert result.files[0].updated == 9
    rows = conn.execute("SELECT tree_code, actor, source, changes FROM smarttrees.tree_history "
                        "WHERE change = 'update' ORDER BY tree_code, id").fetchall()
    by_tree: dict[str, list[tuple]] = {}
    for code, *rest in rows:
        by_tree.setdefault(code, []).append(tuple(rest))
    assert set(by_tree) == codes
    assert all(len(pair) == 2 and pair[0] == pair[1] for pair in by_tree.values()), by_tree
    one = by_tree[survey.loc[1, "Mã cây"]][0]
    assert one[0] == "load:test" and one[1] == "resurvey.csv"
    assert set(one[2]) == {"dbh_cm", "source"}
    assert set(by_tree[survey.loc[7, "Mã cây"]][0][2]) >= {"lon", "source"}
    assert by_tree[survey.loc[9, "Mã cây"]][0][2]["crown_m"] == {"old": None, "new": 4.5}


def test_a_merge_records_the_trees_it_leaves(db_url: str, conn: psycopg.Connection,
                                             tmp_path: Path) -> None:
    # The merge counts the trees in the scan of the stored digests and adds those it inserts;
    # the count must be the table's, or the same file loaded again is not known unchanged.
    survey = make_survey(200)
    load_trees(db_url, [write_survey(survey, tmp_path / "survey.csv")])
    resurvey_csv = write_survey(resurvey(survey), tmp_path / "resurvey.csv")
    assert counts(load_trees(db_url, [resurvey_csv]))[:2] == (2, 3)
    conn.commit()
    runs = "SELECT files -> 0 ->> 'trees_after', skipped FROM smarttrees.load_runs ORDER BY id"
    trees = conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()
    assert trees == (202,)
    assert conn.execute(runs).fetchall()[-1] == ("202", False)
    again = load_trees(db_url, [resurvey_csv])
    assert counts(again)[:4] == (0, 0, 202, 0)
    conn.commit()
    assert conn.execute(runs).fetchall()[-1] == ("202", True)   # known by the run record
