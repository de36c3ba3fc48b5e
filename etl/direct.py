"""Tree surveys read into Arrow, checked column by column, and COPYed typed: the one path.

Every input (CSV in any encoding ``etl.encodings`` knows, XLSX, GIS point layers) is read into
Arrow batches; each batch is checked by :class:`Checker` (the rules of ``etl.rules``, the
primitives of ``etl.checker``) in this process while the server stores the previous one. A
batch's good rows go by binary COPY straight into ``trees`` when the inventory is empty
(:func:`load_into_empty`), otherwise into the staging table the merge reads
(:func:`stage_checked`). Its bad rows, with every problem of each and their cells as the file
wrote them, go to ``load_checked`` and ``load_raw_<file>``, from which the rejects file is
written (``etl.report``). Checks across rows (a code or a spot used twice) are made as the
rows stream by into an empty inventory (:class:`RunChecks`), and in SQL against a loaded one
(``etl.validate.cross_checks``).
"""

from __future__ import annotations

import decimal
import io
import logging
import math
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from psycopg import sql

from etl import (
    arrow_csv,
    arrow_readers,
    attributes,
    binary_copy,
    bulk,
    checker,
    digests,
    interleaved_copy,
    line_digests,
    merge,
    stage,
    validate,
)
from etl import crs as crsmod
from etl.checker import Finding, Problems
from etl.errors import InputError
from etl.first_seen import FirstSeen
from etl.mappings import Mapping
from etl.readers import CheckedStream, Chunk, Table
from etl.rules import TREES
from smarttrees import read_ahead

log = logging.getLogger(__name__)

BLOCK_BYTES = 8 << 20           # Arrow's read unit: about 80,000 survey rows
HISTORY_IN_MEMORY = 256 << 20   # encoded refused rows kept in memory; beyond, a temporary file
INSERT_TRIGGERS_DONE_HERE = ("trees_history_insert", "trees_in_territory_insert",
                             "trees_count_insert")
# How resolved lookup values are typed, and the empty value of each kind. Text is kept as its
# UTF-8 bytes (an ``S`` array), as binary COPY sends it: a str array of Vietnamese words cost a
# sort of its values per batch to encode.
TYPES: dict[str, tuple[Callable[[str], object], object]] = {
    "text": (lambda value: str(value).encode("utf-8"), b""), "id": (int, -1),
    "number": (float, np.nan),
    "date": (np.datetime64, np.datetime64("NaT", "D")),
}
LOOKUP_COLUMNS = ("species", "category", "condition", "planted_on", "planted_year",
                  "height_class")
# Fixed values taken as they are; any other fixed field is resolved as if every cell held it.
AS_GIVEN = frozenset({"category", "source"})


Tick = Callable[[int], None]


def readable(table: Table) -> None:
    """Refuse, naming the file, an input no tree can come from: a layer of polygons or lines.

    A mapping's row rules (joins, a point column, formats, classes, a skip rule) are for
    tables: a GIS layer with them is refused too.
    """
    if table.kind == "vector" and not arrow_readers.point_layer(table):
        raise InputError(table.path, f"the layer holds {table.geometry_type} geometries: "
                         "trees need points", field="geometry")
    if table.kind == "vector" and table.derivation is not None:
        raise InputError(table.path, "a mapping's row rules (joined columns, a point column, "
                         "formats, classes, a skip rule) apply to CSV and XLSX files, "
                         "not to GIS layers")


Batch = tuple[pa.RecordBatch, np.ndarray]      # a batch and the file's row number of each row


def batches(table: Table, plan: validate.FilePlan, tick: Tick | None = None,
            data: bytes | None = None) -> Iterator[Batch]:
    """The file's rows in Arrow batches, with their row numbers: a CSV, a workbook, a GIS layer.

    Cells are text (lookup fields dictionary-encoded), numbers too: the checker parses them.
    A GIS layer's points are its batches' three last columns (X, Y and a
    problem with the geometry; ``plan`` is then the one of :func:`etl.arrow_readers.vector_plan`).
    A mapping's row rules are applied to each batch (``etl.mapping_rows``). ``data``: a CSV's
    bytes, read already and held to the limits (see :func:`read_batches`).
    """
    if table.derivation is not None:
        base = replace(table, headers=table.headers[:table.derivation.file_columns],
                       derivation=None)
        yield from (_derived(table, batch, rows) for batch, rows in batches(base, plan, tick))
        return
    lookups = {plan.columns[n] for n in LOOKUP_COLUMNS if n in plan.columns}
    if table.kind == "xlsx":
        # Numbered as the sheet shows them: the header's row, empty rows, all counted.
        for batch, rows in arrow_readers.read_xlsx_batches(table, lookups, tick):
            _within_field_limit(table, batch, rows)
            yield batch, rows
        return
    # A CSV's rows count its records (as spreadsheets do); a layer's features count from 1.
    first = 1 if table.kind == "vector" else 2
    source = (read_batches(table, plan.columns, tick, data=data) if table.kind == "csv"
              else arrow_readers.read_vector_batches(table, plan.columns, lookups, tick))
    done = 0
    for batch in source:
        rows = np.arange(first + done, first + done + batch.num_rows, dtype=np.int64)
        done += batch.num_rows
        if table.kind != "csv":
            _within_field_limit(table, batch, rows)
        yield batch, rows


def _within_field_limit(table: Table, batch: pa.RecordBatch, rows: np.ndarray) -> None:
    """Refuse a cell over the field limit, naming its row and field, as a CSV's would be."""
    limit = table.limits.field_bytes
    for i, header in enumerate(table.headers):
        column = batch.column(i)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if not pa.types.is_string(column.type):
            continue
        lengths = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
        over = np.flatnonzero(lengths > limit)
        if len(over):
            raise InputError(table.path, f"the cell is longer than {size(limit)} "
                             "(SMARTTREES_LOAD_MAX_FIELD_BYTES)", row=int(rows[over[0]]),
                             field=header)


def _derived(table: Table, batch: pa.RecordBatch, rows: np.ndarray) -> Batch:
    """A batch through the mapping's row rules: added columns, rewritten cells, rows left out."""
    import pandas as pd

    base = table.headers[:table.derivation.file_columns]            # type: ignore[union-attr]
    frame = pd.DataFrame({h: checker.as_text(batch.column(i)).to_pandas().fillna("")
                          for i, h in enumerate(base)})
    chunk = table.derivation.apply(Chunk(frame, rows))               # type: ignore[union-attr]
    names = [f"c{i}" for i in range(len(table.headers))]
    columns = [pa.array(chunk.cells.iloc[:, i].astype(str).tolist(), pa.string())
               for i in range(len(table.headers))]
    return pa.record_batch(columns, names=names), np.asarray(chunk.row_no, dtype=np.int64)


