"""The one checker: Arrow columns typed and checked against the rules of :mod:`etl.rules`.

Every loader (tree surveys in ``etl.direct``, seed data in ``etl.seed``, administrative units
in ``etl.admin``) reads its rows into Arrow and checks them here, a column at a time with
``pyarrow.compute`` and numpy. A check never stops at the first bad row: each one adds a
:class:`Finding` (the rows it refuses and how to word each) to the batch's :class:`Problems`,
and the loader writes the good rows and reports every problem of every bad one, named by the
file's own header, in the order the checks ran.

Values with few distinct forms (species, vocabularies, dates, codes) are resolved once per
distinct value in Python and spread over the rows through Arrow's dictionary indices.

>>> import pyarrow as pa
>>> problems = Problems(3)
>>> values = numbers(pa.array(["8,6", "abc", None]), "ĐK (cm)", problems)
>>> [None if v != v else float(v) for v in values]
[8.6, None, None]
>>> problems.reasons()
{1: ["ĐK (cm): 'abc' is not a number"]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etl.rules import VOCABULARIES, Rules
from smarttrees.domain import fold

# Non-capturing groups; exponents of up to two digits, or three with a leading zero as printf
# writes them (1.5e+001): a longer one could overflow, and is out of every range anyway.
NUMBER_RE = r"^[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?0?[0-9]{1,2})?$"
_NUMBER = re.compile(NUMBER_RE)

Resolve = Callable[[str], tuple[object, str | None]]   # raw → (value, problem)


def shown(raw: str, width: int = 80) -> str:
    """A cell quoted in a message: its first ``width`` characters (a cell may hold a megabyte)."""
    return repr(raw if len(raw) <= width else raw[:width] + "…")


def quoted(raw: str) -> str:
    """A cell quoted as SQL writes a literal ('21°30''N'), as number messages always have."""
    return "'" + raw.replace("'", "''") + "'"


@dataclass
class Finding:
    """The rows one check refuses (indices into the batch) and the reason for each."""

    rows: np.ndarray
    reasons: Sequence[str]
    field: str | None = None        # the header the reasons are about, when one


@dataclass
class Problems:
    """Every problem of every row of one batch, in the order the checks were added."""

    n: int
    findings: list[Finding] = field(default_factory=list)

    def add(self, bad: np.ndarray | None, reason: str | Callable[[np.ndarray], Sequence[str]],
            field: str | None = None) -> None:
        """Refuse the rows where ``bad`` is true, each with ``reason`` (or ``reason(rows)``)."""
        if bad is None:
            return
        rows = np.flatnonzero(bad)
        if len(rows):
            self.findings.append(Finding(
                rows, [reason] * len(rows) if isinstance(reason, str) else reason(rows), field))

    def extend(self, findings: Iterable[Finding | None]) -> None:
        """Add findings computed earlier, in the order given."""
        self.findings += [f for f in findings if f is not None and len(f.rows)]

    @property
    def bad(self) -> np.ndarray:
        """True for each row with at least one problem."""
        mask = np.zeros(self.n, dtype=bool)
        for f in self.findings:
            mask[f.rows] = True
        return mask

    def reasons(self) -> dict[int, list[str]]:
        """Row index → its problems, in check order."""
        out: dict[int, list[str]] = {}
        for f in self.findings:
            for row, reason in zip(f.rows.tolist(), f.reasons, strict=True):
                out.setdefault(row, []).append(reason)
        return dict(sorted(out.items()))


# -- one kind of column each ---------------------------------------------------------------------


def as_text(column: pa.Array) -> pa.Array:
    """Any column as plain text (dictionary decoded, numbers and dates written out)."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%d")
    return column if pa.types.is_string(column.type) else column.cast(pa.string())


def text(column: pa.Array | None) -> pa.Array | None:
    """Trimmed text of a column, empty → null (the checks' ``nullif(btrim(cell), '')``)."""
    if column is None:
        return None
    trimmed = pc.utf8_trim(as_text(column), characters=" ")
    return pc.if_else(pc.equal(trimmed, ""), None, trimmed)


def present(column: pa.Array | None, n: int) -> np.ndarray:
    """True where a (trimmed) text column has a value."""
    if column is None:
        return np.zeros(n, dtype=bool)
    return pc.is_valid(column).to_numpy(zero_copy_only=False)


def cells(column: pa.Array, rows: np.ndarray) -> list[str]:
    """The trimmed cells of some rows, as the file wrote them (for messages)."""
    return [v or "" for v in text(column.take(pa.array(rows))).to_pylist()]  # type: ignore[union-attr]


