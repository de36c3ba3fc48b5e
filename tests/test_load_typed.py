"""The optimistic typed path (a clean CSV into a non-empty inventory): the same result."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from etl.survey_writer import make_survey, write_survey
from etl.trees import load_trees
from smarttrees.cluster import Cluster
from smarttrees.database import connect
from tests.fixtures.databases import TEMPLATE, copied_database


@pytest.fixture
def other_url(cluster: Cluster) -> Iterator[str]:
    """A second fresh database beside the test's own, to load the same file twice."""
    with copied_database(cluster, TEMPLATE, "typed") as url:
        yield url


def stored(url: str) -> tuple[list[tuple], list[tuple]]:
    """Every tree (without ids and clocks) and every history row (without its clock)."""
    with connect(url) as conn:
        trees = conn.execute(
            "SELECT tree_code, category, species_id, dbh_cm, height_m, crown_m, condition, "
            "planted_on, commune_code, source, ST_AsText(geom) FROM smarttrees.trees "
            "ORDER BY tree_code").fetchall()
        history = conn.execute(
            "SELECT tree_code, change, source, changes - 'id' - 'created_at' - 'updated_at' "
            "FROM smarttrees.tree_history ORDER BY tree_code").fetchall()
    return trees, history


def rejects(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_clean_file_takes_the_typed_path_with_the_same_rows_and_history(
        db_url: str, other_url: str, tmp_path: Path) -> None:
    path = write_survey(make_survey(300), tmp_path / "survey.csv")
    fast = load_trees(db_url, [path], direct=False)
    checked = load_trees(other_url, [path], direct=False, typed=False)
    assert fast.files[0].typed and not checked.files[0].typed
    assert (fast.files[0].inserted, fast.files[0].refused) == (300, 0)
    assert (checked.files[0].inserted, checked.files[0].refused) == (300, 0)
    trees, history = stored(db_url)
    assert len(trees) == 300 and len(history) == 300
    assert (trees, history) == stored(other_url)


def test_one_bad_number_is_reported_as_on_the_checked_path(db_url: str, tmp_path: Path) -> None:
    frame = make_survey(50).astype(object)
    frame.loc[6, "Chiều cao (m)"] = "cao"                               # row 8
    path = write_survey(frame, tmp_path / "survey.csv")
    result = load_trees(db_url, [path], direct=False)
    f = result.files[0]
    assert not f.typed
    assert (f.rows, f.inserted, f.refused) == (50, 49, 1)
    got = rejects(f.rejects_path)
    assert [(r["row"], r["reason"]) for r in got] == [("8", "Chiều cao (m): 'cao' is not a number")]
    assert got[0]["Chiều cao (m)"] == "cao"


def test_a_range_reject_keeps_the_cells_as_written(db_url: str, tmp_path: Path) -> None:
    frame = make_survey(50).astype(object)
    frame.loc[3, "Đường kính (cm)"] = "900.50"                          # row 5: typed, too big
    path = write_survey(frame, tmp_path / "survey.csv")
    f = load_trees(db_url, [path], direct=False).files[0]
    assert (f.inserted, f.refused) == (49, 1)
    got = rejects(f.rejects_path)
    assert [(r["row"], r["reason"]) for r in got] == [
        ("5", "Đường kính (cm): 900.5 cm is outside the plausible range (0.0–500.0 cm)")]
    assert got[0]["Đường kính (cm)"] == "900.50"


def test_not_a_number_spelled_as_numeric_input_is_still_refused(db_url: str, tmp_path: Path) -> None:
    frame = make_survey(50).astype(object)
    frame.loc[0, "Đường kính tán (m)"] = "NaN"                                     # row 2
    path = write_survey(frame, tmp_path / "survey.csv")
    f = load_trees(db_url, [path], direct=False).files[0]
    assert (f.inserted, f.refused) == (49, 1)
    assert rejects(f.rejects_path)[0]["reason"] == "Đường kính tán (m): 'NaN' is not a number"
