"""The document register's direct path: a clean CSV checked with Arrow and numpy, COPYed typed.

The checked path (:mod:`etl.ioc_load`) stages every cell as text, types and checks the rows in
SQL and copies them again into ``documents``: three passes over 1.9 million rows on the
database's one core. Most registers that reach the loader are clean, so here the file is parsed
by Arrow, each distinct date, sender, receiver list and channel is resolved once (a register has
a few hundred of each) and spread over the rows with numpy, and the typed rows go by binary
COPY straight into ``documents`` when the register is empty, otherwise into the temporary
``ioc_checked`` table the keyed write of the checked path reads.

This path only says *clean* or *not clean*. At the first row the checked path would refuse, or
at anything it does not take (a legacy encoding, a value it cannot be sure the SQL rules read the
same way), it raises :class:`NotClean` before anything is written, and the load runs on the
checked path, which words every reason and writes the rejects file. ``tests/test_ioc_direct.py``
loads clean and messy registers both ways and compares what is stored and reported.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg import sql

from etl import binary_copy
from etl.direct import utf8_bytes
from etl.readers import Table

# The checked path's date forms (pg_temp.ioc_date), ASCII digits only.
ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})", re.ASCII)
DMY_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})", re.ASCII)
# The checked path splits a receiver list on '\s*[;,]\s*'; here only ASCII blanks are taken
# around a separator, so anything else stays in a code and sends the file the checked way.
RECEIVER_SEPARATOR = re.compile(r"[ \t]*[;,][ \t]*", re.ASCII)
DEFAULT_DOC_TYPE = "văn bản"  # what the checked path stores for an empty type

# The columns of smarttrees.documents the loader writes, in COPY order.
STORED = ("agency_id", "doc_no", "receiver_id", "doc_type", "electronic", "sent_on",
          "commune_code", "courier_saving_vnd")
# The columns of the checked path's ioc_checked table that its keyed write reads.
CHECKED = ("row_no", "agency_id", "doc_no", "receiver_id", "doc_type", "electronic", "sent_on",
           "commune_code")
CHECKED_TABLE = """
CREATE TEMP TABLE ioc_checked (
    row_no bigint, doc_no text, sent_on date, agency_id integer, commune_code text,
    receiver_id integer, also_to integer[], doc_type text, electronic boolean,
    problems text[] NOT NULL DEFAULT '{}'
) ON COMMIT DROP
"""


class NotClean(Exception):
    """The register needs the checked path: a row would be refused, or the input is not plain."""


def eligible(table: Table) -> bool:
    """True for a UTF-8 CSV: the only input this path reads."""
    return table.kind == "csv" and table.encoding.replace("-", "").lower() in ("utf8", "utf8sig")


@dataclass(frozen=True)
class Agency:
    """What a document takes from its sender or receiver."""

    id: int
    commune_code: str | None


@dataclass
class Documents:
    """The register's rows, typed as stored; also_to only where a document has several receivers."""

    agency_id: np.ndarray       # int32
    doc_no: np.ndarray          # UTF-8 bytes (``S``)
    receiver_id: np.ndarray     # int32
    doc_type: np.ndarray        # UTF-8 bytes, never empty
    electronic: np.ndarray      # bool
    sent_on: np.ndarray         # datetime64[D]
    commune_code: np.ndarray    # UTF-8 bytes, empty for none
    also_to: dict[int, list[int]]  # row index → the other receivers' ids, in order

    def __len__(self) -> int:
        return len(self.agency_id)

    def columns(self, rows: slice | np.ndarray, rate: int) -> dict[str, binary_copy.Column]:
        """The ``rows`` as :data:`STORED` columns for ``etl.binary_copy``."""
        electronic = self.electronic[rows]
        return {
            "agency_id": ("int4", self.agency_id[rows]),
            "doc_no": ("text", self.doc_no[rows]),
            "receiver_id": ("int4", self.receiver_id[rows]),
            "doc_type": ("text", self.doc_type[rows]),
            "electronic": ("bool", electronic),
            "sent_on": ("date", self.sent_on[rows]),
            "commune_code": ("text", self.commune_code[rows]),
            "courier_saving_vnd": ("int4", np.where(electronic, rate, 0).astype(np.int32)),
        }


@dataclass(frozen=True)
class Rules:
    """What the checks compare with: the agencies, the channel words, the period."""

    agencies: Mapping[str, Agency]
    channels: Mapping[str, bool]   # a raw channel cell (trimmed) → electronic
    first: dt.date
    last: dt.date


