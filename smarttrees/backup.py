"""Backups that restore: ``pg_dump`` in directory format, a manifest, and a verified restore.

A backup is one folder ``smarttrees-<UTC time>/`` holding ``dump/`` (``pg_dump -Fd``, parallel
jobs) and ``manifest.json``. The manifest's row counts and table checksums are computed in the
very snapshot the dump reads (``pg_export_snapshot`` shared with ``pg_dump --snapshot``), so they
describe exactly what the dump holds even while the server keeps writing. Every file of the dump
is listed with its size and SHA-256, so a truncated or damaged backup is named before anything
is restored.

A restore goes into a new database beside the target, is checked against the manifest there,
and only then takes the target's name: a failed restore leaves nothing half-restored behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from smarttrees.cluster import PgInstall, find_postgres
from smarttrees.errors import BackupError, MissingSoftwareError

MANIFEST = "manifest.json"
DUMP = "dump"
FORMAT_VERSION = 1
PREFIX = "smarttrees-"
# Schemas whose tables hold personal data: a backup holding rows there is marked as such.
PERSONAL_SCHEMAS = ("restricted",)

# Every ordinary table of the database's own schemas (not PostGIS's, not the catalogs).
_TABLES = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'topology', 'tiger')
  AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.objid = c.oid AND d.deptype = 'e')   -- extension members
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class TableFacts:
    """Row count and order-independent checksum of one table."""

    rows: int
    checksum: str


@dataclass(frozen=True)
class Backup:
    """A backup folder on disk and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def tables(self) -> dict[str, TableFacts]:
        """Facts per ``schema.table`` as recorded at backup time."""
        return {name: TableFacts(**facts) for name, facts in self.manifest["tables"].items()}


# -- facts of a database --------------------------------------------------------------------


def table_facts(conn: psycopg.Connection) -> dict[str, TableFacts]:
    """Count and checksum every table in the connection's current snapshot.

    The checksum sums a 64-bit hash of each row's text form, so it does not depend on the order
    in which a restore wrote the rows.
    """
    facts: dict[str, TableFacts] = {}
    for schema, table in conn.execute(_TABLES).fetchall():
        ident = sql.Identifier(schema, table)
        query = sql.SQL(
            "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text"
            " FROM {} AS t"
        ).format(ident)
        row = conn.execute(query).fetchone()
        assert row is not None
        facts[f"{schema}.{table}"] = TableFacts(rows=int(row[0]), checksum=str(row[1]))
    return facts


def _versions(conn: psycopg.Connection) -> dict[str, str | None]:
    row = conn.execute(
        "SELECT current_setting('server_version'),"
        " (SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
    ).fetchone()
    assert row is not None
    return {"postgresql": row[0], "postgis": row[1]}


