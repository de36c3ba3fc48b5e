"""The IOC's loaders: agencies, the document register, citizen-support cases, planting targets.

CSV or XLSX.

The ETL's rules: the file is staged as text (a UTF-8 CSV is streamed to the server as it is,
``COPY … FORMAT csv``, so a 1.9 M-row register never passes through Python row by row), every
row is checked in SQL, refused rows go to a rejects file with the row and the reasons, the
write is one transaction keyed on the source's key (agency code; sender and document number;
case number) with unchanged rows left alone, and the IOC layers are refreshed in the same
transaction. ``strict`` writes nothing if any row is bad; ``dry_run`` checks only.

A document register in UTF-8 CSV is first tried on the direct path (:mod:`etl.ioc_direct`:
Arrow reads it, numpy checks it, binary COPY writes it); at the first row that path is not sure
of, the load runs here instead, so every refused row is reported as described above.

Citizen-support files hold personal data: their reasons name the row and the field, never the
value, and their rejects file holds only the case number, the row and the reasons.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from etl import ioc_direct, report, stage
from etl.errors import InputError
from etl.ioc_load_sql import (
    CHECKS,
    DATE_FUNCTION,
    DOCUMENTS_FIRST,
    DOCUMENTS_INSERT,
    DOCUMENTS_MERGE,
    DOCUMENTS_WRITTEN,
    UPSERTS,
)
from etl.ioc_reference import load_provinces, read_provinces
from etl.readers import csv_text, open_table
from etl.seed import SeedResult
from etl.synthetic.load import bulk_load
from smarttrees import ioc, territory
from smarttrees.database import connect
from smarttrees.domain import fold
from smarttrees.settings import Settings, get_settings

FILE_NO = 1  # one file per run: its staging table is load_raw_1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Field:
    """A field of a source file and the headers it may come under."""

    name: str
    aliases: tuple[str, ...]
    required: bool = False


FIELDS: dict[str, tuple[Field, ...]] = {
    "agencies": (
        Field("code", ("Mã cơ quan", "Mã đơn vị", "code", "agency_code"), required=True),
        Field("name", ("Tên cơ quan", "Tên đơn vị", "name"), required=True),
        Field("level", ("Cấp", "Cấp hành chính", "level"), required=True),
        Field("commune", ("Mã xã", "Mã xã/phường", "commune_code", "commune")),
        Field("address", ("Địa chỉ", "address")),
        Field("lon", ("Kinh độ", "lon", "longitude")),
        Field("lat", ("Vĩ độ", "lat", "latitude")),
    ),
    "documents": (
        Field("doc_no", ("Số ký hiệu", "Số văn bản", "Số hiệu", "doc_no", "number"),
              required=True),
        Field("sent_on", ("Ngày văn bản", "Ngày gửi", "Ngày ban hành", "date", "sent_on"),
              required=True),
        Field("sender", ("Cơ quan gửi", "Mã cơ quan gửi", "Nơi gửi", "sender"), required=True),
        Field("receivers", ("Cơ quan nhận", "Mã cơ quan nhận", "Nơi nhận", "receivers",
                            "receiver"), required=True),
        Field("doc_type", ("Loại văn bản", "type", "doc_type")),
        Field("channel", ("Hình thức gửi", "Hình thức", "Kênh gửi", "channel"), required=True),
    ),
    "citizen-support": (
        Field("case_no", ("Mã hồ sơ", "Số hồ sơ", "case_no"), required=True),
        Field("full_name", ("Họ và tên", "Họ tên", "full_name", "name"), required=True),
        Field("national_id", ("Số CCCD", "Số định danh cá nhân", "CCCD", "national_id"),
              required=True),
        Field("phone", ("Số điện thoại", "Điện thoại", "SĐT", "phone")),
        Field("bank_account", ("Số tài khoản", "Tài khoản ngân hàng", "bank_account")),
        Field("commune", ("Mã xã thường trú", "Mã xã", "commune_code", "home_commune"),
              required=True),
        Field("province", ("Tỉnh nơi mắc kẹt", "Tỉnh/thành phố nơi mắc kẹt", "Nơi mắc kẹt",
                           "stranded_province", "province"), required=True),
        Field("amount", ("Số tiền (đồng)", "Số tiền hỗ trợ", "Số tiền", "amount_vnd", "amount"),
              required=True),
        Field("paid_on", ("Ngày chi trả", "Ngày nhận", "paid_on"), required=True),
        Field("status", ("Trạng thái", "status")),
        Field("channel", ("Kênh đăng ký", "Hình thức đăng ký", "Kênh", "channel")),
        Field("support_type", ("Loại hỗ trợ", "support_type")),
    ),
    "targets": (
        Field("commune", ("Mã xã", "Mã xã/phường", "Mã đơn vị hành chính", "commune_code",
                          "commune"), required=True),
        Field("target", ("Chỉ tiêu", "Chỉ tiêu trồng cây", "Chỉ tiêu số cây", "Số cây mục tiêu",
                         "target", "planting_target"), required=True),
    ),
}
KINDS = tuple(FIELDS)
PERSONAL_KINDS = frozenset({"citizen-support"})

# Words a source may use for a value, by vocabulary: Vietnamese (with or without diacritics)
# and English. Matched on the lower-cased, trimmed cell.
VOCABULARIES: dict[str, dict[str, str]] = {
    "level": {
        "tỉnh": "province", "ubnd tỉnh": "province", "province": "province",
        "sở": "department", "sở, ngành": "department", "ngành": "department",
        "department": "department", "huyện": "department",
        "xã": "commune", "phường": "commune", "thị trấn": "commune", "commune": "commune",
        "xã, phường": "commune",
    },
    "doc_channel": {
        "điện tử": "true", "văn bản điện tử": "true", "trục tuyến": "true", "trực tuyến": "true",
        "electronic": "true", "e": "true", "bưu chính": "false", "bưu điện": "false",
        "giấy": "false", "bản giấy": "false", "postal": "false", "paper": "false",
        "courier": "false",
    },
    "status": {
        "đã tiếp nhận": "received", "tiếp nhận": "received", "received": "received",
        "đã xác minh": "verified", "xác minh": "verified", "verified": "verified",
        "đã chi trả": "paid", "chi trả": "paid", "đã chi": "paid", "paid": "paid",
        "từ chối": "rejected", "không đủ điều kiện": "rejected", "rejected": "rejected",
    },
    "support_channel": {
        "web": "web", "cổng thông tin": "web", "cổng dịch vụ công": "web", "website": "web",
        "app": "app", "ứng dụng": "app", "c-thainguyen": "app", "ứng dụng c-thainguyen": "app",
    },
}


def _vocabulary_rows() -> list[tuple[str, str, str]]:
    rows: set[tuple[str, str, str]] = set()
    for vocabulary, words in VOCABULARIES.items():
        for word, value in words.items():
            rows |= {(vocabulary, word.lower(), value), (vocabulary, fold(word), value)}
    for code, name, _, _ in read_provinces():
        for word in {code, name, name.removeprefix("Thành phố ")}:
            rows |= {("province", word.lower(), code), ("province", fold(word), code)}
    return sorted(rows)


def match_columns(kind: str, path: Path, headers: list[str]) -> dict[str, int]:
    """Which column feeds each field; a required field without a column is an InputError."""
    folded = [fold(h) for h in headers]
    found: dict[str, int] = {}
    for f in FIELDS[kind]:
        index = next((folded.index(fold(a)) for a in f.aliases if fold(a) in folded), None)
        if index is not None:
            found[f.name] = index
        elif f.required:
            raise InputError(path, f"no column for {f.name}: expected one of "
                             f"{', '.join(repr(a) for a in f.aliases)}", row=1)
    return found


def load(kind: str, url: str | None, path: Path, *, dry_run: bool = False, strict: bool = False,
         rejects: Path | None = None, period: tuple[dt.date, dt.date] | None = None,
         settings: Settings | None = None, direct: bool = True) -> SeedResult:
    """Load one file of ``kind`` (agencies, documents, citizen-support, targets); all or nothing.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    url
        Database URL; ``None`` = the settings' database.
    path
        A CSV (UTF-8, or a legacy Vietnamese encoding) or XLSX file, Vietnamese or English
        headers.
    dry_run, strict
        Check only; or write nothing when one row is refused.
    rejects
        Where the refused rows go (default ``FILE.rejects.csv``).
    period
        Dates a document or a payment may have (default: 2000-01-01 to today).
    settings
        Courier cost and privacy threshold the refreshed layers apply.
    direct
        Try the direct path first for a document register in UTF-8 CSV
        (:mod:`etl.ioc_direct`); False: the checked path only.

    """
    if kind not in FIELDS:
        raise InputError(path, f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
    table = open_table(path)
    if table.kind not in ("csv", "xlsx"):
        raise InputError(path, "a CSV or XLSX file is expected")
    columns = match_columns(kind, path, table.headers)
    first, last = period or (dt.date(2000, 1, 1), dt.date.today())
    settings = settings or get_settings()
    if direct and kind == "documents" and not dry_run and ioc_direct.eligible(table):
        try:
            return _load_direct(url, table, columns, (first, last), settings)
        except ioc_direct.NotClean as exc:  # nothing written: the checked path words it all
            log.info("%s: checked path (%s)", path.name, exc)
    result = SeedResult(kind, path)
    with connect(url) as conn:
        # Temporary tables live in this session's own buffers: room for a large register.
        conn.execute("SET temp_buffers = '256MB'")
        started = time.perf_counter()
        _stage(conn, table)
        log.info("%s staged in %.1f s", path.name, time.perf_counter() - started)
        started = time.perf_counter()
        _check(conn, kind, columns, table.headers, (first, last))
        log.info("%s checked in %.1f s", path.name, time.perf_counter() - started)
        result.rows, result.refused = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE cardinality(problems) > 0) FROM ioc_checked"
        ).fetchone() or (0, 0)
        if result.refused:
            result.rejects_path = rejects or report.default_path(path)
            _write_rejects(conn, kind, table.headers, columns, result.rejects_path)
        write = not dry_run and not (strict and result.refused)
        if write:
            result.inserted, result.updated = _upsert(conn, kind, settings, path.name)
            result.unchanged = result.rows - result.refused - result.inserted - result.updated
            result.written = True
        else:
            conn.rollback()
            if dry_run:
                result.unchanged = result.rows - result.refused
    return result


def _load_direct(url: str | None, table: Any, columns: dict[str, int],
                 period: tuple[dt.date, dt.date], settings: Settings) -> SeedResult:
    """A clean UTF-8 register, checked with Arrow and numpy and COPYed typed (etl.ioc_direct).

    Raises :class:`etl.ioc_direct.NotClean`, before anything is written, when a row would be
    refused.
    """
    result = SeedResult("documents", table.path)
    started = time.perf_counter()
    register = ioc_direct.read(table, columns)
    log.info("%s read in %.1f s", table.path.name, time.perf_counter() - started)
    with connect(url) as conn:
        started = time.perf_counter()
        words = {term: value for vocabulary, term, value in _vocabulary_rows()
                 if vocabulary == "doc_channel"}
        rules = ioc_direct.rules(conn, words, ioc_direct.channel_cells(register, columns), period)
        docs = ioc_direct.check(register, columns, rules)
        del register
        log.info("%s checked in %.1f s", table.path.name, time.perf_counter() - started)
        started = time.perf_counter()

        def first_load(cur: psycopg.Cursor[Any]) -> int:
            with bulk_load(cur, "smarttrees.documents") as fresh, ioc_direct.without_key(cur):
                return ioc_direct.copy_documents(cur, docs, settings.courier_cost_vnd,
                                                 freeze=fresh)

        def staged(cur: psycopg.Cursor[Any]) -> None:
            ioc_direct.copy_checked(cur, docs)

        result.rows = len(docs)
        result.inserted, result.updated = _write_documents(conn, settings, first_load, staged)
        result.unchanged = result.rows - result.inserted - result.updated
        result.written = True
        log.info("documents: %d inserted, %d updated in %.1f s", result.inserted,
                 result.updated, time.perf_counter() - started)
        _refresh(conn, "documents", settings)
    return result


def _stage(conn: psycopg.Connection[Any], table: Any) -> None:
    stage.create_raw(conn, FILE_NO, len(table.headers))
    try:
        with conn.transaction():
            if table.kind == "csv" and table.encoding.replace("-", "").lower() in ("utf8",
                                                                                   "utf8sig"):
                stage.copy_csv_bytes(conn, table, FILE_NO)
            else:
                _copy_chunks(conn, table)
    except (psycopg.errors.BadCopyFileFormat, psycopg.errors.CharacterNotInRepertoire,
            psycopg.errors.UntranslatableCharacter) as exc:
        raise stage.check_width(table, conn, exc) from None


def _copy_chunks(conn: psycopg.Connection[Any], table: Any) -> None:
    names = sql.SQL(", ").join(stage.cell(i) for i in range(len(table.headers)))
    statement = sql.SQL("COPY {} (row_no, {}) FROM STDIN (FORMAT csv)").format(
        stage.raw_table(FILE_NO), names)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for chunk in table.chunks():
            frame = chunk.cells.copy()
            frame.insert(0, "row_no", chunk.row_no)
            copy.write(csv_text(frame))


def _check(conn: psycopg.Connection[Any], kind: str, columns: dict[str, int],
           headers: list[str], period: tuple[dt.date, dt.date]) -> None:
    """Type every staged row into ``ioc_checked`` with the reasons it is refused, if any.

    A reason names the field as the file's header does (the field's name when the file has no
    such column).
    """
    conn.execute(DATE_FUNCTION)
    conn.execute("SET LOCAL work_mem = '256MB'")  # the duplicate check hashes every key
    conn.execute("CREATE TEMP TABLE ioc_vocabulary (vocabulary text, term text, value text, "
                 "PRIMARY KEY (vocabulary, term)) ON COMMIT DROP")
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO ioc_vocabulary VALUES (%s, %s, %s)", _vocabulary_rows())
    values: dict[str, sql.Composable] = {}
    params: dict[str, Any] = {"first": period[0], "last": period[1]}
    for f in FIELDS[kind]:
        if f.name in columns:
            values[f.name] = sql.SQL("nullif(btrim(r.{}), '')").format(stage.cell(columns[f.name]))
            params[f"label_{f.name}"] = headers[columns[f.name]]
        else:
            values[f.name] = sql.SQL("NULL::text")
            params[f"label_{f.name}"] = f.name
    if "lon" in columns or "lat" in columns:
        territory.current(conn)   # refuses, saying how to set one, when there is none
    conn.execute(sql.SQL(CHECKS[kind]).format(raw=stage.raw_table(FILE_NO), **values), params)


def _write_rejects(conn: psycopg.Connection[Any], kind: str, headers: list[str],
                   columns: dict[str, int], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        if kind in PERSONAL_KINDS:
            # The case number, the row and the reasons: nothing that names or reaches a person.
            writer.writerow([headers[columns["case_no"]], "row", "reason"])
            query = sql.SQL(
                "SELECT r.{case}, c.row_no, array_to_string(c.problems, '; ') "
                "FROM ioc_checked c JOIN {raw} r USING (row_no) "
                "WHERE cardinality(c.problems) > 0 ORDER BY c.row_no"
            ).format(case=stage.cell(columns["case_no"]), raw=stage.raw_table(FILE_NO))
        else:
            writer.writerow([*headers, "row", "reason"])
            query = sql.SQL(
                "SELECT {cells}, c.row_no, array_to_string(c.problems, '; ') "
                "FROM ioc_checked c JOIN {raw} r USING (row_no) "
                "WHERE cardinality(c.problems) > 0 ORDER BY c.row_no"
            ).format(cells=sql.SQL(", ").join(sql.SQL("r.{}").format(stage.cell(i))
                                              for i in range(len(headers))),
                     raw=stage.raw_table(FILE_NO))
        for row in conn.execute(query):
            writer.writerow(["" if v is None else v for v in row])


def _upsert(conn: psycopg.Connection[Any], kind: str, settings: Settings,
            source: str) -> tuple[int, int]:
    """Write the good rows; return (inserted, updated); refresh the IOC layers."""
    started = time.perf_counter()
    if kind == "documents":
        inserted, updated = _write_documents(
            conn, settings, lambda cur: _insert_checked(cur, settings.courier_cost_vnd), None)
    else:
        if kind == "citizen-support":
            load_provinces(conn)
        params = {"rate": settings.courier_cost_vnd, "source": source}
        row = conn.execute(UPSERTS[kind], params).fetchone()
        inserted, updated = (int(row[0]), int(row[1])) if row else (0, 0)
    log.info("%s: %d inserted, %d updated in %.1f s", kind, inserted, updated,
             time.perf_counter() - started)
    _refresh(conn, kind, settings)
    return inserted, updated


def _refresh(conn: psycopg.Connection[Any], kind: str, settings: Settings) -> None:
    started = time.perf_counter()
    # Support views are live, targets are joined where they are read: only the version moves.
    views = ioc.DOCUMENT_VIEWS if kind in ("agencies", "documents") else ()
    ioc.refresh(conn, settings, views)
    log.info("IOC layers refreshed in %.1f s", time.perf_counter() - started)


def _insert_checked(cur: psycopg.Cursor[Any], rate: int) -> int:
    """The checked rows into an empty register; indexes and the foreign key rebuilt once."""
    with bulk_load(cur, "smarttrees.documents"):
        cur.execute(sql.SQL(DOCUMENTS_INSERT).format(
            source=sql.SQL("(" + DOCUMENTS_FIRST + ") AS f"), where=sql.SQL("true")),
            {"rate": rate})
        return cur.rowcount


def _write_documents(conn: psycopg.Connection[Any], settings: Settings,
                     first_load: Callable[[psycopg.Cursor[Any]], int],
                     staged: Callable[[psycopg.Cursor[Any]], None] | None) -> tuple[int, int]:
    """Insert the new documents and update the changed ones, set-based; (inserted, updated).

    ``first_load`` writes the rows into an empty register and says how many; otherwise the
    rows are matched by key from ``ioc_checked``, which ``staged`` makes (None: made already).
    """
    params = {"rate": settings.courier_cost_vnd}
    # One loader at a time (readers go on); a second waits, then sees the first's rows.
    conn.execute("LOCK TABLE smarttrees.documents IN SHARE ROW EXCLUSIVE MODE")
    stored = conn.execute("SELECT EXISTS (SELECT FROM smarttrees.documents)").fetchone()
    with conn.cursor() as cur:
        if stored == (False,):
            inserted, updated = first_load(cur), 0
        else:
            if staged is not None:
                staged(cur)
            cur.execute("SET LOCAL work_mem = '256MB'")  # the key join hashes every row
            before = cur.execute(DOCUMENTS_WRITTEN).fetchone() or (0, 0)
            cur.execute(DOCUMENTS_MERGE, params)
            after = cur.execute(DOCUMENTS_WRITTEN).fetchone() or (0, 0)
            inserted, updated = after[0] - before[0], after[1] - before[1]
        cur.execute("ANALYZE smarttrees.documents")
    return inserted, updated
