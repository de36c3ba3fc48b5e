"""A resubmitted CSV's known lines are not parsed (etl.line_digests): the same result as a full read.

Each test loads a survey, then a resurvey, twice: once as the loader does it (only the new and
changed lines parsed) and once with the line digests off (every row parsed and digested by its
cells), and compares what a user sees: counts, trees, history, rejects file, messages.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest

from etl import checker, hashing, line_digests
from etl.errors import InputError
from etl.trees import load_trees
from tests.fixtures.databases import TEMPLATE, copied_database
from tests.fixtures.survey_writer import make_survey, write_survey

TREES = ("SELECT tree_code, category, species_id, dbh_cm, height_m, crown_m, condition, "
         "planted_on, commune_code, ST_AsText(geom), attributes FROM smarttrees.trees "
         "ORDER BY tree_code")
HISTORY = "SELECT tree_code, change, changes FROM smarttrees.tree_history ORDER BY tree_code, id"


def both_ways(cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, survey: pd.DataFrame,
              resurvey: Path) -> list[dict[str, object]]:
    """Load ``survey`` then ``resurvey`` with and without line digests: what each left."""
    seen = []
    for by_lines in (True, False):
        with monkeypatch.context() as patch, copied_database(cluster, TEMPLATE) as url:
            if not by_lines:
                patch.setattr(line_digests, "read", lambda table: None)
            load_trees(url, [write_survey(survey, tmp_path / "survey.csv")])
            try:
                result = load_trees(url, [resurvey])
            except InputError as exc:
                seen.append({"error": str(exc)})
                continue
            f = result.files[0]
            rejects = f.rejects_path.read_text(encoding="utf-8-sig") if f.rejects_path else ""
            with psycopg.connect(url) as conn:
                seen.append({"counts": (f.rows, f.inserted, f.updated, f.unchanged, f.refused),
                             "skipped": f.skipped, "rejects": rejects,
                             "trees": conn.execute(TREES).fetchall(),
                             "history": conn.execute(HISTORY).fetchall()})
    return seen


def test_a_resurvey_read_by_its_lines_gives_what_a_full_read_gives(
        cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    survey = make_survey(300)
    changed = survey.astype(object)
    changed.loc[10, "Chiều cao (m)"] = float(survey.loc[10, "Chiều cao (m)"]) + 0.5
    changed.loc[120, "Đường kính (cm)"] = "tám"                # refused, with its row number
    changed.loc[250, "Tên cây"] = "Cây lạ"                     # refused: unknown species
    new = make_survey(3, start=5001)
    path = write_survey(pd.concat([changed, new], ignore_index=True), tmp_path / "resurvey.csv")
    # A blank line and Windows line ends: row numbers count the rows, not the lines.
    text = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n", 40)
    at = text.index(b"\n", len(text) // 2) + 1
    path.write_bytes(text[:at] + b"\n" + text[at:])
    by_lines, full = both_ways(cluster, tmp_path, monkeypatch, survey, path)
    assert by_lines["counts"] == full["counts"] == (303, 3, 1, 297, 2)
    assert by_lines["skipped"] == 297   # the known lines, not parsed
    for what in ("rejects", "trees", "history"):
        assert by_lines[what] == full[what], what
    refused = pd.read_csv(io.StringIO(by_lines["rejects"]), dtype=str)   # type: ignore[arg-type]
    assert sorted(refused["row"].astype(int)) == [122, 252]


def test_a_malformed_new_line_is_named_by_its_line(
        cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    survey = make_survey(100)
    path = write_survey(survey, tmp_path / "resurvey.csv")
    lines = path.read_bytes().split(b"\n")
    lines[70] += b",one cell too many"
    path.write_bytes(b"\n".join(lines))
    by_lines, full = both_ways(cluster, tmp_path, monkeypatch, survey, path)
    assert by_lines == full and "71" in str(by_lines["error"])


def test_a_known_line_given_twice_is_refused(
        cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    survey = make_survey(50)
    twice = pd.concat([survey, survey.iloc[[6]]], ignore_index=True)
    path = write_survey(twice, tmp_path / "twice.csv")
    by_lines, full = both_ways(cluster, tmp_path, monkeypatch, survey, path)
    assert by_lines == full
    assert "row 8 appears again in row 52" in str(by_lines["error"])


@pytest.mark.parametrize("data", [
    b'code,note\nA,"two\nlines"\nB,x\n',     # a quoted line break: a row over two lines
    b"code,note\nA,x\rB,y\n",                # a lone carriage return ends a row for Arrow
    b"code,note\nA,x\x00\n",                 # a NUL byte
])
def test_lines_that_are_not_rows_are_not_split(data: bytes) -> None:
    assert line_digests.split(data, data.index(b"\n") + 1) is None


def _span_digest(data: bytes, start: int, length: int) -> int:
    """One span's digest as etl.hashing defines it, word by word in plain integers."""
    mask = (1 << 64) - 1

    def mix(h: int) -> int:
        h ^= h >> 30
        h = h * 0xBF58476D1CE4E5B9 & mask
        h ^= h >> 27
        h = h * 0x94D049BB133111EB & mask
        return h ^ h >> 31

    h = length * 0x9E3779B97F4A7C15 & mask
    for at in range(start, start + length, 8):
        word = data[at:min(at + 8, start + length)]
        h = mix(h ^ int.from_bytes(word, "little"))
    return h


def test_span_digests_are_the_ones_earlier_loads_stored() -> None:
    # Spans of every length round a word (none, short, whole words, one byte more), some
    # ending at the buffer's last byte: a reload compares them with digests stored before.
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, 2_000, dtype=np.uint8)
    lengths = np.array([0, 1, 7, 8, 9, 15, 16, 17, 40, 3, 0, 120, 8], dtype=np.int64)
    starts = np.array([5, 0, 100, 1_992, 200, 300, 1_984, 400, 500, 1_997, 2_000, 600, 0])
    expected = [_span_digest(data.tobytes(), int(s), int(n))
                for s, n in zip(starts, lengths, strict=True)]
    assert hashing.span_hash(data, starts, lengths).tolist() == expected


@pytest.mark.parametrize("raw", ["2008-10-30", " 1999-01-01 ", "2008-02-30", "0000-01-01",
                                 "1750-06-01", "2999-01-01", "2008-1-5", "30/10/2008",
                                 "2008-10-3x", "２００８-10-30"])
def test_iso_dates_are_read_as_by_their_pattern(raw: str) -> None:
    def by_patterns(text: str) -> tuple[str | None, str | None]:
        for pattern in checker.DATE_FORMATS:
            try:
                day = dt.datetime.strptime(text.strip(), pattern).date()
            except ValueError:
                continue
            return checker.check_day(day)
        return None, "is not a date (YYYY-MM-DD or DD/MM/YYYY)"

    assert checker.parse_date(raw) == by_patterns(raw)
