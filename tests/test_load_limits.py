"""Pathological files: memory stays bounded, and the refusal is one line naming file, row, field.

Each file is loaded by the real command in a subprocess, whose own peak memory (``wait4``) is
checked; the database already holds trees, which must stay as they were.
"""

from __future__ import annotations

import csv
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import psycopg
import pytest

from etl.trees import load_trees
from tests.fixtures.cli import Outcome, cli_env, run_cli
from tests.fixtures.survey_writer import make_survey, write_survey

GB = 1 << 30
HEADER = "Mã cây,Tên cây,Kinh độ,Vĩ độ\n"


@pytest.fixture
def loaded(db_url: str, tmp_path: Path) -> tuple[int, int]:
    """Trees and runs already stored, which a refused load must leave alone."""
    load_trees(db_url, [write_survey(make_survey(10, prefix="OLD", start=7000), tmp_path / "old.csv")])
    return stored(db_url)


def stored(db_url: str) -> tuple[int, int]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM smarttrees.trees), "
                           "(SELECT count(*) FROM smarttrees.tree_history)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def load(db_url: str, path: Path, **env: str) -> Outcome:
    return run_cli("load", "trees", str(path), env=cli_env(SMARTTREES_DATABASE_URL=db_url, **env))


def good_rows(n: int) -> str:
    return "".join(f"LIM-{i},Sấu,105.83,21.5{i}\n" for i in range(n))


def cp1258(text: str) -> bytes:
    """Text as Windows-1258 writes it: tones as combining marks after the letter."""
    tones = "\u0300\u0301\u0303\u0309\u0323"
    out = []
    for ch in text:
        parts = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in tones))
        out.append(base + "".join(c for c in parts if c in tones))
    return "".join(out).encode("cp1258")


def assert_refused(outcome: Outcome, message: str) -> None:
    assert outcome.code == 1, outcome.stderr
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert outcome.error_lines == [message]
    assert outcome.peak_rss_bytes < GB, f"peak RSS {outcome.peak_rss_bytes / 2**20:.0f} MiB"


def test_two_gigabytes_of_zero_bytes_after_five_lines(db_url: str, loaded: tuple[int, int],
                                                      tmp_path: Path) -> None:
    path = tmp_path / "zeros.csv"
    path.write_text(HEADER + good_rows(4), encoding="utf-8")
    with path.open("r+b") as handle:
        handle.truncate(2 * GB)                       # sparse: costs no disk
    outcome = load(db_url, path)
    assert_refused(outcome, "error: zeros.csv, row 6, field 'Mã cây': a NUL byte (0x00): binary "
                            "data, or a UTF-16 file? Save it as a UTF-8 CSV")
    assert stored(db_url) == loaded


def test_one_field_of_a_hundred_megabytes(db_url: str, loaded: tuple[int, int],
                                          tmp_path: Path) -> None:
    path = tmp_path / "field.csv"
    with path.open("wb") as handle:
        handle.write((HEADER + good_rows(2)).encode())
        handle.write(b"LIM-9," + b"x" * (100 << 20) + b",105.83,21.59\n")
    outcome = load(db_url, path)
    assert_refused(outcome, "error: field.csv, row 4, field 'Tên cây': the cell is longer than "
                            "1 MiB (SMARTTREES_LOAD_MAX_FIELD_BYTES)")
    assert stored(db_url) == loaded


def test_a_quote_left_open_makes_a_row_too_long(db_url: str, loaded: tuple[int, int],
                                                tmp_path: Path) -> None:
    path = tmp_path / "quote.csv"
    path.write_text(HEADER + good_rows(3) + 'LIM-8,"Sấu,105.83,21.58\n' + good_rows(200_000),
                    encoding="utf-8")
    outcome = load(db_url, path, SMARTTREES_LOAD_MAX_FIELD_BYTES=str(8 << 20))
    assert_refused(outcome, "error: quote.csv, row 5: the row is longer than 4 MiB "
                            "(SMARTTREES_LOAD_MAX_ROW_BYTES): a quote left open, or not a CSV?")
    assert stored(db_url) == loaded


@pytest.mark.parametrize("encoding", ["utf-8", "cp1258"])
def test_the_limits_are_settings_on_both_paths(db_url: str, loaded: tuple[int, int],
                                               tmp_path: Path, encoding: str) -> None:
    # UTF-8 goes the direct path first; Windows-1258 goes the checked path.
    path = tmp_path / "long.csv"
    survey = make_survey(30)
    survey.loc[11, "Ghi chú"] = "rất dài " * 300    # 2,700 bytes in one cell
    text = survey.to_csv(index=False)
    path.write_bytes(text.encode() if encoding == "utf-8" else cp1258(text))
    outcome = load(db_url, path, SMARTTREES_LOAD_MAX_FIELD_BYTES="2000")
    assert_refused(outcome, "error: long.csv, row 13, field 'Ghi chú': the cell is longer than "
                            "2,000 bytes (SMARTTREES_LOAD_MAX_FIELD_BYTES)")
    assert stored(db_url) == loaded
    assert load(db_url, path).code == 0                # within the default limit it loads
    assert stored(db_url)[0] == loaded[0] + 30