def read(table: Table, columns: Mapping[str, int]) -> pa.Table:
    """The whole register as Arrow text columns (the few-valued ones dictionary-encoded)."""
    names = [f"c{i}" for i in range(len(table.headers))]
    few = {columns[n] for n in ("sent_on", "sender", "receivers", "doc_type", "channel")
           if n in columns}
    types = {name: pa.dictionary(pa.int32(), pa.string()) if i in few else pa.string()
             for i, name in enumerate(names)}
    try:
        return pacsv.read_csv(
            table.path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1,
                                           block_size=table.limits.block_bytes),
            parse_options=pacsv.ParseOptions(delimiter=table.delimiter, newlines_in_values=True,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""],
                                                 strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise NotClean(f"{table.path.name}: {exc}") from exc


def rules(conn: psycopg.Connection[Any], words: Mapping[str, str], channels: list[str],
          period: tuple[dt.date, dt.date]) -> Rules:
    """The agencies stored and the channel cells resolved as the checked path resolves them.

    ``words`` is the checked path's channel vocabulary (term → 'true'/'false'); each cell is
    lower-cased by the database, as the checked path's ``lower()`` does.
    """
    agencies = {code: Agency(int(id_), commune) for code, id_, commune in conn.execute(
        "SELECT code, id, commune_code FROM smarttrees.agencies")}
    resolved: dict[str, bool] = {}
    if channels:
        lowered = conn.execute("SELECT u, lower(u) FROM unnest(%s::text[]) AS u",
                               [channels]).fetchall()
        resolved = {raw: words[low] == "true" for raw, low in lowered if low in words}
    return Rules(agencies, resolved, *period)


def check(register: pa.Table, columns: Mapping[str, int], rules: Rules) -> Documents:
    """The register's rows typed as stored; :class:`NotClean` at the first problem."""
    doc_no = pc.utf8_trim(register.column(f"c{columns['doc_no']}").combine_chunks(),
                          characters=" ")
    if doc_no.null_count or pc.any(pc.equal(pc.binary_length(doc_no), 0)).as_py():
        raise NotClean("a document number is missing")
    if pc.any(pc.match_substring(doc_no, "\x00")).as_py():
        raise NotClean("a NUL character in a document number")
    sender = _resolve(register, columns, "sender", lambda raw: _agency(rules, raw))
    receivers = _resolve(register, columns, "receivers", lambda raw: _receivers(rules, raw))
    sent_on = _resolve(register, columns, "sent_on", lambda raw: _date(rules, raw))
    channel = _resolve(register, columns, "channel", lambda raw: _channel(rules, raw))
    doc_type = (_resolve(register, columns, "doc_type", lambda raw: raw, DEFAULT_DOC_TYPE)
                if "doc_type" in columns else _constant(len(register), DEFAULT_DOC_TYPE))

    agency_id = _spread(sender, [a.id for a in sender.values], np.int32)
    receiver_id = _spread(receivers, [r[0] for r in receivers.values], np.int32)
    lists = receivers.values
    if any(a.commune_code == "" for a in sender.values):
        raise NotClean("an agency's commune code is empty text")
    commune = _spread(sender, [_utf8(a.commune_code or "") for a in sender.values], bytes)
    own = np.array([s.id in r for s in sender.values for r in lists], dtype=bool)
    if own.any():
        pairs = own.reshape(len(sender.values), len(lists))[sender.codes, receivers.codes]
        if pairs.any():
            raise NotClean("a sender receives its own document")
    several = [i for i, r in enumerate(lists) if len(r) > 1]
    also_to: dict[int, list[int]] = {}
    if several:
        for row in np.flatnonzero(np.isin(receivers.codes, several)).tolist():
            also_to[row] = lists[receivers.codes[row]][1:]
    numbers = _bytes(doc_no)
    _require_distinct(agency_id, numbers)
    return Documents(
        agency_id=agency_id, doc_no=numbers, receiver_id=receiver_id,
        doc_type=_spread(doc_type, [_utf8(v) for v in doc_type.values], bytes),
        electronic=_spread(channel, channel.values, bool),
        sent_on=_spread(sent_on, sent_on.values, "datetime64[D]"),
        commune_code=commune, also_to=also_to)