def numbers(column: pa.Array, label: str, problems: Problems | None = None,
            *, finding: list[Finding | None] | None = None) -> np.ndarray:
    """A column as float64 (NaN: empty); a cell that is no finite number is refused.

    Decimal commas ("8,6") are read; so are exponents. A column typed as numbers by its
    reader (a workbook's, a GIS layer's) is taken as it is. The finding goes to ``problems``,
    or is appended to ``finding`` for the caller to add in its own order.
    """
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = pc.fill_null(column.cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)
        return np.where(np.isfinite(values), values, np.nan)
    raw = as_text(column)
    parsed = _parsed(raw)
    values = pc.fill_null(parsed, np.nan).to_numpy(zero_copy_only=False).astype(np.float64)
    # Only a row without a finite number can be bad: its cell is then empty or no number.
    unread = np.flatnonzero(~np.isfinite(values))
    values[unread] = np.nan
    found = None
    if len(unread):
        written = [(int(i), c) for i, c in zip(unread.tolist(), cells(raw, unread), strict=True)
                   if c]
        if written:
            found = Finding(np.array([i for i, _ in written], dtype=np.int64),
                            [f"{label}: {quoted(c)} is not a number" for _, c in written])
    if finding is not None:
        finding.append(found)
    elif problems is not None:
        problems.extend([found])
    return values


