"""Binary COPY rows built by numpy: NULLs of every kind, non-ASCII text, order, PostgreSQL."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest

from etl import binary_copy
from etl.binary_copy import binary_rows, copy_binary

N = 9
TABLE = """
CREATE TEMP TABLE kinds (
    row_no int4 NOT NULL, stand int8, code text, word text, note text, n2 int2, n4 int4,
    f4 real, f8 double precision, seen date, flag boolean, geom geometry(Point, 4326)
)
"""
SELECT = """
SELECT row_no, stand, code, word, note, n2, n4, f4, f8, seen, flag,
       ST_X(geom), ST_Y(geom), ST_SRID(geom)
FROM kinds ORDER BY row_no
"""
NAN = np.nan


def _columns() -> dict[str, tuple[str, np.ndarray]]:
    """Every kind, with its NULLs, and rows of many length patterns."""
    masked = np.zeros(N, dtype=bool)
    masked[[2, 5]] = True
    return {
        "row_no": ("int4", np.arange(N, dtype=np.int32)),
        "stand": ("int8", np.ma.array([7, -1, 3, 10**12, -5, 0, 8, 9, 1], mask=masked[::-1])),
        "code": ("text", np.array(["TN-1", "TN-22", "", "TN-4444", "x", "TN-6", "", "y", "zz"])),
        "word": (
            "text",
            np.array(["Sấu", None, "xà cừ", "", "Sấu", "bàng", "Đa", None, "phượng vĩ"], dtype=object),
        ),
        "note": ("text", np.full(N, "")),
        "n2": ("int2", np.ma.array(np.arange(N, dtype=np.int16) - 4, mask=masked)),
        "n4": ("int4", np.ma.array(np.arange(N, dtype=np.int32) * 1000, mask=masked[::-1])),
        "f4": ("float4", np.array([1.1, NAN, 2.5, 3e-8, NAN, -0.0, 7.25, 1e30, 0.1], dtype=np.float32)),
        "f8": ("float8", np.array([1.1, 2.2, NAN, 4.4, 5.5, NAN, 7.7, 8.8, 9.9])),
        "seen": (
            "date",
            np.array(["2025-01-31", "NaT", "1999-12-31", "2000-01-01", "1970-01-01",
                      "2026-11-27", "NaT", "1900-03-01", "2100-12-31"], dtype="datetime64[D]"),
        ),
        "flag": ("bool", np.array([True, False] * 4 + [True])),
        "geom": (
            "geometry",
            np.array([[105.8, 21.0], [NAN, NAN], [106.1, 20.5], [NAN, 20.0], [104.0, 9.5],
                      [107.0, 11.0], [105.0, 19.0], [102.5, 22.75], [108.9, 15.1]]),
        ),
    }


def _expected(columns: dict[str, tuple[str, np.ndarray]]) -> list[tuple]:
    """The rows PostgreSQL should give back, as SELECT returns them."""
    c = {name: values for name, (_, values) in columns.items()}
    rows = []
    for i in range(N):
        f4, f8 = c["f4"][i], c["f8"][i]
        seen = c["seen"][i]
        lon, lat = c["geom"][i]
        point = (None, None, None) if np.isnan(lon) else (lon, lat, 4326)
        rows.append((
            i,
            None if c["stand"].mask[i] else int(c["stand"][i]),  # -1 and -5 are numbers
            c["code"][i] or None,
            c["word"][i] or None,
            None,
            None if c["n2"].mask[i] else int(c["n2"][i]),
            None if c["n4"].mask[i] else int(c["n4"][i]),
            None if np.isnan(f4) else np.float32(f4),
            None if np.isnan(f8) else float(f8),
            None if np.isnat(seen) else seen.astype(dt.date),
            bool(c["flag"][i]),
            *point,
        ))
    return rows


def _loaded(conn, columns, **options) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS kinds")
        cur.execute(TABLE)
        assert copy_binary(cur, "pg_temp.kinds", columns, **options) == N
        rows = cur.execute(SELECT).fetchall()
    # real comes back as the shortest decimal that reads back as the same float4
    return [(*r[:7], None if r[7] is None else np.float32(r[7]), *r[8:]) for r in rows]


def _parse(data: bytes) -> list[tuple[bytes | None, ...]]:
    """Rows of a binary COPY body: per row its fields' bytes (None: NULL)."""
    rows, at = [], 0
    while at < len(data):
        (count,) = struct.unpack_from(">h", data, at)
        at += 2
        fields: list[bytes | None] = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            fields.append(None if length < 0 else data[at : at + length])
            at += max(length, 0)
        rows.append(tuple(fields))
    return rows


def test_every_kind_and_its_nulls_come_back_from_postgresql(conn):
    columns = _columns()
    assert _loaded(conn, columns) == _expected(columns)