def _migrations(conn: psycopg.Connection) -> list[str]:
    exists = conn.execute("SELECT to_regclass('public._yoyo_migration')").fetchone()
    if not exists or exists[0] is None:
        return []
    rows = conn.execute("SELECT migration_id FROM public._yoyo_migration ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def _server_install(conn: psycopg.Connection) -> PgInstall:
    """The installed client programs of the server's major version (pg_dump must not be older)."""
    major = int(conn.info.server_version) // 10000
    try:
        return find_postgres(major)
    except MissingSoftwareError:
        newest = find_postgres()
        if newest.major < major:
            raise BackupError(
                f"the server runs PostgreSQL {major}; pg_dump {newest.major} cannot dump it: "
                f"install postgresql-client-{major}"
            ) from None
        return newest


# -- backup ---------------------------------------------------------------------------------


def backup(url: str, out_dir: Path, *, jobs: int = 2, keep: int | None = None) -> Backup:
    """Write a consistent backup of the whole database into a new folder of ``out_dir``.

    Parameters
    ----------
    url
        The database to back up; it keeps serving while the backup runs.
    out_dir
        Folder that holds the backups (created if needed).
    jobs
        Parallel ``pg_dump`` workers.
    keep
        Keep only the newest ``keep`` backups in ``out_dir`` afterwards (``None``: keep all).

    """
    out_dir = out_dir.expanduser().resolve()
    _make_private_dir(out_dir)
    name = PREFIX + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    final = out_dir / name
    partial = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            pg = _server_install(conn)
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            _pg_dump(pg, url, partial / DUMP, snapshot=snapshot, jobs=jobs)
            facts = table_facts(conn)
            manifest = _manifest(conn, facts, partial / DUMP)
            conn.execute("COMMIT")
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if keep is not None:
        rotate(out_dir, keep)
    return Backup(final, manifest)


def _make_private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create the backup folder {path}: {exc.strerror}") from exc


def _pg_dump(pg: PgInstall, url: str, target: Path, *, snapshot: str, jobs: int) -> None:
    args = [
        pg.program("pg_dump"), "--format=directory", f"--jobs={max(1, jobs)}",
        f"--snapshot={snapshot}", "--compress=6", f"--file={target}", f"--dbname={url}",
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {_last_line(result.stderr)}")


def _manifest(conn: psycopg.Connection, facts: dict[str, TableFacts], dump: Path) -> dict[str, Any]:
    personal = {
        name: f.rows for name, f in facts.items()
        if name.split(".")[0] in PERSONAL_SCHEMAS and f.rows
    }
    return {
        "format": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": conn.info.dbname,
        "versions": _versions(conn),
        "migrations": _migrations(conn),
        "contains_personal_data": bool(personal),
        "personal_tables": sorted(personal),
        "tables": {name: {"rows": f.rows, "checksum": f.checksum} for name, f in facts.items()},
        "files": _file_list(dump),
    }


def _file_list(dump: Path) -> dict[str, dict[str, Any]]:
    return {
        str(path.relative_to(dump)): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(dump.rglob("*")) if path.is_file()
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def list_backups(out_dir: Path) -> list[Path]:
    """The complete backups in ``out_dir``, oldest first (names sort by time)."""
    if not out_dir.is_dir():
        return []
    return sorted(
        p for p in out_dir.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and (p / MANIFEST).exists()
    )


def rotate(out_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups; return the deleted folders."""
    if keep < 1:
        raise BackupError("--keep must be at least 1 (the backup just made)")
    old = list_backups(out_dir)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old


# -- verify and restore ---------------------------------------------------------------------


def open_backup(path: Path) -> Backup:
    """Read a backup folder and check every file against its manifest."""
    path = path.expanduser().resolve()
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(f"{path} is not a SmartTrees backup (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        manifest["tables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{manifest_path} is damaged: {exc}") from None
    dump = path / DUMP
    for rel, expected in files.items():
        file = dump / rel
        if not file.is_file():
            raise BackupError(f"{path.name}: {DUMP}/{rel} is missing (truncated backup)")
        size = file.stat().st_size
        if size != expected["bytes"]:
            raise BackupError(
                f"{path.name}: {DUMP}/{rel} is {size:,} bytes, the manifest says "
                f"{expected['bytes']:,} (truncated backup)"
            )
        if _sha256(file) != expected["sha256"]:
            raise BackupError(f"{path.name}: {DUMP}/{rel} does not match its checksum")
    return Backup(path, manifest)


def tables_with_rows(url: str) -> list[str]:
    """Tables of ``url`` that hold rows; empty when the database is new or missing.

    The species catalogue does not count: ``smarttrees db upgrade`` loads it into every
    database, and the backup brings its own.
    """
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            names = []
            for schema, table in conn.execute(_TABLES).fetchall():
                if (schema, table) == ("smarttrees", "species") or table.startswith("_yoyo"):
                    continue
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                    sql.Identifier(schema, table))
                row = conn.execute(query).fetchone()
                if row and row[0]:
                    names.append(f"{schema}.{table}")
            return names
    except psycopg.OperationalError as exc:
        if "does not exist" in str(exc):
            return []
        raise


def restore(path: Path, url: str, *, force: bool = False, jobs: int = 2) -> Backup:
    """Restore a backup into the database at ``url``, verified before it takes the name.

    Parameters
    ----------
    path
        The backup folder (as :func:`backup` wrote it).
    url
        The target database; created when missing, replaced only with ``force``.
    force
        Replace a database that holds data.
    jobs
        Parallel ``pg_restore`` workers.

    """
    found = open_backup(path)
    target = str(conninfo_to_dict(url).get("dbname") or "")
    if not target:
        raise BackupError("the database URL names no database to restore into")
    holding = tables_with_rows(url)
    if holding and not force:
        names = ", ".join(holding[:3])
        raise BackupError(
            f"database {target!r} holds data ({len(holding)} tables with rows: {names}…); "
            "restore into an empty one, or add --force to replace it"
        )
    scratch = f"{target}_restore_{os.getpid()}"
    admin_url = make_conninfo(url, dbname="postgres")
    scratch_url = make_conninfo(url, dbname=scratch)
    with _scratch_database(admin_url, scratch):
        with psycopg.connect(scratch_url, autocommit=True) as conn:
            pg = _server_install(conn)
        _pg_restore(pg, scratch_url, found.path / DUMP, jobs=jobs)
        _check_against_manifest(scratch_url, found)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(target)))
            conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(scratch), sql.Identifier(target)))
    return found


@contextlib.contextmanager
def _scratch_database(admin_url: str, name: str) -> Iterator[None]:
    """A new empty database that is dropped again unless it was renamed away."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
            sql.Identifier(name)))
    try:
        yield
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def _pg_restore(pg: PgInstall, url: str, dump: Path, *, jobs: int) -> None:
    args = [
        pg.program("pg_restore"), f"--jobs={max(1, jobs)}", "--exit-on-error", "--no-owner",
        f"--dbname={url}", str(dump),
    ]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {_last_line(result.stderr)}")


def _check_against_manifest(url: str, found: Backup) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        restored = table_facts(conn)
    expected = found.tables
    wrong = [
        name for name in expected
        if restored.get(name) != expected[name]
    ]
    if wrong:
        raise BackupError(
            f"the restored copy does not match the manifest in {len(wrong)} table(s): "
            f"{', '.join(wrong[:5])}; the target database was left as it was"
        )


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
