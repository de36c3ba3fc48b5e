"""A survey CSV read ahead (etl.csv_prefetch) and parsed from memory loads as one read by the loader.

``smarttrees load trees survey.csv`` reads, digests and splits the file on a thread while the
loader starts, and then parses the rows from those bytes rather than from the file. Each test
compares what a user (or the next load) sees: the trees with their stored digests, the
history, the counts and the rejects file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from etl import csv_prefetch, direct, line_digests, runs
from etl.readers import open_table
from etl.trees import load_trees
from tests.fixtures.databases import TEMPLATE, copied_database
from tests.fixtures.survey_writer import make_survey, write_survey

TREES = ("SELECT tree_code, category, species_id, dbh_cm, height_m, crown_m, condition, "
         "planted_on, commune_code, ST_AsText(geom), attributes, load_digest "
         "FROM smarttrees.trees ORDER BY tree_code")
HISTORY = "SELECT tree_code, change FROM smarttrees.tree_history ORDER BY tree_code, id"


def _survey(tmp_path: Path) -> Path:
    survey = make_survey(400).astype(object)
    survey.loc[17, "Đường kính (cm)"] = "tám"                 # refused, with its row number
    survey.loc[230, "Tên cây"] = "Cây lạ, không rõ"           # refused, quoted (a comma)
    path = write_survey(survey, tmp_path / "survey.csv")
    # Windows line ends on some lines and a blank line: rows are counted as before.
    text = path.read_bytes().replace(b"\n", b"\r\n", 30)
    at = text.index(b"\n", len(text) // 2) + 1
    path.write_bytes(text[:at] + b"\n" + text[at:])
    return path


def test_a_read_ahead_gives_the_digests_the_loader_computes(tmp_path: Path) -> None:
    path = _survey(tmp_path)
    table = open_table(path, scan=False)
    own = line_digests.read(table)
    csv_prefetch.start([path])
    ahead = line_digests.read(table)       # taken from the thread
    assert own is not None and ahead is not None and ahead.hashes is not None
    assert runs.file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    for name in ("starts", "lengths", "rows", "line_no"):
        assert getattr(ahead, name).tolist() == getattr(own, name).tolist(), name
    assert ahead.digests(12345).tolist() == own.digests(12345).tolist()
    assert csv_prefetch.lines(path) is None     # taken once, then read again by the loader


def test_a_file_changed_after_its_read_ahead_is_read_again(tmp_path: Path) -> None:
    path = _survey(tmp_path)
    csv_prefetch.start([path])
    assert csv_prefetch.sha256(path) is not None
    path.write_bytes(path.read_bytes() + b"TN-X,Hoa ban,,1,1,1,,,105.7,21.5\n")
    assert csv_prefetch.sha256(path) is None
    assert runs.file_digest(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    csv_prefetch.release()


def _load(cluster, path: Path) -> dict[str, object]:
    with copied_database(cluster, TEMPLATE) as url:
        f = load_trees(url, [path]).files[0]
        with psycopg.connect(url) as conn:
            return {"counts": (f.rows, f.inserted, f.refused),
                    "rejects": f.rejects_path.read_text(encoding="utf-8-sig")
                    if f.rejects_path else "",
                    "trees": conn.execute(TREES).fetchall(),
                    "history": conn.execute(HISTORY).fetchall()}


def test_a_first_load_from_memory_stores_what_a_read_of_the_file_stores(
        cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _survey(tmp_path)
    csv_prefetch.start([path])
    ahead = _load(cluster, path)                 # read ahead, parsed from memory
    from_memory = _load(cluster, path)           # read by the loader, parsed from memory
    monkeypatch.setattr(direct, "held_to_limits", lambda table, lines: False)
    streamed = _load(cluster, path)              # parsed from the file, through the limits
    assert ahead["counts"] == (400, 398, 2)
    assert ahead == from_memory == streamed
    refused = pd.read_csv(path.with_name("survey.rejects.csv"), dtype=str)
    assert sorted(refused["row"].astype(int)) == [19, 232]