@dataclass(frozen=True)
class _Resolved:
    """A dictionary column resolved: a value per distinct cell, and each row's cell number."""

    values: list[Any]
    codes: np.ndarray


def _resolve(register: pa.Table, columns: Mapping[str, int], name: str, resolve: Any,
             empty: Any = None) -> _Resolved:
    """Resolve each distinct trimmed cell of a dictionary column once; an empty one is ``empty``.

    :class:`NotClean` when a cell is empty and ``empty`` is None, or when ``resolve`` refuses.
    """
    column = register.column(f"c{columns[name]}").unify_dictionaries().combine_chunks()
    if not isinstance(column, pa.DictionaryArray):
        column = pc.dictionary_encode(column)
    values: list[Any] = []
    for raw in column.dictionary.to_pylist():
        cell = raw.strip(" ") if raw is not None else ""
        if cell:
            values.append(resolve(cell))
        elif empty is not None:
            values.append(empty)
        else:
            raise NotClean(f"{name}: an empty cell")
    if column.null_count:
        if empty is None:
            raise NotClean(f"{name}: an empty cell")
        values.append(empty)
    codes = pc.fill_null(column.indices, len(values) - 1).to_numpy(zero_copy_only=False)
    return _Resolved(values, codes.astype(np.int64))


def _constant(n: int, value: str) -> _Resolved:
    return _Resolved([value], np.zeros(n, dtype=np.int64))


def _spread(resolved: _Resolved, values: list[Any], dtype: Any) -> np.ndarray:
    table = np.array(values, dtype=dtype) if values else np.zeros(0, dtype=dtype)
    return table[resolved.codes]


def _bytes(text: pa.Array) -> np.ndarray:
    """A text column without nulls as a numpy ``S`` array of its UTF-8 bytes.

    An ASCII column is padded with NULs to its longest value by Arrow, so its data buffer is
    the ``S`` array itself (no NUL is in a value: checked before).
    """
    if not pc.all(pc.string_is_ascii(text)).as_py() or len(text) == 0:
        return utf8_bytes(text)
    width = max(pc.max(pc.binary_length(text)).as_py() or 1, 1)
    padded = pc.utf8_rpad(text, width, padding="\x00")
    return np.frombuffer(padded.buffers()[2], dtype=f"S{width}", count=len(padded))


def _agency(rules: Rules, code: str) -> Agency:
    agency = rules.agencies.get(code)
    if agency is None:
        raise NotClean("a sender is not a known agency")
    return agency


def _receivers(rules: Rules, raw: str) -> list[int]:
    ids = []
    for code in RECEIVER_SEPARATOR.split(raw):
        agency = rules.agencies.get(code)
        if agency is None:
            raise NotClean("a receiver is not a known agency")
        ids.append(agency.id)
    return ids


def _date(rules: Rules, raw: str) -> np.datetime64:
    if match := ISO_DATE.fullmatch(raw):
        year, month, day = (int(p) for p in match.groups())
    elif match := DMY_DATE.fullmatch(raw):
        day, month, year = (int(p) for p in match.groups())
    else:
        raise NotClean("a date the direct path does not read")
    try:
        day_ = dt.date(year, month, day)
    except ValueError:
        raise NotClean("a date not on the calendar") from None
    if not rules.first <= day_ <= rules.last:
        raise NotClean("a date outside the period")
    return np.datetime64(day_, "D")


def _channel(rules: Rules, raw: str) -> bool:
    if raw not in rules.channels:
        raise NotClean("a channel that is not electronic or postal")
    return rules.channels[raw]


def _require_distinct(agency_id: np.ndarray, doc_no: np.ndarray) -> None:
    """:class:`NotClean` when a sender's document number appears twice.

    Each key is hashed to 64 bits with numpy (a polynomial over its bytes, column by column);
    only rows whose hash repeats are compared exactly.
    """
    n = len(doc_no)
    if n < 2:
        return
    width = doc_no.dtype.itemsize
    matrix = doc_no.view(np.uint8).reshape(n, width)
    h = agency_id.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    for i in range(width):
        h = h * np.uint64(1_099_511_628_211) + matrix[:, i]
    ordered = np.sort(h)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not len(repeated):
        return
    rows = np.flatnonzero(np.isin(h, repeated))
    keys = list(zip(agency_id[rows].tolist(), doc_no[rows].tolist(), strict=True))
    if len(set(keys)) < len(keys):
        raise NotClean("a document number of a sender appears twice")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def channel_cells(register: pa.Table, columns: Mapping[str, int]) -> list[str]:
    """The distinct trimmed channel cells (to be lower-cased by the database)."""
    column = register.column(f"c{columns['channel']}").unify_dictionaries().combine_chunks()
    cells = (column.dictionary if isinstance(column, pa.DictionaryArray)
             else pc.unique(column)).to_pylist()
    return sorted({c.strip(" ") for c in cells if c is not None and c.strip(" ")})


