"""A workbook's first sheet read by fastexcel (calamine, in Rust) straight into Arrow columns.

The row reader (``etl.readers.xlsx_rows``) hands every cell to Python: four minutes for a
million-row survey, against a quarter of a minute here. fastexcel guesses one type per column
over every row and builds the Arrow column in Rust. Cells then read as
``etl.readers.cell_text`` shows them: 1.0 → "1", a date or date-time → "2019-03-15", True →
"True". Every column comes out as text (lookup fields as dictionary text): the checker parses
the numbers, as it parses a CSV's.

:func:`read_sheet` gives ``None`` for what it cannot render as the row reader does (a column
mixing kinds of cell, time-of-day or duration cells, headers fastexcel reads otherwise), and
the caller falls back to the row reader: the result is the same either way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.readers import Table, cell_text, xlsx_data_line

log = logging.getLogger(__name__)

BATCH_ROWS = 65_536
# Timestamps before this are Excel time-of-day cells, which the row reader shows as "10:05:00".
_FIRST_DAY = np.datetime64("1900-01-01")
# Where Arrow's float-to-text cast writes what Python's str does (below: exponents differ).
_PLAIN_FROM, _PLAIN_BELOW = 1e-4, 1e9


# Where the tree loader's open (``etl.readers.open_table(keep_sheet=True)``) leaves the sheet it
# read: the columns, or ``None`` when fastexcel cannot read the sheet as the row reader does.
SHEET = "xlsx_sheet"
_UNNAMED = "__UNNAMED__"          # fastexcel's name for a column whose header cell it cannot read
_DEDUPLICATED = re.compile(r"(.*)_\d+$")   # its name for a header seen before: "Ghi chú_1"


def load(path: Path) -> pa.RecordBatch | None:
    """The first sheet as fastexcel reads it, named by the used range's first row.

    One read of the whole sheet (fastexcel cannot read part of one); ``None`` when it cannot
    type a column (a column mixing numbers and text: its strict coercion refuses it) or cannot
    read the file at all: the row reader then says what is wrong with it.
    """
    from etl import xlsx_prefetch

    try:
        # Started in a thread by `smarttrees load trees` when it loads this one workbook.
        sheet = xlsx_prefetch.read(path)
    except Exception as exc:  # noqa: BLE001 - whatever fastexcel raises, the row reader words it
        sheet = exc
    if isinstance(sheet, Exception):
        log.debug("%s: read cell by cell (%s)", path.name, str(sheet).splitlines()[0])
        return None
    return sheet


def headers(sheet: pa.RecordBatch) -> list[str] | None:
    """The header as the row reader finds it (``etl.readers._xlsx_header``), from the names.

    ``None`` when the names cannot tell it: a header cell fastexcel did not read as text (an
    empty one, or a date or a true/false: ``__UNNAMED__n`` for all of them), a name it made
    unique (``A``, ``A_1``), or a number (written as fastexcel writes it). The caller then
    reads the header row by row.
    """
    names = sheet.schema.names
    for name in names:
        twin = _DEDUPLICATED.fullmatch(name)
        if not name or name.startswith(_UNNAMED) or (twin and twin.group(1) in names) \
                or _number(name):
            return None
    return [name.strip() for name in names] or None


def _number(name: str) -> bool:
    try:
        float(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Sheet:
    """A sheet's data rows (empty ones left out) and each one's number, as Excel shows it."""

    cells: pa.RecordBatch
    rows: pa.Int64Array

    @property
    def num_rows(self) -> int:
        """Data rows."""
        return self.cells.num_rows


def fit(sheet: pa.RecordBatch, table: Table) -> Sheet | None:
    """The sheet's data rows, one typed column per header of ``table``, empty rows left out.

    ``None`` when a column cannot be read as the row reader reads it (time-of-day or duration
    cells), or when its names are not the header ``table`` found: its header is then not on the
    used range's first row.
    """
    width = len(table.headers)
    if sheet.num_columns < width:
        return None
    sheet = sheet.select(range(width))     # cells right of the header are not read
    if not _same_headers(sheet.schema.names, table.headers) or not all(
            _renders(sheet.column(i)) for i in range(width)):
        log.debug("%s: read cell by cell (headers or cell kinds)", table.path.name)
        return None
    filled = _not_empty(sheet)
    rows = pa.array(np.arange(sheet.num_rows, dtype=np.int64) + xlsx_data_line(table))
    if pc.all(filled).as_py() is False:
        sheet, rows = sheet.filter(filled), rows.filter(filled)
    return Sheet(sheet, rows)


def read_sheet(table: Table) -> Sheet | None:
    """The first sheet's data rows, one typed column per header, empty rows left out.

    The sheet read when the table was opened is taken (and let go: it is read once), else the
    file is read now. ``None`` when a column cannot be read as the row reader reads it.
    """
    if SHEET in table.extra:
        return cast("Sheet | None", table.extra.pop(SHEET))
    loaded = load(table.path)
    return fit(loaded, table) if loaded is not None else None


def batches(sheet: Sheet, lookups: set[int], tick: Callable[[int], None] | None = None
            ) -> Iterator[tuple[pa.RecordBatch, np.ndarray]]:
    """The sheet in batches typed as a CSV's, each with its rows' numbers.

    ``lookups`` are read as dictionary text, the rest as text.
    """
    names = [f"c{i}" for i in range(sheet.cells.num_columns)]
    numbers = sheet.rows.to_numpy()
    for start in range(0, sheet.num_rows, BATCH_ROWS):
        part = sheet.cells.slice(start, BATCH_ROWS)
        columns = []
        for i in range(part.num_columns):
            # (A cell over the field limit is refused by the tree loader, naming its row.)
            text = pc.fill_null(_text(part.column(i)), "")
            columns.append(pc.dictionary_encode(text) if i in lookups else text)
        yield pa.record_batch(columns, names=names), numbers[start:start + part.num_rows]
        if tick:
            tick(part.num_rows)


def _same_headers(names: list[str], headers: list[str]) -> bool:
    """True when fastexcel named the columns by the header cells (empty: ``__UNNAMED__n``)."""
    return len(names) == len(headers) and all(
        name.strip() == header or (not header and name.startswith("__UNNAMED__"))
        for name, header in zip(names, headers, strict=True))


def _renders(column: pa.Array) -> bool:
    """True for a column this module reads as the row reader does."""
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_null(kind) \
            or pa.types.is_boolean(kind) or pa.types.is_integer(kind) \
            or pa.types.is_floating(kind) or pa.types.is_date(kind):
        return True
    if pa.types.is_timestamp(kind):
        days = pc.min(column).as_py()
        return days is None or bool(np.datetime64(days, "D") >= _FIRST_DAY)
    return False


def _not_empty(sheet: pa.RecordBatch) -> pa.Array:
    """Rows with at least one cell (the row reader skips the others)."""
    filled = None
    for column in sheet.columns:
        cell = (pc.fill_null(pc.not_equal(column, ""), False) if pa.types.is_string(column.type)
                else pc.is_valid(column))
        filled = cell if filled is None else pc.or_(filled, cell)
    return filled if filled is not None else pa.array([], pa.bool_())


def _text(column: pa.Array) -> pa.Array:
    """A text field's cells as ``etl.readers.cell_text`` shows them."""
    kind = column.type
    if pa.types.is_string(kind):
        return column
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_boolean(kind):
        return pc.if_else(column, "True", "False")
    if pa.types.is_integer(kind):
        return column.cast(pa.string())
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return pc.strftime(column, format="%Y-%m-%d")
    return _float_text(column)


def _float_text(column: pa.Array) -> pa.Array:
    """Numbers as text: whole ones without a decimal part ("12"), others as Python shows them.

    Arrow's cast writes the shortest text that reads back as the same number, as Python's
    ``str`` does, whole numbers without a decimal part, and in the same form from 1e-4 up to
    1e9 (checked on 14 M numbers of every magnitude against ``etl.readers.cell_text``); only
    the others (exponents, whole numbers from 1e9 on, zeros: Arrow writes "-0") go through
    Python.
    """
    values = column.to_numpy(zero_copy_only=False)  # a missing cell: NaN
    magnitude = np.abs(values)
    with np.errstate(invalid="ignore"):
        whole = values == np.trunc(values)
    odd = np.where(whole, (magnitude >= _PLAIN_BELOW) | (values == 0),
                   ~((magnitude >= _PLAIN_FROM) & (magnitude < _PLAIN_BELOW)))
    if column.null_count:
        odd &= pc.is_valid(column).to_numpy(zero_copy_only=False)
    text = column.cast(pa.string())
    if odd.any():
        text = pc.replace_with_mask(
            text, pa.array(odd), pa.array([cell_text(v) for v in values[odd].tolist()],
                                          pa.string()))
    return text