def _parsed(raw: pa.Array) -> pa.Array:
    """A text column cast to float64 by the cheapest way that reads all of it.

    Most columns are plain numbers (one cast), or all written with a decimal comma (one
    replacement, one cast); only a column with other cells is trimmed and matched cell by cell.
    """
    for attempt in (lambda: raw, lambda: pc.replace_substring(raw, ",", ".")):
        try:
            return pc.cast(attempt(), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return _lenient(raw)


def _lenient(raw: pa.Array) -> pa.Array:
    """Numbers written as people write them: padded, with a decimal comma; others null."""
    trimmed = pc.utf8_trim(raw, characters=" ")
    good = pc.fill_null(pc.match_substring_regex(trimmed, NUMBER_RE), False)
    return pc.cast(pc.if_else(good, pc.replace_substring(trimmed, ",", "."), None), pa.float64())


@dataclass
class Resolved:
    """A lookup column resolved: each row's value (``empty`` where none) and the refusals."""

    values: np.ndarray
    finding: Finding | None


Typed = Callable[[pa.Array], tuple[np.ndarray, np.ndarray]]   # cells → (values, which read)


def lookup(column: pa.Array | None, n: int, label: str, resolve: Resolve,
           empty: object = None, dtype: Any = object, *, quoted: bool = True,
           typed: Typed | None = None) -> Resolved:
    """Resolve each distinct (trimmed) value of a column once; a problem refuses its rows.

    ``resolve(raw)`` gives (value, problem); an empty cell gives ``empty`` and no problem.
    The reason is ``label: 'raw' problem``, or ``label: problem`` when not ``quoted`` (a
    problem that quotes the value itself). ``typed`` reads the distinct cells at once, giving
    their values and which of them it read as ``resolve`` would, with no problem (e.g.
    :func:`iso_days`); the others go to ``resolve``.
    """
    if column is None:
        return Resolved(np.full(n, empty, dtype=dtype), None)
    if not pa.types.is_dictionary(column.type):
        column = pc.dictionary_encode(as_text(column))
    cells = as_text(column.dictionary)
    count = len(cells)
    values: list[object] = [empty] * (count + 1)        # the last: a null cell
    read_at_once = (np.zeros(count, dtype=np.int64), np.zeros(count, dtype=bool))
    if typed is not None and count:
        read_at_once = typed(cells)
    left = np.flatnonzero(~read_at_once[1])
    problems: dict[int, str] = {}
    left_cells = (cells if len(left) == count else cells.take(pa.array(left))).to_pylist()
    for i, cell in zip(left.tolist(), left_cells, strict=True):
        raw = (cell or "").strip(" ")
        if not raw:
            continue
        value, problem = resolve(raw)
        if problem is not None:
            problems[i] = f"{label}: {shown(raw)} {problem}" if quoted else f"{label}: {problem}"
        else:
            values[i] = value
    table = np.array(values, dtype=dtype)
    if typed is not None and count and read_at_once[1].any():
        table[:count][read_at_once[1]] = read_at_once[0][read_at_once[1]]
    indices = pc.fill_null(column.indices, count).to_numpy(zero_copy_only=False)
    typed_values = table[indices]
    if not problems:
        return Resolved(typed_values, None)
    rows = np.flatnonzero(np.isin(indices, list(problems)))
    return Resolved(typed_values, Finding(rows, [problems[int(i)] for i in indices[rows]], label))


_ISO_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def iso_days(cells: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The days of the cells written as ISO dates that :func:`parse_date` takes as they are.

    Read by Arrow at once (a survey's batch holds thousands of distinct planting days): a
    cell of exactly that form naming a day from 1800 to today; any other cell is left to
    :func:`parse_date` (also every one of a batch with a day that does not exist, 2008-02-30,
    which Arrow refuses for the whole array). Returns the days (``datetime64[D]``) and which.
    """
    days = np.full(len(cells), np.datetime64("NaT"), dtype="datetime64[D]")
    iso = pc.fill_null(pc.match_substring_regex(cells, _ISO_DAY), False)
    which = iso.to_numpy(zero_copy_only=False)
    if not which.any():
        return days, which
    try:
        parsed = pc.cast(cells.filter(iso), pa.date32())
    except pa.ArrowInvalid:
        return days, np.zeros(len(cells), dtype=bool)
    values = parsed.to_numpy(zero_copy_only=False).astype("datetime64[D]")
    ok = (values >= np.datetime64("1800-01-01")) & (values <= np.datetime64(dt.date.today()))
    at = np.flatnonzero(which)
    which = np.zeros(len(cells), dtype=bool)
    which[at[ok]] = True
    days[at[ok]] = values[ok]
    return days, which


# -- dates and years -------------------------------------------------------------------------------

DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S")


def parse_date(raw: str) -> tuple[str | None, str | None]:
    """(ISO date, None) of a date as surveys write it, or (None, what is wrong with it)."""
    text_ = raw.strip()
    if len(text_) == 10 and text_.isascii() and text_[4] == text_[7] == "-":
        # The ISO form, as most surveys write it: read by the C parser (strptime cost 30 µs a
        # date, 0.2 s for the 6,000 distinct days of an 11,300-row resurvey). It takes the
        # days "%Y-%m-%d" takes of this shape; anything else goes on to the patterns.
        with contextlib.suppress(ValueError):
            return check_day(dt.date.fromisoformat(text_))
    for pattern in DATE_FORMATS:
        try:
            day = dt.datetime.strptime(text_, pattern).date()
        except ValueError:
            continue
        return check_day(day)
    return None, "is not a date (YYYY-MM-DD or DD/MM/YYYY)"


def check_day(day: dt.date) -> tuple[str | None, str | None]:
    """A day no survey can hold (before 1800, or to come) is refused."""
    if day.year < 1800:
        return None, f"{day.isoformat()} is before 1800"
    if day > dt.date.today():
        return None, f"{day.isoformat()} is in the future"
    return day.isoformat(), None


def parse_year(raw: str) -> tuple[str | None, str | None]:
    """(ISO date of 1 January, None) of a planting year, or (None, the problem)."""
    text_ = raw.strip().removesuffix(".0")
    if not text_.isdigit() or not 1 <= int(text_) <= 9999:
        return None, "is not a year"
    return check_day(dt.date(int(text_), 1, 1))


# -- a table of rules over a batch (seed data, administrative units) -----------------------------


@dataclass
class Checked:
    """A batch checked against a table of rules: each field's values and the problems."""

    values: dict[str, np.ndarray]      # field → one Python value per row (None: empty)
    problems: Problems


def check(batch: pa.RecordBatch | pa.Table, columns: dict[str, int], labels: dict[str, str],
          rules: Rules, resolvers: dict[str, Resolve] | None = None) -> Checked:
    """Check the fields a file has against ``rules``; every problem of every row is kept.

    ``columns`` gives each field's column, ``labels`` how messages name it (the file's
    header); ``resolvers`` resolve the ``lookup`` vocabularies (species, nursery…).
    """
    n = batch.num_rows
    problems = Problems(n)
    values: dict[str, np.ndarray] = {}
    for rule in rules:
        if rule.name not in columns:
            continue
        column = batch.column(columns[rule.name])
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        label = labels[rule.name]
        given = text(column)
        if rule.required:
            problems.add(~present(given, n), f"{label}: missing", label)
        if rule.kind == "text":
            values[rule.name] = np.array(given.to_pylist(), dtype=object)  # type: ignore[union-attr]
            if rule.max_length is not None:
                long = pc.fill_null(pc.greater(pc.utf8_length(given), rule.max_length), False)
                problems.add(long.to_numpy(zero_copy_only=False),
                             f"{label}: longer than {rule.max_length} characters", label)
            continue
        resolve = _resolver(rule, resolvers or {})
        found = lookup(given, n, label, resolve, quoted=rule.kind != "unit_code")
        problems.extend([found.finding])
        values[rule.name] = found.values
    return Checked(values, problems)


def _resolver(rule: object, resolvers: dict[str, Resolve]) -> Resolve:
    from etl.rules import Rule

    assert isinstance(rule, Rule)
    if rule.kind in ("integer", "year"):
        return lambda raw: _whole(raw, rule.kind == "year", rule.low)
    if rule.kind == "date":
        return _day
    if rule.kind == "choice":
        choices = VOCABULARIES[rule.vocabulary or rule.name]
        return lambda raw: _choice(raw, choices)
    return resolvers[rule.vocabulary or rule.kind]


def _whole(raw: str, year: bool, low: float | None) -> tuple[object, str | None]:
    if not _NUMBER.match(raw.strip()):
        return None, "is not a number"
    number = float(raw.strip().replace(",", "."))
    if not number.is_integer():
        return None, "is not a whole number"
    if year and not 1900 <= number <= dt.date.today().year:
        return None, "is not a plausible year"
    if low is not None and number < low:
        return None, f"is below {int(low)}"
    return int(number), None


def _day(raw: str) -> tuple[object, str | None]:
    day, problem = parse_date(raw)
    return (dt.date.fromisoformat(day) if day else None), problem


def _choice(raw: str, choices: dict[str, str]) -> tuple[object, str | None]:
    value = choices.get(fold(raw))
    if value is None:
        return None, f"is not one of {', '.join(sorted(set(choices.values())))}"
    return value, None