def size(n: int) -> str:
    """A byte count as the limits' messages write it."""
    from etl.limits import size as limit_size

    return limit_size(n)


def position_columns(plan: validate.FilePlan) -> tuple[str, str] | None:
    """The fields that place a tree: X/Y when the file has them, else longitude/latitude."""
    for pair in (("x", "y"), ("lon", "lat")):
        if all(name in plan.columns for name in pair):
            return pair
    return None


@dataclass
class Rows:
    """One batch of checked rows, typed as stored (NaN, NaT and '' stand for NULL).

    ``bad`` marks the refused rows, ``reasons`` gives each one's problems (by index) and
    ``placed`` the rows whose position is inside the territory.
    """

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
    problems: Problems = field(default_factory=lambda: Problems(0))
    placed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.tree_code)

    def stored(self, source_crs: str, digests: np.ndarray) -> list[binary_copy.Column]:
        """The columns of :data:`STORED`, as ``etl.binary_copy`` encodes them."""
        lon = np.where(self.placed, self.lon, np.nan) if len(self.placed) else self.lon
        return [("text", self.tree_code), ("text", self.category), ("int4", self.species_id),
                ("float4", self.dbh_cm), ("float4", self.height_m), ("float4", self.crown_m),
                ("text", self.condition), ("date", self.planted_on),
                ("text", self.commune_code), ("text", self.source),
                ("text", np.full(len(self), source_crs.encode("utf-8"))),
                ("geometry", np.column_stack([lon, self.lat])),
                ("jsonb", self.attributes), ("int8", digests)]

    def take(self, keep: np.ndarray) -> Rows:
        """The rows where ``keep`` is true (their problems are not carried)."""
        values = {name: getattr(self, name)[keep] for name in (
            "tree_code", "category", "species_id", "dbh_cm", "height_m", "crown_m", "condition",
            "planted_on", "commune_code", "source", "lon", "lat", "attributes")}
        placed = self.placed[keep] if len(self.placed) else self.placed
        return Rows(**values, problems=Problems(int(keep.sum())), placed=placed)


@dataclass
class Lookups:
    """Each distinct raw value of a lookup field resolved once, for the whole run."""

    mapping: Mapping
    species: validate.SpeciesIndex
    seen: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)

    def resolve(self, name: str, raw: str) -> tuple[str | None, str | None]:
        """(value, problem) of one trimmed raw value (``etl.validate.resolve_one``)."""
        key = (name, raw)
        if key not in self.seen:
            self.seen[key] = validate.resolve_one(name, raw, self.mapping, self.species)
        return self.seen[key]


class Communes:
    """The communes in force, for assigning each point its commune."""

    def __init__(self, conn: psycopg.Connection) -> None:
        rows = conn.execute("SELECT code, ST_AsBinary(geom) FROM smarttrees.communes "
                            "ORDER BY code").fetchall()
        # UTF-8, as binary COPY sends them; the last: no commune.
        self.codes = np.array([r[0].encode("utf-8") for r in rows] + [b""])
        self.shapes = shapely.from_wkb([r[1] for r in rows])
        shapely.prepare(self.shapes)
        self.bounds = shapely.bounds(self.shapes)

    def of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Code of the first commune (by code) each point intersects; '' where none.

        Each commune in code order tests the points still without one inside its bounding box
        (prepared geometry, no point objects): three times faster than an STRtree query. The
        points are sorted by longitude once, so that each commune looks only at those of its
        box's span of longitudes (92 passes over every point cost as much as the tests).
        """
        none = len(self.codes) - 1
        found = np.full(len(lon), none)
        by_lon = np.argsort(lon, kind="stable")
        spans = zip(np.searchsorted(lon[by_lon], self.bounds[:, 0], side="left").tolist(),
                    np.searchsorted(lon[by_lon], self.bounds[:, 2], side="right").tolist(),
                    strict=True)
        for i, (shape, (_, y0, _, y1), (start, stop)) in enumerate(
                zip(self.shapes, self.bounds, spans, strict=True)):
            span = by_lon[start:stop]
            near = span[(found[span] == none) & (lat[span] >= y0) & (lat[span] <= y1)]
            if len(near):
                found[near[shapely.intersects_xy(shape, lon[near], lat[near])]] = i
        return self.codes[found]


def read_batches(table: Table, columns: dict[str, int], tick: Tick | None = None,
                 lines: tuple[bytes, np.ndarray] | None = None,
                 data: bytes | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows in Arrow batches of text (lookup fields dictionary-encoded).

    Numbers stay text here: :func:`etl.checker.numbers` reads them (a decimal comma, a cell
    that is no number) without failing the batch. ``tick`` is told how many bytes of the file
    each batch took (for a progress bar). ``lines``: read these bytes instead (the file's
    header and some of its lines, ``etl.line_digests``), with the file's line number of each
    of their data lines, for messages. ``data``: the whole file's bytes, read already and held
    to the limits (:func:`held_to_limits`): parsed from memory, without the limits' pass.
    """
    names = [f"c{i}" for i in range(len(table.headers))]
    lookups = {columns[n] for n in LOOKUP_COLUMNS if n in columns}
    types = {name: pa.dictionary(pa.int32(), pa.string()) if i in lookups else pa.string()
             for i, name in enumerate(names)}
    ragged = _RaggedRow(table, None if lines is None else _line_of(lines))
    options = {
        # One thread, a batch ahead of the checks (smarttrees.read_ahead): the other core is the
        # server's, storing the previous batch.
        # A block holds whole rows: the checked stream (etl.limits) bounds them to half of one.
        # A legacy encoding (TCVN3, VNI, Windows-1258: etl.encodings) is decoded by Arrow
        # through the Python codec as the bytes come in.
        "read_options": pacsv.ReadOptions(column_names=names, skip_rows=1,
                                          block_size=table.limits.block_bytes,
                                          use_threads=False, encoding=arrow_encoding(table)),
        # Blank lines are skipped: row numbers count records, as spreadsheets do.
        "parse_options": pacsv.ParseOptions(delimiter=table.delimiter, newlines_in_values=True,
                                            ignore_empty_lines=True, invalid_row_handler=ragged),
        # Only an empty cell is empty: "NA" or "null" in a number column is not a number.
        "convert_options": pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True,
            quoted_strings_can_be_null=True),
    }
    # Through the limits' checks (the tree loader opens CSVs without the scan at open); lines
    # or bytes given held to them already (etl.line_digests.read, held_to_limits). The stream
    # is handed over, no reference kept: arrow_csv waits until Arrow's thread has released it.
    done = 0
    try:
        for batch, at in read_ahead.ahead(arrow_csv.batches(_stream(table, lines, data),
                                                            **options)):
            yield composed(batch) if decomposed_tones(table) else batch
            if tick:
                tick(at - done)
                done = at
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(table.path, ragged.explain(exc), row=ragged.row) from exc


