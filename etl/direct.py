"""The direct path: a clean survey CSV checked in Python, column by column, and COPYed typed.

Most surveys that reach the loader are clean. For them the checked path (``etl.validate``:
every cell staged as text, typed and checked in SQL, then copied again into ``trees``) costs
three passes over the rows on the database's one core. Here the file is parsed by Arrow, each
batch is checked with numpy in this process while the server stores the previous one, and the
typed rows go by binary COPY straight into ``trees`` when the inventory is empty
(:func:`load_into_empty`), otherwise into the staging table the merge reads
(:func:`stage_checked`).

This path only says *clean* or *not clean*. At the first row the checked path would refuse, or
at anything it does not take (an encoding other than UTF-8, a GIS file, a number Arrow cannot
read, a fixed value other than category or source…), it raises :class:`NotClean` and the load
is run again on the checked path, which words the problems and writes the rejects file. The
rules are those of ``etl.validate`` and share its constants and its resolution of names, dates
and vocabularies; ``tests/test_load_direct.py`` loads clean and messy surveys both ways and
compares everything stored and reported.
"""

from __future__ import annotations

import io
import logging
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, NoReturn

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

from etl import arrow_readers, attributes, binary_copy, digests, merge, validate
from etl import crs as crsmod
from etl.mappings import Mapping
from etl.readers import CheckedStream, Table

log = logging.getLogger(__name__)

BLOCK_BYTES = 8 << 20           # Arrow's read unit: about 80,000 survey rows
HISTORY_IN_MEMORY = 256 << 20   # encoded history rows kept in memory; beyond, a temporary file
INSERT_TRIGGERS_DONE_HERE = ("trees_history_insert", "trees_in_territory_insert",
                             "trees_count_insert")
MAX_SOURCE_BYTES = 1024         # a longer source text is stored by the checked path
# How resolved lookup values are typed, and the empty value of each kind.
TYPES: dict[str, tuple[Callable[[str], object], object]] = {
    "text": (str, ""), "id": (int, -1), "number": (float, np.nan),
    "date": (np.datetime64, np.datetime64("NaT", "D")),
}
LOOKUP_COLUMNS = ("species", "category", "condition", "planted_on", "planted_year",
                  "height_class")
# Fixed values the direct path applies itself; any other fixed field goes the checked way.
FIXABLE = frozenset({"category", "source"})


Tick = Callable[[int], None]


class NotClean(Exception):
    """The file needs the checked path: a row would be refused, or the input is not plain."""


def eligible(table: Table, plan: validate.FilePlan) -> bool:
    """True for a CSV or GIS layer the direct path reads, with fixed values it applies.

    A CSV (in any encoding :func:`read_batches` decodes) or a workbook must have coordinate
    columns; a GIS layer must hold points.
    """
    readable = (table.kind in ("csv", "xlsx") and bool(position_columns(plan))
                or arrow_readers.point_layer(table))
    return readable and set(plan.mapping.fixed) <= FIXABLE


