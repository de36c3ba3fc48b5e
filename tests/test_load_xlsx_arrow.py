"""Workbooks read by fastexcel straight into Arrow give the cells the row-by-row reader gives."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openpyxl
import pyarrow as pa
import pytest

from etl import arrow_readers, prefetch, xlsx_arrow, xlsx_prefetch
from etl.errors import InputError
from etl.readers import open_table

HEADERS = ["Mã cây", "Đường kính (cm)", "Số hiệu", "Có hoa", "Ngày trồng", "Ghi chú"]
LOOKUPS = {4}


def _workbook(path: Path, rows: list[list[object]], *, blank_rows_first: int = 0) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    for _ in range(blank_rows_first):
        sheet.append([None])
    sheet.append(HEADERS)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


ROWS = [
    ["A1", 12.5, 101, True, dt.date(2020, 3, 1), 3.25],
    ["A2", 8.0, 102, False, dt.datetime(2019, 12, 31, 10, 5), 1e-07],
    [None, None, None, None, None, None],                 # an empty row: left out
    ["A3", None, 103.0, None, None, 1.5e20],
    ["A4", -0.0, 2**40, True, dt.date(1999, 1, 2), 42.0],
]


def _read(batches: Iterator[tuple[pa.RecordBatch, np.ndarray]]) -> pa.Table:
    """The batches' cells, with each row's number in the sheet as a column ``row``."""
    parts = [batch.append_column("row", pa.array(rows)) for batch, rows in batches]
    return pa.Table.from_batches(parts) if parts else pa.table({})


def _both(path: Path) -> tuple[pa.Table, pa.Table, bool]:
    table = open_table(path, None, None, scan=False)
    fast = xlsx_arrow.read_sheet(table) is not None
    ours = _read(arrow_readers.read_xlsx_batches(table, LOOKUPS))
    rows = _read(arrow_readers._xlsx_row_batches(table, LOOKUPS))
    # Opened as the tree loader opens it: the sheet read once, the header from that read.
    once = open_table(path, None, None, scan=False, keep_sheet=True)
    assert once.headers == table.headers
    assert (once.extra[xlsx_arrow.SHEET] is not None) == fast
    assert _read(arrow_readers.read_xlsx_batches(once, LOOKUPS)) == ours
    return ours, rows, fast


@pytest.mark.parametrize("blank_rows_first", [0, 2])
def test_typed_columns_read_as_the_row_reader_reads_them(tmp_path: Path,
                                                         blank_rows_first: int) -> None:
    path = _workbook(tmp_path / "survey.xlsx", ROWS, blank_rows_first=blank_rows_first)
    ours, rows, fast = _both(path)
    assert fast
    assert ours.to_pylist() == rows.to_pylist()
    assert ours.num_rows == 4 and ours.column("c5").to_pylist() == [
        "3.25", "1e-07", "150000000000000000000", "42"]
    assert ours.column("c4").to_pylist() == ["2020-03-01", "2019-12-31", "", "1999-01-02"]
    assert ours.column("c1").to_pylist() == ["12.5", "8", "", "0"]   # the checker parses them


@pytest.mark.parametrize("cell", [" 8,6 ", "mười", True, dt.date(2020, 1, 1)])
def test_a_number_field_mixing_kinds_of_cell_is_read_as_text(tmp_path: Path,
                                                             cell: object) -> None:
    rows = [[*row[:1], cell, *row[2:]] if i == 1 else row for i, row in enumerate(ROWS)]
    ours, reference, fast = _both(_workbook(tmp_path / "mixed_numbers.xlsx", rows))
    assert not fast and ours.to_pylist() == reference.to_pylist()
    second = {" 8,6 ": " 8,6 ", "mười": "mười", True: "True"}.get(cell, "2020-01-01")
    assert ours.column("c1").to_pylist() == ["12.5", second, "", "0"]


@pytest.mark.parametrize("cell", ["văn bản", dt.time(10, 5)])
def test_mixed_or_time_cells_in_a_text_field_are_read_cell_by_cell(tmp_path: Path,
                                                                   cell: object) -> None:
    rows = [[*row[:3], cell, *row[4:]] if i == 0 else row for i, row in enumerate(ROWS)]
    if isinstance(cell, dt.time):
        rows = [[*row[:5], cell] for row in rows]
    ours, reference, fast = _both(_workbook(tmp_path / "mixed.xlsx", rows))
    assert not fast and ours.to_pylist() == reference.to_pylist()


# Header rows whose names fastexcel cannot tell (a gap, a date, twice the same name, a number,
# cells right of the header) or that are not on the used range's first row.
HEADER_ROWS = [
    [None, None, None],
    ["", "  ", ""],
    [None, "ghi chép", None],
]
HEADER_VARIANTS = [
    ["Mã cây", None, "Ghi chú"],
    ["Mã cây", dt.date(2020, 1, 2), "Ghi chú"],
    ["Mã cây", True, "Ghi chú"],
    ["Mã cây", "Ghi chú", "Ghi chú"],
    ["Mã cây", "Ghi chú", "Ghi chú_1"],
    ["Mã cây", 2019, "1e-07"],
    [" Mã cây ", "Ghi chú ", "  "],
    ["Mã cây", "Ghi chú", None, None],
]


@pytest.mark.parametrize("header", HEADER_VARIANTS + [["Mã cây", "Ghi chú", "Số"]])
@pytest.mark.parametrize("before", [[], *([row] for row in HEADER_ROWS)])
def test_the_header_read_with_the_sheet_is_the_row_readers(
        tmp_path: Path, header: list[object], before: list[list[object]]) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in [*before, header, ["A1", 1.5, "x", "right of the header"], ["A2", 2, "y"]]:
        sheet.append(row)
    path = tmp_path / "header.xlsx"
    book.save(path)

    def opened(keep: bool) -> tuple[list[str], list[dict[str, object]]] | str:
        try:
            table = open_table(path, None, None, scan=False, keep_sheet=keep)
        except InputError as exc:
            return str(exc)
        read = _read(arrow_readers.read_xlsx_batches(table, set()))
        return table.headers, read.to_pylist()

    assert opened(True) == opened(False)


def test_a_sheet_read_ahead_is_the_file_as_it_is_when_opened(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "survey.xlsx", ROWS)
    xlsx_prefetch.start([path])
    ahead = open_table(path, None, None, scan=False, keep_sheet=True)
    assert ahead.extra[xlsx_arrow.SHEET] == xlsx_arrow.fit(xlsx_prefetch.read(path), ahead)

    xlsx_prefetch.start([path])          # the file changes before the loader opens it
    _workbook(path, ROWS[:2])
    os.utime(path, ns=(0, 0))
    changed = open_table(path, None, None, scan=False, keep_sheet=True)
    assert changed.extra[xlsx_arrow.SHEET].cells.column(0).to_pylist() == ["A1", "A2"]


def test_the_command_line_reads_ahead_only_a_load_of_one_workbook(tmp_path: Path) -> None:
    book = _workbook(tmp_path / "survey.xlsx", ROWS)
    other = _workbook(tmp_path / "other.xlsx", ROWS[:1])
    for argv, ahead in [(["-vv", "load", "trees", "--crs", "wgs84", str(book)], True),
                        (["load", "trees", str(book), str(other)], False),
                        (["load", "trees", str(book), "--help"], False),
                        (["export", "trees", str(book)], False)]:
        xlsx_prefetch.start([])          # nothing started
        prefetch.start_from_argv(argv)
        assert bool(xlsx_prefetch._STARTED) == ahead, argv
    prefetch.start_from_argv(["load", "trees", str(book)])
    started = dict(xlsx_prefetch._STARTED)
    xlsx_prefetch.start([book])          # the command's own files: the same read kept
    assert started == xlsx_prefetch._STARTED
    assert open_table(book, None, None, scan=False, keep_sheet=True).extra[
        xlsx_arrow.SHEET].num_rows == 4 and not xlsx_prefetch._STARTED


def test_a_text_table_read_ahead_without_the_settings_is_under_every_bound() -> None:
    from etl.limits import XLSX_STRINGS_BATCHES
    from smarttrees.settings import Settings

    least = min(m.ge for m in Settings.model_fields["load_batch_bytes"].metadata
                if hasattr(m, "ge"))
    assert XLSX_STRINGS_BATCHES * least >= xlsx_prefetch.ALWAYS_READ