def test_grouped_rows_load_the_same_table(conn, monkeypatch):
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 0)  # rows grouped, however few
    columns = _columns()
    assert _loaded(conn, columns, keep_order=False) == _expected(columns)


def test_rows_are_those_of_one_row_at_a_time_in_input_order():
    columns = list(_columns().values())
    one_by_one = b"".join(binary_rows([(k, v[i : i + 1]) for k, v in columns]) for i in range(N))
    assert binary_rows(columns) == one_by_one


def test_grouped_and_ordered_rows_are_the_same_rows(monkeypatch):
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 0)
    columns = list(_columns().values())
    ordered, grouped = binary_rows(columns), binary_rows(columns, keep_order=False)
    assert len(grouped) == len(ordered)
    assert grouped != ordered  # the patterns differ, so grouping moved rows
    assert sorted(_parse(grouped), key=repr) == sorted(_parse(ordered), key=repr)


def test_rows_split_into_blocks_stay_in_order(monkeypatch):
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 0)
    columns = list(_columns().values())
    whole = binary_rows(columns)
    monkeypatch.setattr(binary_copy, "BLOCK", 2)
    assert binary_rows(columns) == whole
    assert sorted(_parse(binary_rows(columns, keep_order=False)), key=repr) == sorted(
        _parse(whole), key=repr
    )


def test_many_wide_text_columns_still_group_their_rows(monkeypatch):
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 0)
    # Ten columns of texts up to 300 bytes: more length patterns than an int64 key can hold.
    rng = np.random.default_rng(7)
    words = np.array(["", "a" * 300, "Sấu", "b" * 17, "cây"])
    columns = [("text", words[rng.integers(0, len(words), 50)]) for _ in range(10)]
    one_by_one = b"".join(binary_rows([(k, v[i : i + 1]) for k, v in columns]) for i in range(50))
    assert binary_rows(columns) == one_by_one
    assert sorted(_parse(binary_rows(columns, keep_order=False)), key=repr) == sorted(
        _parse(one_by_one), key=repr
    )


@pytest.mark.parametrize("rows", [N, 400])
def test_rows_scattered_field_by_field_are_the_grouped_rows(monkeypatch, rows):
    # Few rows per pattern of lengths are scattered field by field (a resubmitted survey's new
    # lines with their cells); the bytes are those of the records built per pattern.
    rng = np.random.default_rng(11)
    pick = rng.integers(0, N, rows)
    columns = [(kind, values[pick]) for kind, values in _columns().values()]
    words = np.array(["", "a" * 300, "Sấu", "b" * 17, "cây", "TN-1"])
    columns += [("text", words[rng.integers(0, len(words), rows)]) for _ in range(4)]
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 0)
    grouped = binary_rows(columns)
    monkeypatch.setattr(binary_copy, "SCATTER_BYTES_PER_PATTERN", 10**9)
    scattered = binary_rows(columns)
    assert scattered == grouped
    assert len(_parse(scattered)) == rows
    assert binary_rows(columns, keep_order=False) == scattered   # scattered: in input order


def test_non_ascii_text_is_utf8_and_ascii_codes_are_their_bytes():
    rows = _parse(binary_rows([("text", np.array(["Đa", "TN-0000001", "", "Sấu"]))]))
    assert rows == [("Đa".encode(),), (b"TN-0000001",), (None,), ("Sấu".encode(),)]


def test_a_point_is_ewkb_in_srid_4326():
    ((point,),) = _parse(binary_rows([("geometry", np.array([[105.5, 21.25]]))]))
    assert point == struct.pack("<BIIdd", 1, 0x20000001, 4326, 105.5, 21.25)


def test_no_rows_no_bytes():
    assert binary_rows([("int8", np.array([], dtype=np.int64)), ("text", np.array([], dtype=str))]) == b""


def test_an_unknown_kind_or_uneven_columns_are_refused():
    with pytest.raises(ValueError, match="unknown binary COPY kind 'json'"):
        binary_rows([("json", np.array([1]))])
    with pytest.raises(ValueError, match="different lengths"):
        binary_rows([("int8", np.array([1, 2])), ("int8", np.array([1]))])


def test_jsonb_objects_and_their_nulls_come_back_from_postgresql(conn):
    texts = ['{"Ghi chú": "gần trụ"}', "", '{"a": [1, 2], "b": null}', ""]
    values = np.array([t.encode() for t in texts], dtype=np.bytes_)
    conn.execute("CREATE TEMP TABLE docs (n int4, attributes jsonb)")
    with conn.cursor() as cur:
        copy_binary(cur, "pg_temp.docs", {"n": ("int4", np.arange(4, dtype=np.int32)),
                                          "attributes": ("jsonb", values)})
    got = [r[0] for r in conn.execute("SELECT attributes FROM docs ORDER BY n").fetchall()]
    assert got == [{"Ghi chú": "gần trụ"}, None, {"a": [1, 2], "b": None}, None]
