"""Bulk writes: a table's indexes and keys set aside before a big COPY, rebuilt once after.

Building an index once, sorted, is much cheaper than growing it row by row, and one foreign-key
validation (a single join) much cheaper than a check per row. Every loader that writes in bulk
(tree surveys, the synthetic province, the IOC registers) goes through here. All happens inside
the caller's transaction: a failed load leaves the tables, indexes and keys as they were.

>>> with connect(url) as conn:                                   # doctest: +SKIP
...     restore = set_aside(conn, ["smarttrees.trees"])
...     ...                                                      # COPY the rows
...     rebuild(conn, restore)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

# Indexes that guard nothing: unique and primary ones stay (they guard the load itself).
SECONDARY_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary
ORDER BY c.relname
"""
FOREIGN_KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname
"""
# Primary and unique keys of a table, unless a foreign key elsewhere depends on them.
KEYS = """
SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint k
WHERE conrelid = %s::regclass AND contype IN ('p', 'u')
  AND NOT EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = k.conindid)
ORDER BY contype, conname
"""

Executor = psycopg.Connection[Any] | psycopg.Cursor[Any]


def set_aside(db: Executor, tables: Sequence[str], *, keys: bool = False) -> list[str]:
    """Drop the tables' secondary indexes and foreign keys; return the DDL that restores them.

    ``keys`` drops their primary and unique keys too: only for rows checked distinct
    beforehand (the rebuild checks them again). Tables are named ``schema.table``.
    """
    keys_ddl: list[str] = []
    indexes: list[str] = []
    foreign: list[str] = []
    for table in tables:
        target = sql.SQL(".").join(map(sql.Identifier, table.split(".")))
        dropped = [(foreign, row) for row in db.execute(FOREIGN_KEYS, (table,)).fetchall()]
        if keys:
            dropped += [(keys_ddl, row) for row in db.execute(KEYS, (table,)).fetchall()]
        for into, (name, definition) in dropped:
            db.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                target, sql.Identifier(name)))
            into.append(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                target, sql.Identifier(name)).as_string(_context(db)) + definition)
        schema = table.split(".")[0]
        for name, definition in db.execute(SECONDARY_INDEXES, (table,)).fetchall():
            db.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, name)))
            indexes.append(definition)
    # Keys first when rebuilding (a repeated key fails before the long index builds), foreign
    # keys last.
    return keys_ddl + indexes + foreign


def rebuild(db: Executor, restore: Sequence[str], *, analyse: Sequence[str] = (),
            step: Callable[[str], None] | None = None) -> None:
    """Run the DDL of :func:`set_aside` (catalogue definitions), then ANALYZE ``analyse``."""
    for definition in restore:
        if step:
            step(definition)
        start = time.perf_counter()
        db.execute(sql.SQL(definition))  # type: ignore[arg-type,unused-ignore]  # catalogue DDL
        log.debug("%.2f s: %s", time.perf_counter() - start, definition)
    if restore and analyse:
        db.execute(sql.SQL("ANALYZE {}").format(sql.SQL(", ").join(
            sql.SQL(".").join(map(sql.Identifier, t.split("."))) for t in analyse)))


def _context(db: Executor) -> psycopg.Connection[Any]:
    return db if isinstance(db, psycopg.Connection) else db.connection
