"""`smarttrees db backup|verify|restore` against the real test cluster, as a person runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from smarttrees.backup import table_facts
from smarttrees.cluster import Cluster

SMARTTREES = [sys.executable, "-m", "smarttrees"]


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SMARTTREES_DATABASE_URL": url}
    return subprocess.run([*SMARTTREES, "db", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


@pytest.fixture
def empty_target(cluster: Cluster) -> Iterator[str]:
    """URL of a database name that does not exist yet; dropped afterwards."""
    name = f"restored_{os.getpid()}"
    yield cluster.url(name)
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _facts(url: str) -> dict[str, object]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(table_facts(conn))


def _write_trees(url: str, stop: threading.Event, written: list[int]) -> None:
    """Insert trees one transaction at a time until told to stop (the history trigger fires)."""
    with psycopg.connect(url, autocommit=True) as conn:
        species = conn.execute("SELECT min(id) FROM smarttrees.species").fetchone()[0]
        i = 0
        while not stop.is_set():
            conn.execute(
                "INSERT INTO smarttrees.trees (tree_code, category, species_id, geom, source)"
                " VALUES (%s, 'urban', %s, ST_SetSRID(ST_MakePoint(105.8 + %s * 1e-6, 21.6), 4326),"
                " 'backup-test')",
                [f"90001-U9{i:05d}", species, i],
            )
            i += 1
        written.append(i)


def test_backup_under_writes_restores_every_table(province_url: str, empty_target: str, tmp_path: Path) -> None:
    stop, written = threading.Event(), []
    writer = threading.Thread(target=_write_trees, args=(province_url, stop, written))
    writer.start()
    try:
        made = cli("backup", "--out", str(tmp_path), url=province_url)
    finally:
        stop.set()
        writer.join()
    assert made.returncode == 0, made.stderr
    assert "personal data" in made.stdout  # the small province has citizen-support cases
    (folder,) = [p for p in tmp_path.iterdir() if p.name.startswith("smarttrees-")]
    assert oct(folder.parent.stat().st_mode)[-3:] == "700"
    assert written and written[0] > 0, "the writer never ran during the backup"

    restored = cli("restore", str(folder), url=empty_target)
    assert restored.returncode == 0, restored.stderr
    assert "matches the manifest" in restored.stdout
    facts = _facts(empty_target)
    assert len(facts) > 15
    with psycopg.connect(empty_target) as conn:
        trees, orphans, cases = conn.execute(
            "SELECT (SELECT count(*) FROM smarttrees.trees),"
            " (SELECT count(*) FROM smarttrees.trees t WHERE NOT EXISTS"
            "   (SELECT 1 FROM smarttrees.tree_history h WHERE h.tree_id = t.id)),"
            " (SELECT count(*) FROM restricted.citizen_support_cases)"
        ).fetchone()
    assert trees >= 5000 and orphans == 0 and cases == 300  # one consistent snapshot


def test_restore_refuses_a_database_with_data_unless_forced(province_url: str, tmp_path: Path) -> None:
    assert cli("backup", "--out", str(tmp_path), url=province_url).returncode == 0
    (folder,) = list(tmp_path.glob("smarttrees-*"))
    with psycopg.connect(province_url) as conn:
        conn.execute("DELETE FROM smarttrees.tree_history WHERE tree_id IN"
                     " (SELECT id FROM smarttrees.trees WHERE tree_code LIKE '90001-U%')")
        conn.execute("DELETE FROM smarttrees.trees WHERE tree_code LIKE '90001-U%'")
    before = _facts(province_url)
    refused = cli("restore", str(folder), url=province_url)
    assert refused.returncode == 1 and "holds data" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _facts(province_url) == before
    forced = cli("restore", str(folder), "--force", url=province_url)
    assert forced.returncode == 0, forced.stderr
    with psycopg.connect(province_url) as conn:
        assert conn.execute("SELECT count(*) FROM smarttrees.trees").fetchone()[0] == 5000


def test_truncated_or_damaged_backups_are_named_and_nothing_is_restored(
    province_url: str, empty_target: str, tmp_path: Path
) -> None:
    assert cli("backup", "--out", str(tmp_path), url=province_url).returncode == 0
    (folder,) = list(tmp_path.glob("smarttrees-*"))
    biggest = max((folder / "dump").iterdir(), key=lambda p: p.stat().st_size)
    data = biggest.read_bytes()

    biggest.write_bytes(data[: len(data) // 2])
    for command in ("verify", "restore"):
        result = cli(command, str(folder), url=empty_target)
        assert result.returncode == 1 and "truncated" in result.stderr, result.stderr
        assert biggest.name in result.stderr and "Traceback" not in result.stderr

    biggest.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    result = cli("restore", str(folder), url=empty_target)
    assert result.returncode == 1 and "checksum" in result.stderr
    with psycopg.connect(empty_target.rsplit("/", 1)[0] + "/postgres") as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'restored_%'")]
    assert names == [], "a failed restore left a database behind"

    not_backup = cli("restore", str(tmp_path / "nothing"), url=empty_target)
    assert not_backup.returncode == 1 and "not a SmartTrees backup" in not_backup.stderr


def test_keep_rotates_old_backups(db_url: str, tmp_path: Path) -> None:
    for _ in range(3):
        assert cli("backup", "--out", str(tmp_path), "--keep", "2", url=db_url).returncode == 0
    assert len(list(tmp_path.glob("smarttrees-*"))) == 2
    assert not list(tmp_path.glob(".smarttrees-*")), "a partial backup folder was left"