def test_a_row_in_another_encoding_is_named(db_url: str, loaded: tuple[int, int],
                                            tmp_path: Path) -> None:
    survey = make_survey(12_000)
    path = tmp_path / "mixed.csv"
    lines = survey.to_csv(index=False).encode().splitlines(keepends=True)
    bad = 9_811                                        # file row 9,812 (the header is row 1)
    lines[bad] = cp1258(lines[bad].decode())
    path.write_bytes(b"".join(lines))
    outcome = load(db_url, path)
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    [line] = outcome.error_lines
    assert line.startswith("error: mixed.csv, row 9,812, field 'Tên cây': not UTF-8 "
                           "(looks like Windows-1258)"), line
    assert stored(db_url) == loaded


def test_a_workbook_cell_over_the_limit(db_url: str, loaded: tuple[int, int],
                                        tmp_path: Path) -> None:
    survey = make_survey(20)
    survey.loc[4, "Ghi chú"] = "rất dài " * 300
    path = write_survey(survey, tmp_path / "long.xlsx")
    outcome = load(db_url, path, SMARTTREES_LOAD_MAX_FIELD_BYTES="2000")
    assert_refused(outcome, "error: long.xlsx, row 6, field 'Ghi chú': the cell is longer than "
                            "2,000 bytes (SMARTTREES_LOAD_MAX_FIELD_BYTES)")
    assert stored(db_url) == loaded


def test_a_workbook_whose_text_table_unpacks_too_big(db_url: str, loaded: tuple[int, int],
                                                     tmp_path: Path) -> None:
    # A zip bomb's way: a shared-strings part that packs small and unpacks to 2 MiB.
    path = write_survey(make_survey(20), tmp_path / "bomb.xlsx")
    strings = "<si><t>Sấu</t></si>" * 100_000
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/sharedStrings.xml", f'<sst count="100000">{strings}</sst>')
    outcome = load(db_url, path, SMARTTREES_LOAD_BATCH_BYTES=str(1 << 16))
    assert outcome.code == 1 and "Traceback" not in outcome.stderr
    assert outcome.error_lines == [
        "error: bomb.xlsx: its shared text table unpacks to 2 MiB, over 1 MiB "
        "(16 × SMARTTREES_LOAD_BATCH_BYTES): save it as CSV"]
    assert stored(db_url) == loaded


def test_a_long_cell_within_the_limit_is_a_refused_row(db_url: str, loaded: tuple[int, int],
                                                       tmp_path: Path) -> None:
    # 200 KB of text where a species name goes: within the field limit, so the row is refused
    # with a reason that quotes the start of the cell (the b-tree key limit once made it a crash).
    letters = "abcdefghiklmnopqrstuvxyăâđêôơư"
    rng = np.random.default_rng(5)
    name = "".join(rng.choice(list(letters), 200_000))
    path = tmp_path / "long_species.csv"
    path.write_text(HEADER + good_rows(5) + f"LIM-9,{name},105.83,21.59\n", encoding="utf-8")
    outcome = load(db_url, path)
    assert outcome.code == 0, outcome.stderr
    assert "inserted 5, updated 0, unchanged 0, refused 1" in outcome.stdout
    csv.field_size_limit(1 << 20)
    with (tmp_path / "long_species.rejects.csv").open(encoding="utf-8-sig") as handle:
        reason = list(csv.DictReader(handle))[0]["reason"]
    assert reason == f"Tên cây: {name[:80] + '…'!r} is not in the species catalogue"
    assert stored(db_url)[0] == loaded[0] + 5


def test_a_gis_feature_with_a_cell_over_the_limit(db_url: str, loaded: tuple[int, int],
                                                  tmp_path: Path) -> None:
    survey = make_survey(8, lang="en")
    survey["note"] = ""
    survey.loc[6, "note"] = "long " * 1000                # 5,000 bytes
    path = write_survey(survey, tmp_path / "long.geojson")
    outcome = load(db_url, path, SMARTTREES_LOAD_MAX_FIELD_BYTES="4000")
    assert_refused(outcome, "error: long.geojson, row 7, field 'note': the cell is longer than "
                            "4,000 bytes (SMARTTREES_LOAD_MAX_FIELD_BYTES)")
    assert stored(db_url) == loaded
