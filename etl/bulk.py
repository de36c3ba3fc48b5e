"""Bulk writes: a table's indexes and keys set aside before a big COPY, rebuilt once after.

Building an index once, sorted, is much cheaper than growing it row by row, and one foreign-key
validation (a single join) much cheaper than a check per row. Every loader that writes in bulk
(tree surveys, the synthetic province, the IOC registers) goes through here. All happens inside
the caller's transaction: a failed load leaves the tables, indexes and keys as they were.

A load into an empty table may instead :func:`defer` the secondary indexes (those that guard
nothing) past its commit, and :func:`build_deferred` them in two sessions side by side; keys and
foreign keys are still rebuilt before the commit.

>>> with connect(url) as conn:                                   # doctest: +SKIP
...     restore = set_aside(conn, ["smarttrees.trees"])
...     ...                                                      # COPY the rows
...     rebuild(conn, restore)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from smarttrees.database import connect
from smarttrees.errors import SmartTreesError

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


class DeferredIndexError(SmartTreesError):
    """An index deferred past a load's commit could not be built; the rows are loaded."""

    rule = "deferred_index"


# Sessions building the deferred indexes side by side: the GiST build is serial, so one session
# builds it while the other builds the b-trees (each with one parallel worker: on two cores,
# measured faster than two, or none). The ANALYZE after them keeps the statistics target the
# load's own transaction gave it (etl.trees): the default (100) cost 0.4 s more CPU on the
# province's 1.13 M trees.
LANES = 2
LANE_SETTINGS = {"maintenance_work_mem": "512MB", "max_parallel_maintenance_workers": "1",
                 "default_statistics_target": "10"}
DEFERRED = "SELECT definition, table_name FROM smarttrees.deferred_indexes"


def guards_and_deferrable(restore: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split :func:`set_aside`'s DDL: keys and foreign keys, then the secondary indexes.

    The first guard what a writer may store and must be in place at the commit; the second
    only speed reads, and may be built after it (:func:`defer`).
    """
    guards = [d for d in restore if not d.startswith("CREATE INDEX ")]
    return guards, [d for d in restore if d.startswith("CREATE INDEX ")]


def defer(db: Executor, definitions: Sequence[str]) -> None:
    """Record secondary indexes (catalogue DDL) to be built after the caller's commit.

    In the caller's transaction: rolled back with it, committed with its rows. After the
    commit, :func:`build_deferred` builds them; a load that stopped before (a killed process)
    leaves them recorded, and the next load builds them first.
    """
    for definition in definitions:
        table = definition.split(" ON ", 1)[1].split(" USING ", 1)[0]
        db.execute("INSERT INTO smarttrees.deferred_indexes (definition, table_name) "
                   "VALUES (%s, %s) ON CONFLICT DO NOTHING", (definition, table))


def build_deferred(url: str | None, *, analyse: bool = True) -> int:
    """Build every index :func:`defer` recorded, :data:`LANES` sessions at a time; then ANALYZE.

    Each index is built in its own transaction with the deletion of its record, so a build
    interrupted midway is recorded still, and two processes never build the same index (the
    second waits on the record, then finds it gone). The GiST ones go first: they are the
    longest. Returns how many were built here.

    Raises
    ------
    DeferredIndexError
        An index could not be built: the rows stay loaded, and the next load builds it.

    """
    with connect(url) as conn:
        pending = deferred(conn)
    if not pending:
        return 0
    order = sorted(pending, key=lambda p: (" USING gist " not in p[0], p[0]))
    tables = sorted({table for _, table in pending})
    tasks = [("index", definition) for definition, _ in order]
    if analyse:
        tasks += [("analyse", table) for table in tables]
    built: list[str] = []
    failed: list[BaseException] = []
    lock = threading.Lock()

    def lane() -> None:
        try:
            with connect(url, autocommit=True) as conn:
                conn.execute("SET application_name = 'smarttrees-load-indexes'")
                for name, value in LANE_SETTINGS.items():
                    conn.execute("SELECT set_config(%s, %s, false)", (name, value))
                while True:
                    with lock:
                        if failed or not tasks:
                            return
                        kind, what = tasks.pop(0)
                    if kind == "analyse":
                        conn.execute(sql.SQL("ANALYZE {}").format(
                            sql.SQL(".").join(map(sql.Identifier, what.split(".")))))
                    elif _build_one(conn, what):
                        built.append(what)
        except (psycopg.Error, OSError) as exc:
            with lock:
                failed.append(exc)

    threads = [threading.Thread(target=lane, name=f"index-lane-{i}")
               for i in range(min(LANES, len(tasks)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        reason = str(failed[0]).strip().splitlines()[0] if str(failed[0]).strip() else "failed"
        raise DeferredIndexError(
            f"the rows are loaded and committed, but an index could not be built after the "
            f"commit ({reason}); the next load builds it")
    return len(built)


def deferred(db: Executor) -> list[tuple[str, str]]:
    """The indexes recorded by :func:`defer` and not built yet: (definition, table)."""
    # A database not migrated yet (before 0030) has nothing deferred.
    known = db.execute("SELECT to_regclass('smarttrees.deferred_indexes')").fetchone()
    return db.execute(DEFERRED).fetchall() if known and known[0] else []


def _build_one(conn: psycopg.Connection[Any], definition: str) -> bool:
    """Build one deferred index and forget its record, in one transaction; False: not built here.

    Not built when another process took the record first, or when the index is there already
    (made by hand, say): the record is then dropped all the same.
    """
    start = time.perf_counter()
    with conn.transaction():
        taken = conn.execute("DELETE FROM smarttrees.deferred_indexes WHERE definition = %s",
                             (definition,)).rowcount
        if not taken:
            return False
        try:
            with conn.transaction():
                conn.execute(sql.SQL(definition))  # type: ignore[arg-type,unused-ignore]
        except psycopg.errors.DuplicateTable:
            return False
    log.debug("%.2f s: %s (after the commit)", time.perf_counter() - start, definition)
    return True


def _context(db: Executor) -> psycopg.Connection[Any]:
    return db if isinstance(db, psycopg.Connection) else db.connection