def batches(table: Table, plan: validate.FilePlan,
            tick: Tick | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows in Arrow batches typed for the checker: a CSV, a workbook, a GIS layer.

    A GIS layer's points are its batches' two last columns (``plan`` is then the one of
    :func:`etl.arrow_readers.vector_plan`).
    """
    if table.kind == "csv":
        yield from read_batches(table, plan.columns, tick)
        return
    vector = table.kind == "vector"
    numbers = {plan.columns[n] for n in validate.NUMBER_FIELDS
               if n in plan.columns and not (vector and n in ("x", "y"))}
    lookups = {plan.columns[n] for n in LOOKUP_COLUMNS if n in plan.columns}
    try:
        if vector:
            yield from arrow_readers.read_vector_batches(table, plan.columns, numbers, lookups,
                                                         tick)
        else:
            yield from arrow_readers.read_xlsx_batches(table, numbers, lookups, tick)
    except arrow_readers.Unreadable as exc:
        raise NotClean(f"{table.path.name}: {exc}") from exc


def position_columns(plan: validate.FilePlan) -> tuple[str, str] | None:
    """The fields that place a tree: X/Y when the file has them, else longitude/latitude.

    The same choice as the checked path's (``etl.trees._coordinates``).
    """
    for pair in (("x", "y"), ("lon", "lat")):
        if all(name in plan.columns for name in pair):
            return pair
    return None


@dataclass
class Rows:
    """One batch of checked rows, typed as stored (NaN, NaT and '' stand for NULL)."""

    tree_code: np.ndarray
    category: np.ndarray
    species_id: np.ndarray
    dbh_cm: np.ndarray
    height_m: np.ndarray
    crown_m: np.ndarray
    condition: np.ndarray
    planted_on: np.ndarray
    commune_code: np.ndarray
    source: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    attributes: np.ndarray      # JSON text of the columns the mapping does not know (b'': none)

    def __len__(self) -> int:
        return len(self.tree_code)

    def stored(self, source_crs: str, digests: np.ndarray) -> list[binary_copy.Column]:
        """The columns of :data:`STORED`, as ``etl.binary_copy`` encodes them."""
        return [("text", self.tree_code), ("text", self.category), ("int4", self.species_id),
                ("float4", self.dbh_cm), ("float4", self.height_m), ("float4", self.crown_m),
                ("text", self.condition), ("date", self.planted_on),
                ("text", self.commune_code), ("text", self.source),
                ("text", np.full(len(self), source_crs)),
                ("geometry", np.column_stack([self.lon, self.lat])),
                ("jsonb", self.attributes), ("int8", digests)]


@dataclass
class Lookups:
    """Each distinct raw value of a lookup field resolved once, for the whole run."""

    mapping: Mapping
    species: validate.SpeciesIndex
    seen: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)

    def resolve(self, name: str, raw: str) -> tuple[str | None, str | None]:
        """(value, problem) of one raw value, as ``etl.validate.resolve_lookups`` stages it."""
        key = (name, raw)
        if key not in self.seen:
            self.seen[key] = validate.resolve_one(name, raw, self.mapping, self.species)
        return self.seen[key]


class Communes:
    """The communes in force, for assigning each point its commune as the checked path does."""

    def __init__(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT code, ST_AsBinary(geom) FROM smarttrees.communes "
                            "ORDER BY code").fetchall()
        self.codes = np.array([r[0] for r in rows] + [""])     # the last: no commune
        self.shapes = shapely.from_wkb([r[1] for r in rows])
        shapely.prepare(self.shapes)
        self.bounds = shapely.bounds(self.shapes)

    def of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Code of the first commune (by code) each point intersects; '' where none.

        Each commune in code order tests the points still without one inside its bounding box
        (prepared geometry, no point objects): three times faster than an STRtree query.
        """
        none = len(self.codes) - 1
        found = np.full(len(lon), none)
        for i, (shape, (x0, y0, x1, y1)) in enumerate(zip(self.shapes, self.bounds, strict=True)):
            near = np.flatnonzero((found == none) & (lon >= x0) & (lon <= x1)
                                  & (lat >= y0) & (lat <= y1))
            if len(near):
                found[near[shapely.intersects_xy(shape, lon[near], lat[near])]] = i
        return self.codes[found]


def read_batches(table: Table, columns: dict[str, int],
                 tick: Tick | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows in Arrow batches: number columns typed, the others as text.

    ``tick`` is told how many bytes of the file each batch took (for a progress bar).
    """
    names = [f"c{i}" for i in range(len(table.headers))]
    numbers = {columns[n] for n in validate.NUMBER_FIELDS if n in columns}
    lookups = {columns[n] for n in LOOKUP_COLUMNS if n in columns}
    types = {name: pa.float64() if i in numbers
             else pa.dictionary(pa.int32(), pa.string()) if i in lookups else pa.string()
             for i, name in enumerate(names)}
    options = {
        # One thread: the other core is the server's, storing the previous batch.
        # A block holds whole rows: the checked stream (etl.limits) bounds them to half of one.
        # A legacy encoding (TCVN3, VNI, Windows-1258: etl.encodings) is decoded by Arrow
        # through the Python codec as the bytes come in.
        "read_options": pacsv.ReadOptions(column_names=names, skip_rows=1,
                                          block_size=table.limits.block_bytes,
                                          use_threads=False, encoding=arrow_encoding(table)),
        "parse_options": pacsv.ParseOptions(delimiter=table.delimiter, newlines_in_values=True,
                                            ignore_empty_lines=False),
        # Only an empty cell is empty: "NA" or "null" in a number column is not a number.
        "convert_options": pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=False,
            decimal_point=decimal_mark(table, sorted(numbers))),
    }
    try:
        # Through the limits' checks (the tree loader opens CSVs without the scan at open).
        with CheckedStream(table) as handle:
            done = 0
            for batch in pacsv.open_csv(handle, **options):
                yield composed(batch) if decomposed_tones(table) else batch
                if tick:
                    tick(handle.tell() - done)
                    done = handle.tell()
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise NotClean(f"{table.path.name}: {exc}") from exc


def arrow_encoding(table: Table) -> str:
    """The encoding Arrow is told: its own UTF-8 reader (a BOM is skipped), else the codec's."""
    return "utf8" if table.encoding in ("utf-8", "utf-8-sig") else table.encoding


def decomposed_tones(table: Table) -> bool:
    """True for Windows-1258, which writes tones as combining marks after the letter."""
    return table.encoding.replace("-", "").lower() == "cp1258"


def composed(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch's text with tones composed (NFC), as Unicode and the catalogue write them."""
    columns = []
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            column = pa.DictionaryArray.from_arrays(
                column.indices, pc.utf8_normalize(column.dictionary, form="NFC"))
        elif pa.types.is_string(column.type):
            column = pc.utf8_normalize(column, form="NFC")
        columns.append(column)
    return pa.record_batch(columns, names=batch.schema.names)


SAMPLE_BYTES = 1 << 20        # read to tell a file's decimal mark
_COMMA_NUMBER = re.compile(r"^[+-]?[0-9]*,[0-9]+$")
_POINT_NUMBER = re.compile(r"^[+-]?[0-9]*\.[0-9]+$")


def decimal_mark(table: Table, numbers: list[int]) -> str:
    """``","`` for a file whose number columns are written with decimal commas ("8,6"), else ".".

    Told from the first megabyte: commas and no points in its number cells. A file mixing both
    is read with points; its comma cells then fail Arrow's parse and the file goes the checked
    way, which reads both.
    """
    if not numbers:
        return "."
    with table.path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    cut = sample.rfind(b"\n")
    if cut <= 0:
        return "."
    names = [f"c{i}" for i in range(len(table.headers))]
    try:
        head = pacsv.read_csv(
            io.BytesIO(sample[:cut + 1]),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False,
                                           encoding=arrow_encoding(table)),
            parse_options=pacsv.ParseOptions(delimiter=table.delimiter, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f"c{i}": pa.string() for i in numbers},
                include_columns=[f"c{i}" for i in numbers]))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return "."
    cells = [str(v).strip() for column in head.columns for v in column.unique().to_pylist()
             if v is not None]
    commas = any(_COMMA_NUMBER.match(c) for c in cells)
    points = any(_POINT_NUMBER.match(c) for c in cells)
    return "," if commas and not points else "."


@dataclass
class Checker:
    """Checks one file's batches, as ``etl.validate.check_sql`` does, and types their rows."""

    plan: validate.FilePlan
    lookups: Lookups
    communes: Communes | None
    rows_before: int = 0

    def check(self, batch: pa.RecordBatch) -> Rows:
        """The batch's rows typed as stored; :class:`NotClean` at the first problem."""
        n = batch.num_rows
        code = self._text(batch, "tree_code")
        if code is None:
            self._refuse("no tree code")
        self._require(~pc.is_null(code).to_numpy(zero_copy_only=False), "tree code missing")
        self._require(pc.less_equal(pc.utf8_length(code), 64).to_numpy(zero_copy_only=False),
                      "tree code longer than 64 characters")
        species = self._lookup(batch, "species", "id")
        self._require(species >= 0, "species missing")
        category = self._category(batch, n)
        condition = self._lookup(batch, "condition")
        planted = self._lookup(batch, "planted_on", "date")
        planted = np.where(np.isnat(planted), self._lookup(batch, "planted_year", "date"),
                           planted)
        lon, lat = self._position(batch)
        sizes = self._sizes(batch)
        source = self._text(batch, "source")
        fixed_source = self.plan.mapping.fixed.get("source")
        if fixed_source is not None or source is None:
            sources = np.full(n, fixed_source or self.plan.name)
        else:
            # One byte matrix of the longest width: a long source text goes the checked way.
            if (pc.max(pc.binary_length(source)).as_py() or 0) > MAX_SOURCE_BYTES:
                self._refuse("a source text longer than the direct path takes")
            sources = utf8_bytes(pc.fill_null(source, self.plan.name))
        self.rows_before += n
        return Rows(
            tree_code=utf8_bytes(code), category=category,
            species_id=species,
            dbh_cm=sizes["dbh"], height_m=sizes["height"], crown_m=sizes["crown"],
            condition=condition, planted_on=planted,
            commune_code=(self.communes.of(lon, lat) if self.communes else np.full(n, "")),
            source=sources, lon=lon, lat=lat,
            attributes=utf8_bytes(attributes.objects(batch, self.plan.extra)))

    # -- one kind of field each --------------------------------------------------------------

    def column(self, batch: pa.RecordBatch, name: str) -> pa.Array | None:
        """The column of a batch feeding a field, if the file has one."""
        index = self.plan.columns.get(name)
        return None if index is None else batch.column(index)

    def _text(self, batch: pa.RecordBatch, name: str) -> pa.Array | None:
        """Trimmed text of a column, empty → null (``nullif(btrim(cell), '')``)."""
        column = self.column(batch, name)
        if column is None:
            return None
        trimmed = pc.utf8_trim(column, characters=" ")
        return pc.if_else(pc.equal(trimmed, ""), None, trimmed)

    def _lookup(self, batch: pa.RecordBatch, name: str, kind: str = "text") -> np.ndarray:
        """Resolved values of a lookup field, typed; refuses an unknown value.

        Empty cells give the kind's empty value ('' for text, -1 for ids, NaN, NaT). Each
        distinct value of the batch is resolved and typed once, then spread over the rows.
        """
        convert, empty = TYPES[kind]
        column = self.column(batch, name)
        if column is None:
            return np.full(batch.num_rows, empty)
        dictionary = column.dictionary.to_pylist()
        values = [empty] * (len(dictionary) + 1)              # the last: a null cell
        for i, raw in enumerate(dictionary):
            raw = raw.strip(" ")
            if not raw:
                continue
            value, problem = self.lookups.resolve(name, raw)
            if problem is not None or value is None:
                self._refuse(f"{self.plan.label(name)}: {validate.shown(raw)} {problem}")
            values[i] = convert(value)
        return np.array(values)[pc.fill_null(column.indices, len(dictionary)).to_numpy()]

    def _category(self, batch: pa.RecordBatch, n: int) -> np.ndarray:
        fixed = self.plan.mapping.fixed.get("category")
        if fixed is not None:
            return np.full(n, fixed)
        category = self._lookup(batch, "category")
        default = self.plan.mapping.defaults.get("category")
        if default is not None:
            category = np.where(category == "", default, category)
        self._require(category != "", "category missing")
        return category

    def _number(self, batch: pa.RecordBatch, name: str) -> np.ndarray:
        """A number column as float64 (NaN: empty); refuses NaN and infinities written out."""
        column = self.column(batch, name)
        if column is None:
            return np.full(batch.num_rows, np.nan)
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
        self._require(np.isfinite(values) | pc.is_null(column).to_numpy(zero_copy_only=False),
                      f"{self.plan.label(name)} not a finite number")
        return values

    def _position(self, batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
        """WGS 84 longitude and latitude of each row, reprojected as the checked path does."""
        x_name, y_name = position_columns(self.plan) or ("lon", "lat")
        for name in ("x", "y", "lon", "lat"):   # the pair not used must still hold numbers
            if name not in (x_name, y_name):
                self._number(batch, name)
        x, y = self._number(batch, x_name), self._number(batch, y_name)
        self._require(~np.isnan(x) & ~np.isnan(y), "position missing")
        lon, lat = crsmod.to_wgs84(self.plan.crs, *crsmod.easting_first(self.plan.crs, x, y))
        self._require(self.plan.territory.contains(lon, lat), "position outside the territory")
        return lon, lat

    def _sizes(self, batch: pa.RecordBatch) -> dict[str, np.ndarray]:
        """Diameter, height and crown in stored units (float4), each within its range."""
        m = self.plan.mapping

        def factor(name: str) -> float:
            return m.fields[name].factor if name in m.fields else 1.0

        dbh = self._number(batch, "dbh") * factor("dbh")
        around = self._number(batch, "circumference") * factor("circumference") / math.pi
        height = self._number(batch, "height") * factor("height")
        by_class = self._lookup(batch, "height_class", "number")
        sizes = {"dbh": np.where(np.isnan(dbh), around, dbh).astype(np.float32),
                 "height": np.where(np.isnan(height), by_class, height).astype(np.float32),
                 "crown": (self._number(batch, "crown") * factor("crown")).astype(np.float32)}
        for name, (low, high, _unit) in validate.RANGES.items():
            value = sizes[name]
            self._require(np.isnan(value) | ((value > low) & (value <= high)),
                          f"{name} outside its plausible range")
        return sizes

    def _require(self, good: np.ndarray, what: str) -> None:
        if not good.all():
            row = self.rows_before + int(np.flatnonzero(~good)[0]) + 2
            self._refuse(f"row {row}: {what}")

    def _refuse(self, why: str) -> NoReturn:
        raise NotClean(f"{self.plan.name}: {why}")


def utf8_bytes(text: pa.Array) -> np.ndarray:
    """An Arrow text column as a numpy ``S`` array of its UTF-8 bytes (null: empty).

    Read from the column's offsets and data buffers: no Python string per value.
    """
    text = pc.fill_null(text, "")
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=n + 1, offset=text.offset * 4)
    data = np.frombuffer(text.buffers()[2] or b"\0", dtype=np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    span = np.arange(width)
    at = np.minimum(offsets[:-1, None] + span, len(data) - 1)
    matrix = np.where(span < lengths[:, None], data[at], 0).astype(np.uint8)
    return np.ascontiguousarray(matrix).view(f"S{width}").reshape(n)


def spot_grid(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on the 1e-6 degree grid: the checked path's gx, gy ("the same spot")."""
    return np.round(lon * 1e6).astype(np.int64), np.round(lat * 1e6).astype(np.int64)


def spot_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A point on the 1e-6 degree grid as one integer."""
    gx, gy = spot_grid(lon, lat)
    return gx * 1_000_000_000 + gy


def require_distinct_spots(keys: list[np.ndarray]) -> None:
    """Distinct codes at one spot are refused by the checked path: send them there."""
    every = np.sort(np.concatenate(keys)) if keys else np.zeros(0, np.int64)
    if (every[1:] == every[:-1]).any():          # (a sort: np.unique is 15 times slower here)
        raise NotClean("two rows at the same spot")


# -- the write into an empty inventory ----------------------------------------------------------

# The columns of a tree the direct path writes (see Rows.stored), with the id in trees and
# the file, row and spot key in load_checked (whose problems keep their default, '{}').
STORED = ("tree_code", "category", "species_id", "dbh_cm", "height_m", "crown_m", "condition",
          "planted_on", "commune_code", "source", "source_crs", "geom", "attributes", "load_digest")
COLUMNS = ("id", *STORED)
STAGED_COLUMNS = ("file_no", "row_no", *STORED, "gx", "gy")
# The next value of a table's identity, without taking it.
NEXT_ID = """
SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')) + 1, 1)
"""
SEQUENCES = ("smarttrees.trees", "smarttrees.tree_history")
HISTORY_COLUMNS = ("id", "tree_id", "tree_code", "change", "actor", "source")


@dataclass
class FileInput:
    """One file on the direct path: its plan and checker, its batches, its history source.

    ``context`` seeds the rows' digests (``etl.digests``); a row whose digest is in ``stored``
    (sorted) was loaded before into a tree unchanged since, and is counted in ``skipped``
    instead of being checked. ``codes`` collects the hashed tree code of every row, skipped or
    not, for :func:`require_distinct_codes`.
    """

    plan: validate.FilePlan
    checker: Checker
    batches: Iterator[pa.RecordBatch]
    source: str
    context: int = 0
    stored: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_row: int = 2            # the file's number of its first row (a GIS feature's: 1)
    skipped: int = 0
    codes: list[np.ndarray] = field(default_factory=list)

    def checked(self) -> Iterator[tuple[Rows, np.ndarray, np.ndarray]]:
        """Each batch's rows to write, checked, with their file row numbers and digests."""
        row_no = self.first_row
        for batch in self.batches:
            n = batch.num_rows
            numbers = np.arange(row_no, row_no + n, dtype=np.int64)
            row_no += n
            row_digests = digests.row_digests(batch, self.context)
            if len(self.stored):
                code = self.checker.column(batch, "tree_code")
                if code is not None:
                    self.codes.append(digests.column_hash(pc.utf8_trim(code, characters=" ")))
                keep = ~digests.known(row_digests, self.stored)
                if not keep.all():
                    self.skipped += int(n - keep.sum())
                    batch, numbers = batch.filter(pa.array(keep)), numbers[keep]
                    row_digests = row_digests[keep]
                    if batch.num_rows == 0:
                        continue
            yield self.checker.check(batch), numbers, row_digests


def require_distinct_codes(files: list[FileInput]) -> None:
    """A code repeated in a run with skipped rows: the checked path words it (on every row)."""
    if not any(f.skipped for f in files):
        return
    every = np.sort(np.concatenate([c for f in files for c in f.codes] or [np.zeros(0, np.uint64)]))
    if (every[1:] == every[:-1]).any():
        raise NotClean("a tree code repeats in a run whose other rows are unchanged")


def claim_empty_inventory(conn: psycopg.Connection) -> bool:
    """True when ``trees`` is empty and now locked, with its history, for :func:`load_into_empty`.

    False when it holds trees, or when other sessions keep it busy for a second: the rows are
    then staged for the merge, which does not need the table to itself.
    """
    empty = "SELECT NOT EXISTS (SELECT FROM smarttrees.trees)"
    if conn.execute(empty).fetchone() != (True,):
        return False
    conn.execute("SAVEPOINT claim")
    conn.execute("SET LOCAL lock_timeout = '1s'")
    try:
        conn.execute("LOCK TABLE smarttrees.trees, smarttrees.tree_history "
                     "IN ACCESS EXCLUSIVE MODE")
    except psycopg.errors.LockNotAvailable:
        conn.execute("ROLLBACK TO SAVEPOINT claim")
        return False
    conn.execute("RELEASE SAVEPOINT claim")
    conn.execute("SET LOCAL lock_timeout = 0")
    return conn.execute(empty).fetchone() == (True,)


def load_into_empty(conn: psycopg.Connection, files: list[FileInput], actor: str,
                    phase: Callable[[str], None] | None = None) -> list[int]:
    """Check every file and COPY its rows into the empty ``trees``; return rows per file.

    The caller holds the lock of :func:`claim_empty_inventory`. Raises :class:`NotClean`
    (the transaction is then to be rolled back) at the first row the checked path would refuse.
    ``phase`` is told when the steps after the COPY begin (for a progress display).
    """
    restore = _prepare_empty(conn)
    # Ids of trees and history rows are given here, from where each identity stands (COPY may
    # set a GENERATED ALWAYS column); the identities are moved past them at the end: sequences
    # ignore rollbacks, and a run that gives way must not leave a gap.
    ids = {table: _next_id(conn, table) for table in SEQUENCES}
    clock = [time.perf_counter()]
    counts = _copy_trees_and_history(conn, files, ids, actor, clock)
    if phase:
        phase("building keys and indexes")
    _enable_insert_triggers(conn, True)
    # What trees_count_insert would have added (TRUNCATE set the count to 0).
    conn.execute("UPDATE smarttrees.row_counts SET n = n + %s WHERE table_name = 'trees'",
                 (sum(counts),))
    try:
        merge.rebuild_indexes(conn, restore)
    except psycopg.errors.UniqueViolation as exc:
        raise NotClean(f"a tree code appears twice ({exc.diag.message_detail})") from exc
    log.debug("direct: keys, indexes and foreign keys rebuilt in %.2f s", _lap(clock))
    if sum(counts):
        for table, first in ids.items():
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                         (table, first + sum(counts) - 1))
    return counts


def _copy_trees_and_history(conn: psycopg.Connection, files: list[FileInput],
                            ids: dict[str, int], actor: str, clock: list[float]) -> list[int]:
    """COPY every file's trees, then their insert history; return rows per file."""
    spots: list[np.ndarray] = []
    counts = []
    next_id = ids["smarttrees.trees"]
    offset = ids["smarttrees.tree_history"] - next_id      # history id of a tree's insert row
    # History rows are encoded while the trees are sent and COPYed after them: a province-sized
    # survey's stay in memory (75 MB per million trees), a bigger one's spill to a file.
    with tempfile.SpooledTemporaryFile(max_size=HISTORY_IN_MEMORY) as history:
        for f in files:
            start = next_id
            next_id = _copy_file(conn, f, next_id, offset, spots, history, actor)
            counts.append(next_id - start)
        log.debug("direct: %d trees checked and copied in %.2f s", sum(counts), _lap(clock))
        require_distinct_spots(spots)
        log.debug("direct: spots checked in %.2f s", _lap(clock))
        _copy_rows(conn, "tree_history", HISTORY_COLUMNS, history)
    log.debug("direct: history copied in %.2f s", _lap(clock))
    return counts


def _lap(clock: list[float]) -> float:
    """Seconds since the last lap (for the debug log)."""
    now = time.perf_counter()
    seconds, clock[0] = now - clock[0], now
    return seconds


def stage_checked(conn: psycopg.Connection, f: FileInput) -> None:
    """COPY one file's checked rows into ``load_checked``, for the merge into the inventory."""
    with conn.cursor() as cur, binary_copy.open_copy(
            cur, sql.Identifier("load_checked"), STAGED_COLUMNS, queued=True) as copy:
        for rows, numbers, row_digests in f.checked():
            gx, gy = spot_grid(rows.lon, rows.lat)
            copy.write(binary_copy.binary_rows([
                ("int4", np.full(len(rows), f.plan.file_no, dtype=np.int32)), ("int8", numbers),
                *rows.stored(f.plan.source_crs, row_digests), ("int8", gx), ("int8", gy)]))


def _next_id(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(NEXT_ID, (table,)).fetchone()
    assert row is not None
    return int(row[0])


def _prepare_empty(conn: psycopg.Connection) -> list[str]:
    """Make the empty inventory ready for one bulk COPY; return what to restore after it.

    TRUNCATE gives ``trees`` (and an empty history) new files, which with ``wal_level =
    minimal`` (the managed cluster's) are written without WAL and may take frozen rows. Keys
    and indexes are rebuilt once after the COPY, and the insert trigger is off meanwhile: the
    history rows it would write are COPYed too, in this same transaction.
    """
    tables = "smarttrees.trees"
    if conn.execute("SELECT NOT EXISTS (SELECT FROM smarttrees.tree_history)").fetchone() \
            == (True,):
        tables += ", smarttrees.tree_history"
    conn.execute(f"TRUNCATE {tables}")
    restore = merge.drop_indexes_for_bulk(conn, None, keys=True)
    _enable_insert_triggers(conn, False)
    return restore


def _enable_insert_triggers(conn: psycopg.Connection, on: bool) -> None:
    """Switch the insert triggers of ``trees`` whose work the empty load does itself.

    Each takes the statement's transition table, so while any is on the server keeps a copy of
    every COPYed row (1.13 M of them spill to disk) and the territory trigger tests each point
    again: the history rows are COPYed by this module, every point was tested against the
    territory by :class:`Checker`, and the row count is set once after the COPY.
    """
    verb = sql.SQL("ENABLE" if on else "DISABLE")
    for trigger in INSERT_TRIGGERS_DONE_HERE:
        conn.execute(sql.SQL("ALTER TABLE smarttrees.trees {} TRIGGER {}").format(
            verb, sql.Identifier(trigger)))


def _copy_file(conn: psycopg.Connection, f: FileInput, next_id: int, offset: int,
               spots: list[np.ndarray], history: IO[bytes], actor: str) -> int:
    """COPY one file's checked batches into ``trees``; return the next free tree id.

    The insert history of each batch (row ids: tree id + ``offset``) is encoded meanwhile
    and written to ``history``.
    """
    # Queued: the server stores a batch while this process reads and checks the next one.
    with conn.cursor() as cur, binary_copy.open_copy(
            cur, sql.Identifier("smarttrees", "trees"), COLUMNS, freeze=True,
            queued=True) as copy:
        for rows, _numbers, row_digests in f.checked():
            n = len(rows)
            ids = np.arange(next_id, next_id + n, dtype=np.int64)
            next_id += n
            spots.append(spot_keys(rows.lon, rows.lat))
            copy.write(binary_copy.binary_rows([("int8", ids),
                                                *rows.stored(f.plan.source_crs, row_digests)]))
            history.write(binary_copy.binary_rows([
                ("int8", ids + offset), ("int8", ids), ("text", rows.tree_code),
                ("text", np.full(n, "insert")),
                ("text", np.full(n, actor)), ("text", np.full(n, f.source))]))
    return next_id


def _copy_rows(conn: psycopg.Connection, table: str, columns: tuple[str, ...],
               rows: IO[bytes]) -> None:
    """COPY rows encoded by :func:`etl.binary_copy.binary_rows`, read back from ``rows``."""
    rows.seek(0)
    with conn.cursor() as cur, binary_copy.open_copy(
            cur, sql.Identifier("smarttrees", table), columns) as copy:
        while block := rows.read(BLOCK_BYTES):
            copy.write(block)
