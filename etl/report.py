"""The rejects file: each refused row as it came in, plus its row number and the reasons."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import psycopg
from psycopg import sql

from etl.stage import cell, raw_table

REJECTS = """
SELECT {cells}, c.row_no, array_to_string(c.problems, '; ')
FROM load_checked c JOIN {raw} r USING (row_no)
WHERE c.file_no = %s AND cardinality(c.problems) > 0
ORDER BY c.row_no
"""


def default_path(source: Path) -> Path:
    """``survey.csv`` → ``survey.rejects.csv`` beside it."""
    return source.with_name(f"{source.stem}.rejects.csv")


def write_rejects(conn: psycopg.Connection, file_no: int, headers: list[str], path: Path) -> int:
    """Write the refused rows of one file (UTF-8 with BOM, opens in Excel); return how many."""
    query = sql.SQL(REJECTS).format(
        cells=sql.SQL(", ").join(sql.SQL("r.{}").format(cell(i)) for i in range(len(headers))),
        raw=raw_table(file_no),
    )
    count = 0
    with conn.cursor() as cur, _writing(path) as handle:
        cur.execute(query, (file_no,))
        writer = csv.writer(handle)
        writer.writerow([*headers, _free("row", headers), _free("reason", headers)])
        for row in cur:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count


@contextmanager
def _writing(path: Path) -> Iterator[TextIO]:
    """The rejects file open for writing: an error names it, and leaves no half-written file."""
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            yield handle
    except OSError as exc:
        if not existed and path.is_file():
            path.unlink(missing_ok=True)
        if exc.filename is None:        # a failed write or close does not say where
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def _free(name: str, headers: list[str]) -> str:
    while name in headers:
        name = f"_{name}"
    return name


def write_rows(path: Path, headers: list[str], rows: list[tuple[list[str], int, str]]) -> None:
    """Write refused rows held in memory (small seed files): cells, row number, reasons."""
    with _writing(path) as handle:
        writer = csv.writer(handle)
        writer.writerow([*headers, _free("row", headers), _free("reason", headers)])
        for cells, row_no, reason in rows:
            writer.writerow([*cells, row_no, reason])