def _stream(table: Table, lines: tuple[bytes, np.ndarray] | None,
            data: bytes | None) -> io.RawIOBase | io.BytesIO:
    """What :func:`read_batches` parses: the lines or bytes given, else the file, checked."""
    if lines is not None:
        return io.BytesIO(lines[0])
    return io.BytesIO(data) if data is not None else CheckedStream(table)


def held_to_limits(table: Table, lines: line_digests.Lines) -> bool:
    """True when the file's bytes of ``lines`` pass what the limits' pass would check.

    ``etl.line_digests.read`` has found each line a row, no NUL byte and no line over the
    field limit; left are the row limit and the encoding, UTF-8, which Arrow validates as
    strictly as Python's decoder (about 0.05 s for 100 MB, against 0.65 s of CPU for the
    limits' pass over the stream).
    """
    if int(lines.lengths.max(initial=0)) > table.limits.row_bytes:
        return False
    rows = pa.py_buffer(lines.data)[lines.prefix:]
    as_one = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(
        np.array([0, rows.size], dtype=np.int32)), rows])
    try:
        as_one.cast(pa.string())
    except pa.ArrowInvalid:
        return False      # read as a stream, for the message naming the row and field
    return True


def _line_of(lines: tuple[bytes, np.ndarray]) -> Callable[[int], int]:
    """The file's line number of a line of bytes read instead of it (see read_batches)."""
    data, line_no = lines
    before = data.count(b"\n") - len(line_no)    # the header's lines: each data line ends one

    def line_of(number: int) -> int:
        at = number - before - 1
        return int(line_no[at]) if 0 <= at < len(line_no) else number

    return line_of


class _RaggedRow:
    """Arrow's handler of a row with too few or too many cells: noted, then refused."""

    def __init__(self, table: Table, line_of: Callable[[int], int] | None = None) -> None:
        self.table = table
        self.row: int | None = None
        self.found = ""
        self.line_of = line_of

    def __call__(self, row: pacsv.InvalidRow) -> str:
        if row.number is not None:
            self.row = row.number if self.line_of is None else self.line_of(row.number)
        self.found = (f"{row.actual_columns} cells where the header has "
                      f"{row.expected_columns}")
        return "error"

    def explain(self, exc: Exception) -> str:
        """The message for the file, naming what Arrow found."""
        if self.found:
            return f"malformed CSV: {self.found} (a delimiter in an unquoted cell?)"
        return f"malformed CSV: {str(exc).splitlines()[0]}"


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


