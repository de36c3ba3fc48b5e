"""Several tables COPYed batch by batch in one transaction, sent from a thread in order."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
from psycopg import sql

from etl import binary_copy
from etl.interleaved_copy import InterleavedCopy

TARGETS = {"a": (sql.Identifier("copy_a"), ("id", "name"), False),
           "b": (sql.Identifier("copy_b"), ("id",), False)}


def tables(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE copy_a (id bigint PRIMARY KEY, name text NOT NULL)")
    conn.execute("CREATE TABLE copy_b (id bigint NOT NULL)")


def rows_a(ids: np.ndarray) -> bytes:
    return binary_copy.binary_rows([("int8", ids), ("text", np.array([f"n{i}" for i in ids]))])


def test_batches_of_two_tables_arrive_whole_and_in_order(conn: psycopg.Connection) -> None:
    tables(conn)
    with InterleavedCopy(conn, TARGETS) as copy:
        for start in range(0, 30, 10):
            ids = np.arange(start, start + 10, dtype=np.int64)
            copy.write("a", rows_a(ids))
            copy.write("b", binary_copy.binary_rows([("int8", ids * 2)]))
            copy.write("b", binary_copy.binary_rows([("int8", ids * 2 + 1)]))
    assert conn.execute("SELECT array_agg(id ORDER BY id), min(name), max(name) FROM copy_a"
                        ).fetchone() == (list(range(30)), "n0", "n9")
    assert conn.execute("SELECT array_agg(id ORDER BY id) FROM copy_b").fetchone() == (
        list(range(60)),)


def test_a_failed_copy_is_raised_to_the_writer_and_nothing_stays(
        conn: psycopg.Connection) -> None:
    tables(conn)
    conn.commit()
    ids = np.arange(5, dtype=np.int64)
    # Raised by a later write, or at the end of the block.
    with pytest.raises(psycopg.errors.UniqueViolation), \
            InterleavedCopy(conn, TARGETS) as copy:  # noqa: PT012
        copy.write("a", rows_a(ids))
        copy.write("b", binary_copy.binary_rows([("int8", ids)]))
        copy.write("a", rows_a(ids))                        # the same keys again
        for _ in range(20):
            copy.write("b", binary_copy.binary_rows([("int8", ids)]))
    conn.rollback()
    assert conn.execute("SELECT (SELECT count(*) FROM copy_a), (SELECT count(*) FROM copy_b)"
                        ).fetchone() == (0, 0)