# --- writing ---------------------------------------------------------------------------------


def copy_documents(cur: psycopg.Cursor[Any], docs: Documents, rate: int, *,
                   freeze: bool = False) -> int:
    """COPY the documents into ``smarttrees.documents``; return how many."""
    table = sql.Identifier("smarttrees", "documents")
    # Queued: the server stores one chunk while the next is encoded.
    with binary_copy.open_copy(cur, table, STORED, freeze=freeze, queued=True) as copy:
        for rows in _single_receiver_rows(docs):
            copy.write(binary_copy.binary_rows(list(docs.columns(rows, rate).values()),
                                               keep_order=False))
    _copy_several(cur, table, docs, rate)
    return len(docs)


def _single_receiver_rows(docs: Documents) -> Iterator[slice | np.ndarray]:
    """The rows without ``also_to``, a COPY chunk at a time (slices when that is all of them)."""
    if not docs.also_to:
        for start in range(0, len(docs), binary_copy.CHUNK):
            yield slice(start, start + binary_copy.CHUNK)
        return
    single = np.setdiff1d(np.arange(len(docs)), np.fromiter(docs.also_to, dtype=np.int64))
    for start in range(0, len(single), binary_copy.CHUNK):
        yield single[start : start + binary_copy.CHUNK]


def copy_checked(cur: psycopg.Cursor[Any], docs: Documents) -> None:
    """The documents as the checked path's ``ioc_checked`` table (for its keyed write)."""
    cur.execute(CHECKED_TABLE)
    table = sql.Identifier("ioc_checked")
    with binary_copy.open_copy(cur, table, CHECKED, queued=True) as copy:
        for rows in _single_receiver_rows(docs):
            stored = docs.columns(rows, 0)
            numbers = np.arange(len(docs))[rows] + 2
            columns = [("int8", numbers), *(stored[name] for name in CHECKED[1:])]
            copy.write(binary_copy.binary_rows(columns, keep_order=False))
    _copy_several(cur, table, docs, None)


def _copy_several(cur: psycopg.Cursor[Any], table: sql.Identifier, docs: Documents,
                  rate: int | None) -> None:
    """The documents with several receivers, their ``also_to`` as array text (CSV COPY)."""
    if not docs.also_to:
        return
    names = [*(n for n in STORED if rate is not None or n != "courier_saving_vnd"), "also_to"]
    if rate is None:
        names.insert(0, "row_no")
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        table, sql.SQL(", ").join(map(sql.Identifier, names)))
    text = io.StringIO()
    for row, others in docs.also_to.items():
        values: list[object] = [
            int(docs.agency_id[row]), docs.doc_no[row].decode(), int(docs.receiver_id[row]),
            docs.doc_type[row].decode(), "t" if docs.electronic[row] else "f",
            str(docs.sent_on[row]), docs.commune_code[row].decode()]
        if rate is not None:
            values.append(rate if docs.electronic[row] else 0)
        else:
            values.insert(0, row + 2)
        values.append("{" + ",".join(map(str, others)) + "}")
        text.write(",".join(_csv_cell(v) for v in values) + "\n")
    with cur.copy(statement) as copy:
        copy.write(text.getvalue())


def _csv_cell(value: object) -> str:
    """A CSV cell for COPY: '' unquoted is NULL; text is always quoted."""
    if value == "":
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return str(value)


@contextmanager
def without_key(cur: psycopg.Cursor[Any]) -> Iterator[None]:
    """The register's primary key dropped while an empty register is filled, then rebuilt.

    Its ids come from the identity column, so they cannot repeat; one index build after the
    COPY costs a third of keeping the index row by row. Nothing references a document.
    """
    cur.execute("ALTER TABLE smarttrees.documents DROP CONSTRAINT documents_pkey")
    yield
    cur.execute("ALTER TABLE smarttrees.documents ADD CONSTRAINT documents_pkey PRIMARY KEY (id)")