@dataclass
class Checker:
    """Checks one file's batches against the tree rules (``etl.rules.TREES``) and types them."""

    plan: validate.FilePlan
    lookups: Lookups
    communes: Communes | None

    def check(self, batch: pa.RecordBatch) -> Rows:
        """The batch's rows typed as stored, with every problem of every row.

        The problems of a row come in the order of the rules: code, species, category,
        numbers, ranges, vocabularies, position.
        """
        n = batch.num_rows
        problems = Problems(n)
        code = checker.text(self.column(batch, "tree_code"))
        has_code = checker.present(code, n)
        label = self.plan.label
        problems.add(~has_code, f"{label('tree_code')}: missing")
        if code is not None:
            longest = TREES["tree_code"].max_length
            long = pc.fill_null(pc.greater(pc.utf8_length(code), longest), False)
            problems.add(long.to_numpy(zero_copy_only=False),
                         f"{label('tree_code')}: longer than {longest} characters")
        vocab: list[Finding | None] = []
        species = self._lookup(batch, "species", "id", vocab)
        problems.add(_unresolved(species < 0, vocab[-1]), f"{label('species')}: missing")
        category = self._category(batch, n, vocab, problems)
        condition = self._lookup(batch, "condition", "text", vocab)
        planted = self._lookup(batch, "planted_on", "date", vocab)
        planted = np.where(np.isnat(planted), self._lookup(batch, "planted_year", "date", vocab),
                           planted)
        by_class = self._lookup(batch, "height_class", "number", vocab)
        numbers: dict[str, np.ndarray] = {}
        not_numbers: dict[str, Finding | None] = {}
        for name in TREES.names("number"):
            found: list[Finding | None] = []
            column = self.column(batch, name)
            numbers[name] = (np.full(n, np.nan) if column is None
                             else checker.numbers(column, label(name), finding=found))
            not_numbers[name] = found[0] if found else None
        problems.extend(not_numbers.values())
        sizes = self._sizes(numbers, by_class, problems)
        problems.extend(vocab)
        lon, lat, placed = self._position(batch, numbers, not_numbers, problems)
        rows = self._rows(batch, n, code, category, species, condition, planted, sizes, lon,
                          lat, placed)
        rows.problems = problems
        return rows

    def _rows(self, batch: pa.RecordBatch, n: int, code: pa.Array | None, category: np.ndarray,
              species: np.ndarray, condition: np.ndarray, planted: np.ndarray,
              sizes: dict[str, np.ndarray], lon: np.ndarray, lat: np.ndarray,
              placed: np.ndarray) -> Rows:
        source = checker.text(self.column(batch, "source"))
        fixed_source = self.plan.mapping.fixed.get("source")
        if fixed_source is not None or source is None:
            sources = np.full(n, str(fixed_source or self.plan.name).encode("utf-8"))
        else:
            sources = utf8_bytes(pc.fill_null(source, self.plan.name))
        communes = np.full(n, b"")
        if self.communes is not None and placed.any():
            communes = communes.astype(self.communes.codes.dtype)
            communes[placed] = self.communes.of(lon[placed], lat[placed])
        return Rows(
            tree_code=utf8_bytes(code) if code is not None else np.full(n, b""),
            category=category, species_id=species,
            dbh_cm=sizes["dbh"], height_m=sizes["height"], crown_m=sizes["crown"],
            condition=condition, planted_on=planted, commune_code=communes,
            source=sources, lon=lon, lat=lat,
            attributes=(utf8_bytes(attributes.objects(batch, self.plan.extra))
                        if self.plan.extra else np.full(n, b"")), placed=placed)

    # -- one kind of field each --------------------------------------------------------------

    def column(self, batch: pa.RecordBatch, name: str) -> pa.Array | None:
        """The column of a batch feeding a field; a fixed value as a column of it."""
        fixed = self.plan.mapping.fixed.get(name)
        if fixed is not None and name not in AS_GIVEN:
            return pc.dictionary_encode(pa.array([fixed] * batch.num_rows, pa.string()))
        index = self.plan.columns.get(name)
        return None if index is None else batch.column(index)

    def _lookup(self, batch: pa.RecordBatch, name: str, kind: str,
                found: list[Finding | None]) -> np.ndarray:
        """Resolved values of a lookup field, typed; an unknown value is a problem.

        Empty cells give the kind's empty value ('' for text, -1 for ids, NaN, NaT).
        """
        convert, empty = TYPES[kind]

        def resolve(raw: str) -> tuple[object, str | None]:
            value, problem = self.lookups.resolve(name, raw)
            if problem is not None or value is None:
                return empty, problem or "is not known"
            return convert(value), None

        dtype = {"text": "S", "id": np.int64, "number": np.float64,
                 "date": "datetime64[D]"}[kind]
        # Planting days are parse_date's (etl.validate.resolve_one): ISO ones read at once.
        resolved = checker.lookup(self.column(batch, name), batch.num_rows,
                                  self.plan.label(name), resolve, empty, dtype,
                                  typed=checker.iso_days if name == "planted_on" else None)
        found.append(resolved.finding)
        return resolved.values

    def _category(self, batch: pa.RecordBatch, n: int, found: list[Finding | None],
                  problems: Problems) -> np.ndarray:
        fixed = self.plan.mapping.fixed.get("category")
        if fixed is not None:
            return np.full(n, str(fixed).encode("utf-8"))
        category = self._lookup(batch, "category", "text", found)
        default = self.plan.mapping.defaults.get("category")
        if default is not None:
            category = np.where(category == b"", str(default).encode("utf-8"), category)
        problems.add(_unresolved(category == b"", found[-1]),
                     f"{self.plan.label('category')}: missing")
        return category

    def _sizes(self, numbers: dict[str, np.ndarray], by_class: np.ndarray,
               problems: Problems) -> dict[str, np.ndarray]:
        """Diameter, height and crown in stored units (float4), each within its range."""
        m = self.plan.mapping

        def factor(name: str) -> float:
            return m.fields[name].factor if name in m.fields else 1.0

        dbh = numbers["dbh"] * factor("dbh")
        around = numbers["circumference"] * factor("circumference") / math.pi
        height = numbers["height"] * factor("height")
        sizes = {"dbh": np.where(np.isnan(dbh), around, dbh).astype(np.float32),
                 "height": np.where(np.isnan(height), by_class, height).astype(np.float32),
                 "crown": (numbers["crown"] * factor("crown")).astype(np.float32)}
        fallback = {"dbh": "circumference", "height": "height_class", "crown": "crown"}
        for name, value in sizes.items():
            rule = TREES[name]
            low, high = rule.range or (-math.inf, math.inf)
            header = self.plan.label(name if name in self.plan.columns else fallback[name])
            bad = ~np.isnan(value) & ~((value > low) & (value <= high))
            problems.add(bad, _outside_range(value, header, rule.unit or "", low, high))
        return sizes

    def _position(self, batch: pa.RecordBatch, numbers: dict[str, np.ndarray],
                  not_numbers: dict[str, Finding | None], problems: Problems
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """WGS 84 longitude and latitude of each row, and whether it is inside the territory."""
        n = batch.num_rows
        x_name, y_name = position_columns(self.plan) or ("lon", "lat")
        x, y = crsmod.easting_first(self.plan.crs, numbers[x_name], numbers[y_name])
        lon, lat = crsmod.to_wgs84(self.plan.crs, x, y)
        lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        geometry = self._geometry_problems(batch)
        problems.add(geometry != "", lambda rows: list(geometry[rows]))
        coordinate_bad = np.zeros(n, dtype=bool)
        for name in ("lon", "lat", "x", "y"):
            found = not_numbers.get(name)
            if found is not None and name in self.plan.columns:
                coordinate_bad[found.rows] = True
        where = self.plan.position_label
        missing = np.isnan(lon) | np.isnan(lat)
        problems.add(missing & (geometry == "") & ~coordinate_bad, f"{where}: missing")
        inside = self.plan.territory.contains(lon, lat)
        outside = ~missing & ~inside

        def outside_reasons(rows: np.ndarray) -> list[str]:
            hints = crsmod.wrong_zone_hints(self.plan.crs, x[rows], y[rows], self.plan.territory)
            if not self.plan.crs.is_geographic:
                swapped = self.plan.territory.contains(lat[rows], lon[rows])
                hints = [h or ("longitude and latitude look swapped" if s else None)
                         for h, s in zip(hints, swapped, strict=True)]
            return [f"{where}: {rounded(lon[i], 6)}, {rounded(lat[i], 6)} is outside the territory"
                    + (f"; {h}" if h else "") for i, h in zip(rows, hints, strict=True)]

        problems.add(outside, outside_reasons)
        return lon, lat, inside

    def _geometry_problems(self, batch: pa.RecordBatch) -> np.ndarray:
        """What is wrong with each feature's geometry ('' where nothing; a table has none)."""
        index = self.plan.columns.get(arrow_readers.GEOMETRY_PROBLEM)
        if index is None:
            return np.full(batch.num_rows, "", dtype=object)
        column = batch.column(index)
        return np.array([v or "" for v in column.to_pylist()], dtype=object)


def _unresolved(empty: np.ndarray, refused: Finding | None) -> np.ndarray:
    """The rows of a lookup without a value that were not refused for an unknown one: empty."""
    if refused is not None:
        empty = empty.copy()
        empty[refused.rows] = False
    return empty


def _outside_range(value: np.ndarray, header: str, unit: str, low: float,
                   high: float) -> Callable[[np.ndarray], list[str]]:
    def reasons(rows: np.ndarray) -> list[str]:
        return [f"{header}: {rounded(x, 1)} {unit} is outside the plausible range "
                f"({low}–{high} {unit})" for x in value[rows]]
    return reasons


def rounded(value: float, places: int) -> str:
    """A number in a message as PostgreSQL's ``round(value::numeric, places)`` writes it.

    The shortest decimal that reads back as the value (a ``real`` as a float32), rounded half
    away from zero: 105.7012135 is 105.701214, 12.25 is 12.3.
    """
    shortest = str(value) if isinstance(value, np.float32) else repr(float(value))
    step = decimal.Decimal(1).scaleb(-places)
    return str(decimal.Decimal(shortest).quantize(step, rounding=decimal.ROUND_HALF_UP))


def utf8_bytes(text: pa.Array) -> np.ndarray:
    """An Arrow text column as a numpy ``S`` array of its UTF-8 bytes (null: empty).

    Read from the column's offsets and data buffers: no Python string per value.
    """
    text = pc.fill_null(text, "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=n + 1, offset=text.offset * 4)
    data = np.frombuffer(text.buffers()[2] or b"\0", dtype=np.uint8)
    lengths = np.diff(offsets)
    width = max(int(lengths.max(initial=0)), 1)
    if n and int(lengths.min()) == width:
        # Every value as long (a survey's codes): the data buffer is the array already.
        return data[offsets[0]:offsets[-1]].copy().view(f"S{width}")
    span = np.arange(width)
    at = np.minimum(offsets[:-1, None] + span, len(data) - 1)
    matrix = np.where(span < lengths[:, None], data[at], 0).astype(np.uint8)
    return np.ascontiguousarray(matrix).view(f"S{width}").reshape(n)


def spot_grid(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points on the 1e-6 degree grid: gx, gy ("the same spot", within about 10 cm)."""
    return np.round(lon * 1e6).astype(np.int64), np.round(lat * 1e6).astype(np.int64)


def spot_keys(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """A point on the 1e-6 degree grid as one integer."""
    gx, gy = spot_grid(lon, lat)
    return gx * 1_000_000_000 + gy


LONGEST_KEY = 256    # bytes of a code compared across rows (a longer one is refused anyway)


@dataclass
class RunChecks:
    """The checks across the rows of a run into an empty inventory, made as the rows go by.

    A code seen before in the run (in any row, refused or not) refuses the later row; so does
    a spot taken by an earlier good row under another code. Rows come in file and row order,
    so "earlier" is what ``etl.validate.cross_checks`` means by it on a loaded inventory.
    """

    codes: FirstSeen = field(default_factory=FirstSeen)
    spots: FirstSeen = field(default_factory=FirstSeen)
    names: dict[int, str] = field(default_factory=dict)                 # file number → name

    def check(self, plan: validate.FilePlan, rows: Rows, numbers: np.ndarray) -> None:
        """Add the repeated codes and taken spots of one checked batch to its problems."""
        self.names[plan.file_no] = plan.name
        coded = np.flatnonzero((rows.tree_code != b"")
                               & (np.strings.str_len(rows.tree_code) <= LONGEST_KEY))
        codes = rows.tree_code[coded]
        repeated, files, first_rows, _ = self.codes.repeats(codes, plan.file_no,
                                                            numbers[coded], codes)
        if repeated.any():
            label = plan.label("tree_code")
            at = np.flatnonzero(repeated)
            rows.problems.extend([Finding(coded[at], [
                f"{label}: {codes[i].decode()} already appears in "
                f"{'' if files[i] == plan.file_no else self.names[int(files[i])] + ' '}"
                f"row {first_rows[i]}" for i in at.tolist()])])
        good = np.flatnonzero(~rows.problems.bad)
        spots = spot_keys(rows.lon[good], rows.lat[good])
        taken, _, first_rows, first_codes = self.spots.repeats(
            spots, plan.file_no, numbers[good], rows.tree_code[good])
        if taken.any():
            at = np.flatnonzero(taken)
            rows.problems.extend([Finding(good[at], [
                f"{plan.position_label}: same spot as tree {first_codes[i].decode()} "
                f"(row {first_rows[i]})" for i in at.tolist()])])


def text_arrays(lists: list[list[str]]) -> np.ndarray:
    """Each list of problems as the binary COPY form of a ``text[]`` (an ``S`` array)."""
    out = []
    for items in lists:
        encoded = [item.encode() for item in items]
        out.append(struct.pack(">iiiii", 1, 0, 25, len(encoded), 1)
                   + b"".join(struct.pack(">i", len(e)) + e for e in encoded))
    return np.array(out, dtype=np.bytes_)


class Refused:
    """A file's refused rows, encoded as they are found and COPYed once the reading is done.

    Each goes to ``load_checked`` with its problems, its cells as the file wrote them to
    ``load_raw_<file>`` (the rejects file joins the two). Rows are held in temporary files
    (in memory up to a bound): a COPY into ``trees`` may be under way meanwhile on the same
    connection.
    """

    def __init__(self, plan: validate.FilePlan, width: int) -> None:
        self.plan = plan
        self.width = width
        # Closed by copy(), once their rows are sent.
        self.checked: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=HISTORY_IN_MEMORY)
        self.cells: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=HISTORY_IN_MEMORY)

    def add(self, batch: pa.RecordBatch, numbers: np.ndarray, rows: Rows,
            row_digests: np.ndarray, keep: np.ndarray) -> None:
        """Encode the rows ``keep`` marks, with their problems and cells."""
        at = np.flatnonzero(keep)
        if not len(at):
            return
        self.add_cells(batch, numbers, at)
        reasons = rows.problems.reasons()
        chosen = rows.take(keep)
        placed = chosen.placed
        gx, gy = spot_grid(np.where(placed, chosen.lon, 0.0), np.where(placed, chosen.lat, 0.0))
        self.checked.write(binary_copy.binary_rows([
            ("int4", np.full(len(at), self.plan.file_no, dtype=np.int32)), ("int8", numbers[at]),
            *chosen.stored(self.plan.source_crs, row_digests[at]),
            ("int8", np.ma.array(gx, mask=~placed)), ("int8", np.ma.array(gy, mask=~placed)),
            ("text", text_arrays([reasons.get(int(i), []) for i in at]))]))

    def add_cells(self, batch: pa.RecordBatch, numbers: np.ndarray, at: np.ndarray) -> None:
        """Encode the cells of some rows of a batch, as text."""
        taken = pa.array(at)
        columns: list[binary_copy.Column] = [("int8", numbers[at])]
        for i in range(self.width):
            columns.append(("text", utf8_bytes(checker.as_text(batch.column(i)).take(taken))))
        self.cells.write(binary_copy.binary_rows(columns))

    def copy(self, conn: psycopg.Connection) -> None:
        """COPY what was encoded into the two staging tables."""
        _copy_rows(conn, sql.Identifier("load_checked"), (*STAGED_COLUMNS, "problems"),
                   self.checked)
        _copy_rows(conn, stage.raw_table(self.plan.file_no),
                   ("row_no", *(f"c{i}" for i in range(self.width))), self.cells)
        self.checked.close()
        self.cells.close()


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
# From this many trees written into an empty inventory its secondary indexes are built after the
# commit, in two sessions (etl.bulk.build_deferred). Below, those sessions cost more than they
# save (bench/bench_first_load_indexes.py, load 7–8, wall time against the rebuild in the load's
# transaction: 1.70x at 50,000 trees, 0.89x at 100,000, 0.83x at 200,000, 0.64x at 1.13 M;
# 0.1 s more for a load of 200 trees).
DEFERRED_FROM = 100_000
HISTORY_COLUMNS = ("id", "tree_id", "tree_code", "change", "actor", "source")


@dataclass
class FileInput:
    """One file of a run: its plan and checker, its batches, its history source, its counts.

    ``context`` seeds the rows' digests (``etl.digests``); a row whose digest is in ``stored``
    (sorted) was loaded before into a tree unchanged since, and is counted in ``skipped``
    instead of being checked. ``codes`` collects the hashed tree code of every row, skipped or
    not, with ``code_rows`` their row numbers, for :func:`require_distinct_codes`.
    """

    plan: validate.FilePlan
    checker: Checker
    batches: Iterator[Batch]
    source: str
    width: int                    # the file's columns, staged as text for the rejects file
    context: int = 0
    stored: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    skipped: int = 0
    rows: int = 0                 # every row read
    refused: int = 0
    codes: list[np.ndarray] = field(default_factory=list)
    code_rows: list[np.ndarray] = field(default_factory=list)
    kept: list[np.ndarray] = field(default_factory=list)     # false: skipped
    refused_rows: Refused = field(init=False)
    # The CSV, when its rows may be digested by their lines (etl.line_digests) ...
    table: Table | None = None
    tick: Tick | None = None      # told the bytes each batch took (a progress bar)
    # ... and then the digests of the lines known unchanged and not parsed, with their rows,
    # sorted by digest (one digest's lines in row order).
    known_lines: tuple[np.ndarray, np.ndarray] | None = None
    # Its lines and their digests, once read (digest_lines); None: not read by its lines.
    lines: line_digests.Lines | None = field(init=False, default=None)
    by_line: np.ndarray | None = field(init=False, default=None)
    _lines_read: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.refused_rows = Refused(self.plan, self.width)

    def digest_lines(self) -> None:
        """Read the CSV by its lines and digest each (``etl.line_digests``), if it can be.

        Needs no database: the loader calls it while the stored digests are fetched.
        """
        if self._lines_read:
            return
        self._lines_read = True
        if self.table is None:
            return
        self.lines = line_digests.read(self.table)
        if self.lines is not None:
            self.by_line = self.lines.digests(line_digests.seed(self.table, self.context))

    def checked(self) -> Iterator[tuple[pa.RecordBatch, Rows, np.ndarray, np.ndarray]]:
        """Each batch to write, checked: the batch, its rows, row numbers and digests.

        A CSV whose lines are its rows is digested by its lines; when most of them are known,
        only the others are parsed (:meth:`_new_lines`).
        """
        self.digest_lines()
        table, lines, by_line = self.table, self.lines, self.by_line
        self.lines = None        # the file's bytes: not kept past this read
        known_line = None
        source = self.batches
        if table is not None and lines is not None and by_line is not None:
            if len(self.stored):
                known_line, order = digests.known_in_order(by_line, self.stored)
            else:
                known_line, order = np.zeros(len(by_line), dtype=bool), None
            if order is not None and known_line.any() \
                    and known_line.mean() >= PARSE_ONLY_NEW_SHARE:
                new = self._new_lines(table, lines, by_line, known_line, order)
                if new is not None:
                    yield from new
                    return
            if held_to_limits(table, lines):
                # Parsed from the bytes read for the lines: the file is not read again.
                source = batches(table, self.plan, self.tick, data=lines.data)
            del lines     # else Arrow reads the file again as a stream
        done = 0
        for batch, numbers in source:
            n = batch.num_rows
            self.rows += n
            aligned = by_line is not None and done + n <= len(by_line)
            if by_line is not None and known_line is not None and aligned:
                row_digests = by_line[done:done + n]
                known = known_line[done:done + n]
                if len(self.stored) and not known.all():
                    # Trees last loaded from their cells' digest (before etl.line_digests,
                    # or from another format): known unchanged too. They keep that digest.
                    known = known | digests.known(digests.row_digests(batch, self.context),
                                                  self.stored)
            else:
                row_digests = digests.row_digests(batch, self.context)
                known = digests.known(row_digests, self.stored)
            done += n
            if len(self.stored):
                code = self.checker.column(batch, "tree_code")
                keep = ~known
                if code is not None:
                    self.codes.append(digests.column_hash(pc.utf8_trim(
                        checker.as_text(code), characters=" ")))
                    self.code_rows.append(numbers)
                    self.kept.append(keep)
                if not keep.all():
                    self.skipped += int(n - keep.sum())
                    batch, numbers = batch.filter(pa.array(keep)), numbers[keep]
                    row_digests = row_digests[keep]
                    if batch.num_rows == 0:
                        continue
            yield batch, self.checker.check(batch), numbers, row_digests
        if by_line is not None and done != len(by_line):
            log.warning("%s: %d rows read from %d lines: rows digested by their cells",
                        self.plan.name, done, len(by_line))

    def _new_lines(self, table: Table, lines: line_digests.Lines, by_line: np.ndarray,
                   known: np.ndarray, order: np.ndarray
                   ) -> Iterator[tuple[pa.RecordBatch, Rows, np.ndarray, np.ndarray]] | None:
        """The batches of the lines not known, parsed alone; None if they are not UTF-8.

        ``order`` sorts ``by_line`` (stable): the known lines are kept in that order.
        """
        data = lines.only(~known)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return None   # read whole, for the limits' message naming the row and field
        self.rows += len(by_line)
        self.skipped += int(known.sum())
        in_order = order[known[order]]
        self.known_lines = (by_line[in_order], lines.rows[in_order])
        rows, line_no, new_digests = lines.rows[~known], lines.line_no[~known], by_line[~known]

        def batches() -> Iterator[tuple[pa.RecordBatch, Rows, np.ndarray, np.ndarray]]:
            done = 0
            for batch in read_batches(table, self.plan.columns, lines=(data, line_no)):
                n = batch.num_rows
                numbers, row_digests = rows[done:done + n], new_digests[done:done + n]
                done += n
                yield batch, self.checker.check(batch), numbers, row_digests

        return batches()


# Parse only the new and changed lines of a CSV when at least this share of them is known.
PARSE_ONLY_NEW_SHARE = 0.5

# A staged row's tree (by its code) and the digest it was last loaded with.
_STAGED_TREE_DIGESTS = """
SELECT c.file_no, c.row_no, t.load_digest FROM load_checked c
JOIN smarttrees.trees t ON t.tree_code = c.tree_code
WHERE t.load_digest IS NOT NULL
ORDER BY c.file_no, c.row_no
"""


def _repeats_of_known_lines(conn: psycopg.Connection, files: list[FileInput]) -> None:
    """:func:`repeats_beside_unchanged` for lines known unchanged and not parsed.

    Their codes were not read. A line known unchanged is the line a tree was last loaded
    from (by its digest), so a staged row with the code of such a line is a staged row whose
    tree's digest is among them; two known lines with one code are the same line twice.
    """
    with_lines = [f for f in files if f.known_lines is not None]
    if not with_lines:
        return
    plans = {f.plan.file_no: f.plan for f in files}
    held = [(f.plan.file_no, *f.known_lines) for f in files if f.known_lines is not None]
    known = np.concatenate([digests_ for _, digests_, _ in held])
    rows = np.concatenate([rows_ for _, _, rows_ in held])
    file_no = np.concatenate([np.full(len(rows_), n) for n, _, rows_ in held])
    # Stable: one digest's lines stay in file order, then row order (each file's are sorted
    # so already: one file's need no sort).
    order = (np.arange(len(known)) if len(held) == 1
             else np.argsort(known, kind="stable"))
    ordered = known[order]
    twice = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(twice):
        first, at = order[twice[0]], order[twice[0] + 1]
        plan = plans[int(file_no[at])]
        raise InputError(plan.name, f"the tree code of row {int(rows[first])} appears again in "
                         f"row {int(rows[at])}, a row loaded before and unchanged: remove one "
                         "of them", row=int(rows[at]), field=plan.label("tree_code"))
    staged = conn.execute(_STAGED_TREE_DIGESTS).fetchall()
    if not staged or not len(ordered):
        return
    found = np.searchsorted(ordered, np.array([d for _, _, d in staged], dtype=np.int64))
    found = np.minimum(found, len(ordered) - 1)
    hits = np.flatnonzero(ordered[found] == np.array([d for _, _, d in staged], dtype=np.int64))
    for i in hits.tolist():
        staged_file, staged_row, _ = staged[i]
        line_file, line_row = int(file_no[order[found[i]]]), int(rows[order[found[i]]])
        if (line_file, line_row) > (staged_file, staged_row):
            plan = plans[line_file]
            raise InputError(plan.name, f"the tree code of row {staged_row} appears again in "
                             f"row {line_row}, a row loaded before and unchanged: remove one "
                             "of them", row=line_row, field=plan.label("tree_code"))
        plan = plans[staged_file]
        where = "" if line_file == staged_file else f"{plans[line_file].name} "
        conn.execute(
            "UPDATE load_checked SET problems = problems || format('%%s: %%s already appears "
            "in %%srow %%s', %s::text, tree_code, %s::text, %s::bigint) "
            "WHERE file_no = %s AND row_no = %s",
            (plan.label("tree_code"), where, line_row, staged_file, staged_row))


def repeats_beside_unchanged(conn: psycopg.Connection, files: list[FileInput]) -> None:
    """Refuse the staged rows repeating the code of an earlier row known unchanged.

    A row known unchanged by its digest is not staged, so the checks across staged rows
    (``etl.validate.cross_checks``) cannot see it: a later row with its code is refused here,
    naming it. A code repeated *by* an unchanged row after a staged one cannot be reported
    with its cells (it was not read into the staging tables): the run is then refused as a
    whole, naming both rows.
    """
    _repeats_of_known_lines(conn, files)
    if not any(f.skipped for f in files) or not any(f.codes for f in files):
        return
    hashes = np.concatenate([c for f in files for c in f.codes])
    rows = np.concatenate([r for f in files for r in f.code_rows])
    file_no = np.concatenate([np.full(len(r), f.plan.file_no) for f in files for r in f.code_rows])
    kept = np.concatenate([k for f in files for k in f.kept])
    order = np.lexsort((rows, file_no, hashes))
    ordered = hashes[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return
    plans = {f.plan.file_no: f.plan for f in files}
    starts = np.flatnonzero(np.concatenate([[True], ~same]))
    ends = np.concatenate([starts[1:], [len(order)]])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        group = order[start:end]
        if len(group) < 2 or kept[group].all():
            continue
        first, later = group[0], group[1:]
        unchanged_later = later[~kept[later]]
        if len(unchanged_later):
            at = unchanged_later[0]
            raise InputError(plans[int(file_no[at])].name, "the tree code of row "
                             f"{int(rows[first])} appears again in row {int(rows[at])}, a row "
                             "loaded before and unchanged: remove one of them",
                             row=int(rows[at]), field=plans[int(file_no[at])].label("tree_code"))
        if kept[first]:
            continue          # the staged rows of the group are checked in SQL
        at = later[0]
        plan = plans[int(file_no[at])]
        where = "" if file_no[first] == file_no[at] else f"{plans[int(file_no[first])].name} "
        conn.execute(
            "UPDATE load_checked SET problems = problems || format('%%s: %%s already appears "
            "in %%srow %%s', %s::text, tree_code, %s::text, %s::bigint) "
            "WHERE file_no = %s AND row_no = %s",
            (plan.label("tree_code"), where, int(rows[first]), int(file_no[at]), int(rows[at])))


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
                    phase: Callable[[str], None] | None = None) -> bool:
    """Check every file and COPY its good rows into the empty ``trees``; refused rows are staged.

    The caller holds the lock of :func:`claim_empty_inventory`; each file's counts are in its
    :class:`FileInput`. ``phase`` is told when the steps after the COPY begin. From
    :data:`DEFERRED_FROM` rows written, the secondary indexes of ``trees`` and its history are
    left to build after the commit: True is returned, and the caller then calls
    :func:`etl.bulk.build_deferred`.
    """
    restore, triggers = _prepare_empty(conn)
    # Ids of trees and history rows are given here, from where each identity stands (COPY may
    # set a GENERATED ALWAYS column); the identities are moved past them at the end.
    ids = {table: _next_id(conn, table) for table in SEQUENCES}
    clock = [time.perf_counter()]
    written = _copy_trees_and_history(conn, files, ids, actor, clock)
    if phase:
        phase("building keys and indexes")
    _run_ddl(conn, triggers)
    # What trees_count_insert would have added (TRUNCATE set the count to 0).
    conn.execute("UPDATE smarttrees.row_counts SET n = n + %s WHERE table_name = 'trees'",
                 (written,))
    # Keys and foreign keys before the commit (the codes were proven distinct and the species
    # resolved by the checks, so they cannot fail but on a bug: the run is then rolled back);
    # the secondary indexes only speed reads, and are built after it (etl.bulk.build_deferred).
    later = written >= DEFERRED_FROM
    if later:
        guards, deferred = bulk.guards_and_deferrable(restore)
        bulk.rebuild(conn, guards)
        bulk.defer(conn, deferred)
        log.debug("direct: keys and foreign keys rebuilt in %.2f s", _lap(clock))
    else:
        merge.rebuild_indexes(conn, restore)
        log.debug("direct: keys, indexes and foreign keys rebuilt in %.2f s", _lap(clock))
    if written:
        for table, first in ids.items():
            conn.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                         (table, first + written - 1))
    return later


def _copy_trees_and_history(conn: psycopg.Connection, files: list[FileInput],
                            ids: dict[str, int], actor: str, clock: list[float]) -> int:
    """COPY every file's good trees and their insert history, batch by batch; return how many."""
    next_id = ids["smarttrees.trees"]
    start = next_id
    offset = ids["smarttrees.tree_history"] - next_id      # history id of a tree's insert row
    run = RunChecks()
    # Each batch's history follows its trees on the connection: the server stores it while
    # this process checks the next batch (the phase is this process's; the server would wait).
    targets = {"trees": (sql.Identifier("smarttrees", "trees"), COLUMNS, True),
               "history": (sql.Identifier("smarttrees", "tree_history"), HISTORY_COLUMNS, False)}
    with interleaved_copy.InterleavedCopy(conn, targets) as copy:
        for f in files:
            next_id = _copy_file(copy, f, next_id, offset, actor, run)
    log.debug("direct: %d trees checked and copied in %.2f s (their history beside them)",
              next_id - start, _lap(clock))
    for f in files:
        f.refused_rows.copy(conn)
    return next_id - start


def _lap(clock: list[float]) -> float:
    """Seconds since the last lap (for the debug log)."""
    now = time.perf_counter()
    seconds, clock[0] = now - clock[0], now
    return seconds


def stage_checked(conn: psycopg.Connection, f: FileInput) -> None:
    """COPY one file's checked rows into ``load_checked`` and their cells into its raw table.

    For the merge into a loaded inventory: the checks across rows (``etl.validate``) run on
    them next, and may refuse a row the batch's checks let through, so every staged row keeps
    its cells for the rejects file.
    """
    with conn.cursor() as cur, binary_copy.open_copy(
            cur, sql.Identifier("load_checked"), STAGED_COLUMNS, queued=True) as copy:
        for batch, rows, numbers, row_digests in f.checked():
            bad = rows.problems.bad
            f.refused += int(bad.sum())
            f.refused_rows.add(batch, numbers, rows, row_digests, bad)
            f.refused_rows.add_cells(batch, numbers, np.flatnonzero(~bad))
            good = rows.take(~bad)
            if not len(good):
                continue
            gx, gy = spot_grid(good.lon, good.lat)
            copy.write(binary_copy.binary_rows([
                ("int4", np.full(len(good), f.plan.file_no, dtype=np.int32)),
                ("int8", numbers[~bad]), *good.stored(f.plan.source_crs, row_digests[~bad]),
                ("int8", gx), ("int8", gy)]))
    f.refused_rows.copy(conn)


def _next_id(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(NEXT_ID, (table,)).fetchone()
    assert row is not None
    return int(row[0])


def _prepare_empty(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Make the empty inventory ready for one bulk COPY; return what to restore after it.

    TRUNCATE gives ``trees`` (and an empty history) new files, which with ``wal_level =
    minimal`` (the managed cluster's) are written without WAL and may take frozen rows. Keys
    and indexes are rebuilt once after the COPY, and the insert triggers are gone meanwhile:
    the history rows they would write are COPYed too, in this same transaction. Returns the
    DDL of the keys and indexes, then that of the triggers.
    """
    tables = "smarttrees.trees"
    if conn.execute("SELECT NOT EXISTS (SELECT FROM smarttrees.tree_history)").fetchone() \
            == (True,):
        tables += ", smarttrees.tree_history"
    conn.execute(f"TRUNCATE {tables}")
    # Those new files are made durable at the commit, by an fsync of each. The kernel would
    # keep every page this session writes until then (hundreds of MB); asked to write them
    # back as they come, the disk works during the COPY and the keys, not in the commit (0.6
    # to 0.35 s, alternated, for the province's 1.13 M trees and their keys).
    conn.execute("SET LOCAL backend_flush_after = '2MB'")
    restore = merge.drop_indexes_for_bulk(conn, None, keys=True)
    return restore, _drop_insert_triggers(conn)


# A trigger's state as pg_trigger.tgenabled spells it, and the clause that sets it again.
TRIGGER_STATES = {"D": "DISABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


def _drop_insert_triggers(conn: psycopg.Connection) -> list[str]:
    """Drop the insert triggers of ``trees`` whose work the empty load does; return their DDL.

    Each takes the statement's transition table, and PostgreSQL fills it while any trigger
    that names one exists, even disabled: the server kept a copy of every COPYed row (0.2 s
    of its CPU and 250 MB of its memory for the province's 1.13 M trees). Dropped in this
    transaction, they are made again before its commit (:func:`_run_ddl`), in the state
    each was in. The history rows are COPYed by this module, every point was tested against
    the territory by :class:`Checker`, and the row count is set once after the COPY.
    """
    found = conn.execute(
        "SELECT tgname, pg_get_triggerdef(oid), tgenabled::text FROM pg_trigger "
        "WHERE tgrelid = 'smarttrees.trees'::regclass AND tgname = ANY(%s) ORDER BY tgname",
        (list(INSERT_TRIGGERS_DONE_HERE),)).fetchall()
    ddl: list[str] = []
    for name, definition, state in found:
        conn.execute(sql.SQL("DROP TRIGGER {} ON smarttrees.trees").format(sql.Identifier(name)))
        ddl.append(definition)
        if state in TRIGGER_STATES:
            ddl.append(sql.SQL("ALTER TABLE smarttrees.trees {} TRIGGER {}").format(
                sql.SQL(TRIGGER_STATES[state]), sql.Identifier(name)).as_string(conn))
    return ddl


def _run_ddl(conn: psycopg.Connection, statements: list[str]) -> None:
    """Run DDL from the catalogue (pg_get_triggerdef) or :func:`_drop_insert_triggers`."""
    for statement in statements:
        conn.execute(sql.SQL(statement))  # type: ignore[arg-type,unused-ignore]  # catalogue DDL


def _copy_file(copy: interleaved_copy.InterleavedCopy, f: FileInput, next_id: int,
               offset: int, actor: str, run: RunChecks) -> int:
    """COPY one file's good rows into ``trees``; keep its refused ones; return the next id.

    Each batch goes with its insert history (row ids: tree id + ``offset``).
    """
    for batch, rows, numbers, row_digests in f.checked():
        run.check(f.plan, rows, numbers)
        bad = rows.problems.bad
        if bad.any():
            f.refused += int(bad.sum())
            f.refused_rows.add(batch, numbers, rows, row_digests, bad)
            rows, row_digests = rows.take(~bad), row_digests[~bad]
        n = len(rows)
        if not n:
            continue
        ids = np.arange(next_id, next_id + n, dtype=np.int64)
        next_id += n
        copy.write("trees", binary_copy.binary_rows([
            ("int8", ids), *rows.stored(f.plan.source_crs, row_digests)]))
        copy.write("history", binary_copy.binary_rows([
            ("int8", ids + offset), ("int8", ids), ("text", rows.tree_code),
            ("text", np.full(n, b"insert")), ("text", np.full(n, actor.encode("utf-8"))),
            ("text", np.full(n, f.source.encode("utf-8")))]))
    return next_id


def _copy_rows(conn: psycopg.Connection, table: sql.Composable, columns: tuple[str, ...],
               rows: IO[bytes]) -> None:
    """COPY rows encoded by :func:`etl.binary_copy.binary_rows`, read back from ``rows``."""
    rows.seek(0)
    with conn.cursor() as cur, binary_copy.open_copy(cur, table, columns) as copy:
        while block := rows.read(BLOCK_BYTES):
            copy.write(block)
