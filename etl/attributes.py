r"""Columns a mapping does not know, kept per tree in ``trees.attributes`` (issue 11 point 7).

Nothing a surveyor recorded is dropped: each cell of a column that feeds no field is kept in the
tree's ``attributes`` object under the file's own header ("Ghi chú": "gần trụ điện"), empty cells
left out, and no object at all for a row whose extra cells are all empty. A mapping's
``exclude`` list names headers not to keep (matched like aliases, without case or diacritics).
Columns whose header names personal data (a phone, an ID or bank number, an e-mail, a person's
name) are never kept: trees are a public layer (see :data:`PERSONAL`).

The objects are built column-wise with Arrow (one string concatenation per column, no Python
object per row) on the direct path, and with ``jsonb_object`` in SQL on the checked path.

>>> import pyarrow as pa
>>> batch = pa.record_batch({"c0": ["A", "B"], "c1": ['gần "trụ"', ""]})
>>> objects(batch, [(1, "Ghi chú")]).to_pylist()
['{"Ghi chú":"gần \\"trụ\\""}', '']
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from smarttrees.domain import fold

# Headers the loader reads itself, whatever the mapping: never kept as attributes.
GEOMETRY_HEADERS = frozenset({"geometry", "geom", "wkt", "the_geom"})
# Folded words of headers naming personal data, Vietnamese and English.
PERSONAL = re.compile(
    r"\b(dien thoai|sdt|dt lien he|phone|mobile|tel|cmnd|cccd|can cuoc|chung minh|passport|"
    r"ho chieu|so tai khoan|stk|tai khoan|account|iban|email|e-mail|thu dien tu|ho ten|ho va ten|"
    r"ten chu|chu ho|nguoi|full name|owner name|surveyor|nhan vien|thiet bi|device|imei|user)\b")


def personal(header: str) -> bool:
    """True for a header that names personal data ("Số điện thoại", "Người khảo sát"…)."""
    return PERSONAL.search(fold(header)) is not None


def extra_columns(headers: list[str], used: Iterable[int],
                  exclude: Iterable[str] = ()) -> list[tuple[int, str]]:
    """(index, header) of the columns feeding no field and not excluded by the mapping."""
    taken = set(used)
    excluded = {fold(h) for h in exclude} | GEOMETRY_HEADERS
    return [(i, h) for i, h in enumerate(headers)
            if i not in taken and h.strip() and fold(h) not in excluded and not personal(h)]


def _json_string(column: pa.Array) -> pa.Array:
    """Each cell as a JSON string literal (nulls stay null); control characters escaped."""
    text = pc.utf8_trim(column.cast(pa.string()), characters=" ")
    text = pc.if_else(pc.equal(text, ""), None, text)
    if pc.any(pc.match_substring_regex(text, r"[\x00-\x1f]")).as_py():
        # Rare: orjson escapes every control character exactly.
        return pa.array([None if v is None else orjson.dumps(v).decode()
                         for v in text.to_pylist()], pa.string())
    text = pc.replace_substring(text, "\\", "\\\\")
    text = pc.replace_substring(text, '"', '\\"')
    return pc.binary_join_element_wise('"', text, '"', "")


def objects(batch: pa.RecordBatch, extra: list[tuple[int, str]]) -> pa.Array:
    """The JSON object of each row's extra cells (``""``: none), as an Arrow string array."""
    n = batch.num_rows
    if not extra:
        return pa.array([""] * n, pa.string())
    parts = []
    for index, header in extra:
        key = orjson.dumps(header.strip()).decode() + ":"
        value = _json_string(batch.column(index))
        parts.append(pc.binary_join_element_wise(key, value, ""))
    # (One part is its own body: Arrow 26 joins a single array to a wrong length.)
    body = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(
        *parts, ",", null_handling="skip")
    body = pc.if_else(pc.equal(body, ""), None, body)
    return pc.fill_null(pc.binary_join_element_wise("{", body, "}", ""), "")


def sql_object(extra: list[tuple[int, str]], cell: sql.Composable | None = None,
               cells: list[sql.Composable] | None = None) -> sql.Composable:
    """The ``attributes`` of a staged text row: ``jsonb_object(keys, values)`` without empties."""
    if not extra or cells is None:
        return sql.SQL("NULL::jsonb")
    keys = sql.SQL(", ").join(sql.Literal(h.strip()) for _, h in extra)
    values = sql.SQL(", ").join(sql.SQL("nullif(btrim({}), '')").format(c) for c in cells)
    return sql.SQL("nullif(jsonb_strip_nulls(jsonb_object(ARRAY[{}]::text[], ARRAY[{}]::text[])),"
                   " '{{}}'::jsonb)").format(keys, values)
