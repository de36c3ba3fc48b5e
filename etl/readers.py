"""Readers: every input kind becomes a header list and chunks of text cells.

Cells stay text here (what the person typed); parsing, units and checks happen in SQL on the
staged rows, so a bad cell is reported with its original value. Files are streamed in chunks,
never held whole in memory: CSV in blocks of whole rows cut and checked against the limits of
``etl.limits`` (a CSV is scanned so once when opened, whichever path loads it) and parsed by
pandas' C parser, XLSX through calamine (python-calamine, Rust; the tree loader's workbook is
read once by fastexcel, header and columns: ``etl.xlsx_arrow``), GIS formats through pyogrio in
feature windows. pandas and geopandas are imported by
the readers that use them: the direct path (``etl.direct``, which reads CSVs with Arrow) needs
neither, and they cost a quarter of a second at every start.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pyproj import CRS

from etl import encodings
from etl.errors import InputError
from etl.limits import CHUNK_ROWS, CsvBlocks, Limits, size

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

    from etl.mapping_rows import Derivation

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".fgb", ".zip"}


@dataclass
class Chunk:
    """A run of rows: text cells, their row numbers, and point geometry when the file has one."""

    cells: pd.DataFrame                    # one text column per header, "" for empty
    row_no: np.ndarray                     # 1-based row (header = 1) or feature number
    x: np.ndarray | None = None            # geometry X/Y in the file's CRS
    y: np.ndarray | None = None
    geom_problem: list[str | None] | None = None


@dataclass
class Table:
    """An opened input: what it holds and how to read it."""

    path: Path
    kind: str                              # csv, xlsx or vector
    headers: list[str]
    crs: CRS | None = None                 # declared by the file (vector formats)
    geometry_type: str | None = None
    encoding: str = "utf-8"
    delimiter: str = ","
    layer: str | None = None
    size: int = 0
    extra: dict[str, object] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    data_offset: int = 0                   # CSV: byte offset of the first data row
    data_line: int = 2                     # CSV: its line in the file (blank lines counted)
    # Row work a mapping asks for (etl.mapping_rows): headers then end with the added columns.
    derivation: Derivation | None = None

    def chunks(self, rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
        """The rows, a chunk at a time."""
        if self.derivation is not None:
            base = replace(self, headers=self.headers[:self.derivation.file_columns],
                           derivation=None)
            return map(self.derivation.apply, base.chunks(rows))
        if self.kind == "csv":
            return _csv_chunks(self, rows)
        if self.kind == "xlsx":
            return _xlsx_chunks(self, rows)
        return _vector_chunks(self, rows)


def open_table(path: Path, encoding: str | None = None, layer: str | None = None,
               limits: Limits | None = None, *, scan: bool = True,
               keep_sheet: bool = False) -> Table:
    """Open any supported file and read its headers; raise :class:`InputError` if unusable.

    A CSV is read through once, checked against ``limits`` (the settings' by default), unless
    ``scan`` is false: for a caller that reads its rows only through :func:`csv_blocks`, which
    checks them as it goes (the tree loader, which saves a pass over the file). ``keep_sheet``:
    for a caller that reads the rows of this one table as Arrow batches next
    (``etl.arrow_readers``): a workbook's sheet is then read once, by fastexcel, its header
    taken from that read and its columns kept in the table until they are read.
    """
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not a file")
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty")
    limits = limits or Limits.from_settings()
    if suffix in (".csv", ".txt", ".tsv"):
        return _open_csv(path, encoding, limits, scan)
    if suffix in (".xlsx", ".xlsm"):
        return _open_xlsx(path, limits, keep_sheet)
    if suffix in VECTOR_SUFFIXES:
        table = _open_vector(path, layer)
        table.limits = limits
        return table
    raise InputError(
        path, f"unsupported file type {suffix!r}: CSV, XLSX, GeoJSON, GPKG, SHP or FGB expected"
    )


# -- CSV -------------------------------------------------------------------------------------


def _open_csv(path: Path, encoding: str | None, limits: Limits, scan: bool = True) -> Table:
    encodings.register()
    encoding = encoding or encodings.detect(path)
    # The header alone, read as bytes: a bad byte further down is reported with its own row.
    with path.open("rb") as raw:
        line = raw.readline(limits.row_bytes + 1)
        data_line = 2
        while line and not line.strip():
            line = raw.readline(limits.row_bytes + 1)
            data_line += 1
        data_offset = raw.tell()
    if b"\0" in line:
        raise InputError(path, "a NUL byte (0x00) in the header: binary data, or a UTF-16 file? "
                         "Save it as a UTF-8 CSV", row=1)
    if len(line) > limits.row_bytes:
        raise InputError(path, f"the header is longer than {size(limits.row_bytes)} "
                         "(SMARTTREES_LOAD_MAX_ROW_BYTES): not a CSV?", row=1)
    try:
        first = line.decode(encoding)
    except LookupError as exc:
        raise InputError(path, f"unknown encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(path, f"the header is not valid {encoding}: try --encoding tcvn3, vni "
                         "or cp1258", row=1) from exc
    first = first.lstrip("\ufeff")
    if encoding.replace("-", "").lower() == "cp1258":
        first = unicodedata.normalize("NFC", first)   # tones as combining marks, as the cells
    if not first.strip():
        raise InputError(path, "the file is empty (no header row)")
    delimiter = max((",", ";", "\t", "|"), key=lambda d: first.count(d))
    # The csv module's own cap on a field (128 KiB) would stop a header our limits allow.
    csv.field_size_limit(max(csv.field_size_limit(), limits.row_bytes))
    headers = [h.strip() for h in next(csv.reader([first], delimiter=delimiter))]
    if len(headers) < 2:
        raise InputError(path, f"only one column ({headers[0]!r}): not a delimited table", row=1)
    _check_headers(path, headers)
    table = Table(path, "csv", headers, encoding=encoding, delimiter=delimiter,
                  size=path.stat().st_size, limits=limits, data_offset=data_offset,
                  data_line=data_line)
    if scan:
        _blocks(table).scan()
    return table


def checked_bytes(table: Table) -> Iterator[bytes]:
    """A CSV's bytes as they are, the data rows checked against the limits as they are read.

    The header line (and blank lines before the first data row) first, then the blocks of
    :class:`etl.limits.CsvBlocks`: the file's bytes, in order, for a reader of the whole file
    that saves the pass of the scan at open.
    """
    with table.path.open("rb") as raw:
        yield raw.read(table.data_offset)
    yield from _blocks(table)


class CheckedStream(io.RawIOBase):
    """:func:`checked_bytes` as a binary file (for Arrow's CSV reader); ``tell`` counts bytes.

    A refusal of the checks ends the stream and is kept in ``refusal``, not raised: Arrow
    calls ``readinto`` on a thread of its own (see :mod:`etl.arrow_csv`, which raises it).
    """

    def __init__(self, table: Table) -> None:
        super().__init__()
        self._parts = checked_bytes(table)
        self._left = memoryview(b"")
        self._done = 0
        self.refusal: Exception | None = None

    def readable(self) -> bool:
        """Always: a stream to read."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the next checked bytes; 0 at the end of the file."""
        while not self._left:
            try:
                part = next(self._parts, None)
            except Exception as exc:  # noqa: BLE001 - kept for the reading thread to raise
                self.refusal = exc.with_traceback(None)
                part = None
            if part is None:
                return 0
            self._left = memoryview(part)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        self._done += n
        return n

    def tell(self) -> int:
        """Bytes read so far (for the progress bar)."""
        return self._done


def _blocks(table: Table) -> CsvBlocks:
    return CsvBlocks(table.path, table.headers, table.encoding, table.delimiter,
                     table.data_offset, table.limits)


MAX_COLUMNS = 1_600    # PostgreSQL's limit on a table's columns (the staging table has one each)


def _check_headers(path: Path, headers: list[str]) -> None:
    if len(headers) > MAX_COLUMNS - 10:
        raise InputError(path, f"{len(headers):,} columns: at most {MAX_COLUMNS - 10:,} are "
                         "read", row=1)
    seen: set[str] = set()
    for i, h in enumerate(headers):
        if h in seen:
            raise InputError(path, f"column {h!r} appears twice in the header", row=1, field=h)
        seen.add(h)
        if not h:
            raise InputError(path, f"column {i + 1} has no name in the header", row=1)


def _csv_chunks(table: Table, rows: int) -> Iterator[Chunk]:
    """The data rows in frames of one block of whole rows each (see :mod:`etl.limits`)."""
    import pandas as pd

    start = 2
    lines = table.data_line       # the file's line of the block's first line
    for block in _blocks(table):
        try:
            frame = pd.read_csv(
                io.BytesIO(block), sep=table.delimiter, dtype=str, keep_default_na=False,
                na_filter=False, encoding=table.encoding, header=None, names=table.headers,
                skip_blank_lines=True, quotechar='"', on_bad_lines="error", engine="c")
        except pd.errors.EmptyDataError:
            frame = pd.DataFrame(columns=table.headers)
        except pd.errors.ParserError as exc:
            raise InputError(table.path, f"malformed CSV: {_file_lines(str(exc), lines)}") \
                from exc
        lines += block.count(b"\n")
        if table.encoding.replace("-", "").lower() == "cp1258":
            # Windows-1258 spells tones as combining marks: compose them as Unicode does.
            frame = frame.apply(lambda col: col.str.normalize("NFC"))
        # pandas skips blank lines, so row numbers count records, as spreadsheets do.
        for at in range(0, len(frame), rows):
            part = frame.iloc[at:at + rows].reset_index(drop=True)
            yield Chunk(part, np.arange(start, start + len(part)))
            start += len(part)


def _file_lines(message: str, first: int) -> str:
    """A parser message about a block, with the file's line numbers (``first``: the block's)."""
    def shift(match: re.Match[str]) -> str:
        return f"line {int(match.group(1)) + first - 1:,}"

    return re.sub(r"line (\d+)", shift, message.strip())


# -- XLSX ------------------------------------------------------------------------------------


def _open_xlsx(path: Path, limits: Limits, keep_sheet: bool) -> Table:
    _check_shared_strings(path, limits)
    sheet, headers, data_line = None, None, 0      # 0: the first data row not known yet
    if keep_sheet:
        # fastexcel reads the whole sheet (it cannot read only its first rows): the header comes
        # from that read when its names tell it, so the sheet is read once, not twice.
        from etl import xlsx_arrow

        sheet = xlsx_arrow.load(path)
        headers = xlsx_arrow.headers(sheet) if sheet is not None else None
    if headers is None:
        headers, header_row = _xlsx_header(path)
        data_line = header_row + 1
    else:
        data_line = _first_filled_row(path) + 1       # fastexcel's names are that row's cells
    _check_headers(path, headers)
    table = Table(path, "xlsx", headers, size=path.stat().st_size, limits=limits,
                  data_line=data_line)
    if keep_sheet:
        table.extra[xlsx_arrow.SHEET] = xlsx_arrow.fit(sheet, table) if sheet is not None \
            else None
    return table


def xlsx_data_line(table: Table) -> int:
    """The first sheet's first data row, numbered as :func:`xlsx_rows` numbers them.

    Found by the row reader when the header came from fastexcel's names.
    """
    if table.data_line <= 0:
        table.data_line = _xlsx_header(table.path)[1] + 1
    return table.data_line


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


def _first_filled_row(path: Path) -> int:
    """The first sheet's first row holding a value (the used range's first row), or −1.

    Read from the top of the sheet's XML, stopping there (the rows above it are empty), so the
    header's row is known without a second read of the whole sheet; −1 when the parts are not
    where the format puts them (:func:`xlsx_data_line` then asks the row reader).
    """
    import xml.etree.ElementTree as ET
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            book = ET.fromstring(archive.read("xl/workbook.xml"))
            first = book.find(f"{_SHEET_NS}sheets/{_SHEET_NS}sheet")
            links = ET.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            target = next(link.get("Target", "") for link in links
                          if first is not None and link.get("Id") == first.get(f"{_RELS_NS}id"))
            name = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            with archive.open(name) as sheet:
                number = 0
                for _, element in ET.iterparse(sheet):
                    if element.tag == f"{_SHEET_NS}row":
                        number = int(element.get("r", number + 1))   # r may be left out
                        if any(cell.find(f"{_SHEET_NS}v") is not None
                               or cell.find(f"{_SHEET_NS}is") is not None for cell in element):
                            return number
                        element.clear()
    except (KeyError, StopIteration, ValueError, OSError, ET.ParseError, zipfile.BadZipFile):
        pass
    return -1


def _check_shared_strings(path: Path, limits: Limits) -> None:
    """Refuse a workbook whose text table the reader would hold whole beyond a batch's bound.

    A sheet is streamed row by row, but the workbook's shared strings are read into memory at
    once: a few MB in a real survey, gigabytes in a zip bomb.
    """
    import zipfile

    from etl.xlsx_prefetch import shared_strings_size

    try:
        strings = shared_strings_size(path)
    except zipfile.BadZipFile:
        return      # the reader says what is wrong with it
    bound = limits.shared_strings_bytes
    if strings > bound:
        raise InputError(path, f"its shared text table unpacks to {strings / 2**20:,.0f} MiB, "
                         f"over {size(bound)} (16 × SMARTTREES_LOAD_BATCH_BYTES): save it as CSV")


def xlsx_rows(path: Path) -> Iterator[tuple[int, list[object]]]:
    """(row number, values) of the first sheet's rows, read by calamine (Rust)."""
    from python_calamine import CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
    except Exception as exc:  # calamine raises several kinds for a broken file
        raise InputError(path, f"not a readable XLSX workbook: {exc}") from exc
    try:
        # python-calamine yields the rows from the sheet's first (empty ones above the used
        # range too), so they are numbered from 1, as Excel shows them.
        yield from enumerate(sheet.iter_rows(), start=1)
    finally:
        book.close()


def _xlsx_header(path: Path) -> tuple[list[str], int]:
    for number, values in xlsx_rows(path):
        cells = [cell_text(v) for v in values]
        if any(cells):
            while cells and not cells[-1]:
                cells.pop()
            return [c.strip() for c in cells], number
    raise InputError(path, "the first sheet is empty (no header row)")


def cell_text(value: object) -> str:
    """A workbook cell as the text a person sees (1.0 → "1", a date → "2019-03-15")."""
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "date") and hasattr(value, "hour"):
        return value.date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _xlsx_chunks(table: Table, rows: int) -> Iterator[Chunk]:
    import pandas as pd

    header_row = xlsx_data_line(table) - 1
    width = len(table.headers)
    buffer: list[list[str]] = []
    numbers: list[int] = []
    for number, values in xlsx_rows(table.path):
        if number <= header_row:
            continue
        cells = [cell_text(v) for v in values[:width]]
        if not any(cells):
            continue
        _check_cells(table, cells, number)
        buffer.append(cells + [""] * (width - len(cells)))
        numbers.append(number)
        if len(buffer) >= rows:
            yield Chunk(pd.DataFrame(buffer, columns=table.headers), np.array(numbers))
            buffer, numbers = [], []
    if buffer:
        yield Chunk(pd.DataFrame(buffer, columns=table.headers), np.array(numbers))


def _check_cells(table: Table, cells: list[str], row: int) -> None:
    """Refuse a cell over the field limit, as a CSV's would be."""
    limit = table.limits.field_bytes
    for name, text in zip(table.headers, cells, strict=False):
        if len(text) * 4 > limit and len(text.encode()) > limit:
            raise InputError(table.path, f"the cell is longer than {size(limit)} "
                             "(SMARTTREES_LOAD_MAX_FIELD_BYTES)", row=row, field=name)


def _check_frame(table: Table, cells: pd.DataFrame, first: int) -> None:
    """Refuse a cell of a frame over the field limit (``first``: the frame's first row)."""
    limit = table.limits.field_bytes
    for name in cells.columns:
        lengths = cells[name].str.len().to_numpy()
        for i in np.flatnonzero(lengths * 4 > limit):
            if len(str(cells[name].iat[int(i)]).encode()) > limit:
                raise InputError(table.path, f"the cell is longer than {size(limit)} "
                                 "(SMARTTREES_LOAD_MAX_FIELD_BYTES)", row=first + int(i),
                                 field=str(name))


# -- GIS formats -----------------------------------------------------------------------------


def _open_vector(path: Path, layer: str | None) -> Table:
    import pyogrio

    try:
        info = pyogrio.read_info(path, layer=layer)
    except Exception as exc:  # pyogrio.errors.DataSourceError and friends
        raise InputError(path, f"not a readable GIS file: {exc}") from exc
    headers = [str(f) for f in info["fields"]]
    crs = CRS.from_user_input(info["crs"]) if info.get("crs") else None
    table = Table(path, "vector", headers, crs=crs, geometry_type=info.get("geometry_type"),
                  layer=layer, size=int(info.get("features") or 0))
    if table.size == 0:
        raise InputError(path, "the layer holds no features")
    return table


def read_gis_frame(path: Path) -> gpd.GeoDataFrame:
    """A whole GIS layer as a GeoDataFrame (for small layers: admin units, stands).

    Raises
    ------
    InputError
        The file cannot be read or its layer holds no features.

    """
    import geopandas as gpd

    try:
        frame = gpd.read_file(path, engine="pyogrio")
    except Exception as exc:  # pyogrio's DataSourceError and friends
        raise InputError(path, f"not a readable GIS file: {exc}") from exc
    if frame.empty:
        raise InputError(path, "the layer holds no features")
    return frame


def _vector_chunks(table: Table, rows: int) -> Iterator[Chunk]:
    import pandas as pd
    import shapely
    from pyogrio.raw import read

    done = 0
    while done < table.size:
        meta, _, wkb, columns = read(
            table.path, layer=table.layer, skip_features=done, max_features=rows
        )
        count = len(wkb) if wkb is not None else len(columns[0])
        if count == 0:
            break
        names = [str(n) for n in meta["fields"]]
        cells = pd.DataFrame({n: _text_array(c) for n, c in zip(names, columns, strict=True)})
        _check_frame(table, cells, done + 1)
        geoms = shapely.from_wkb(wkb) if wkb is not None else np.full(count, None)
        x, y, problems = point_xy(geoms)
        yield Chunk(cells, np.arange(done + 1, done + count + 1), x, y, problems)
        done += count


def _text_array(values: np.ndarray) -> list[str]:
    import pandas as pd

    if values.dtype.kind == "f":
        out = pd.Series(values).map(lambda v: "" if np.isnan(v) else (
            str(int(v)) if float(v).is_integer() else repr(float(v))))
        return list(out)
    if values.dtype.kind == "M":
        return ["" if pd.isna(v) else str(v)[:10] for v in values]
    return ["" if v is None else str(v) for v in values]


def point_xy(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """X/Y of point geometries; a problem text where a feature is not a usable point."""
    import shapely

    types = shapely.get_type_id(geoms)
    is_point = types == 0
    multi = types == 4  # a MultiPoint of one point is common in Shapefiles
    single = multi & (shapely.get_num_geometries(geoms) == 1)
    pts = np.where(single, shapely.get_geometry(geoms, 0), geoms)
    usable = (is_point | single) & ~shapely.is_empty(pts)
    kept = pts.copy()
    kept[~usable] = None
    x = np.where(usable, shapely.get_x(kept), np.nan)
    y = np.where(usable, shapely.get_y(kept), np.nan)
    problems: list[str | None] = []
    names = shapely.get_type_id(geoms)
    for i in range(len(geoms)):
        if usable[i]:
            problems.append(None)
        elif geoms[i] is None:
            problems.append("geometry: missing")
        elif shapely.is_empty(geoms[i]):
            problems.append("geometry: empty")
        else:
            problems.append(f"geometry: {_TYPE_NAMES.get(int(names[i]), 'geometry')} "
                            "where a point was expected")
    return x.astype("float64"), y.astype("float64"), problems


_TYPE_NAMES = {1: "LineString", 2: "LinearRing", 3: "Polygon", 4: "MultiPoint",
               5: "MultiLineString", 6: "MultiPolygon", 7: "GeometryCollection"}


def csv_text(frame: pd.DataFrame) -> str:
    """A frame as CSV text without header, the form COPY … (FORMAT csv) reads."""
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False)
    return buffer.getvalue()
