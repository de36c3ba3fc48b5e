"""The server behind PgBouncer in transaction mode: reads, tiles, and writes with their history.

PgBouncer (Debian's package) runs with the configuration `smarttrees db pgbouncer-config`
writes, and two server connections for many clients, so consecutive transactions of one client
land on different server connections and those of different clients share them: any prepared
statement or session setting that outlived its transaction would show.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

import smarttrees
from smarttrees.database import connect
from smarttrees.pooler import pgbouncer_ini
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import TREE_COUNT, free_port, make_token, seed_api_data, serve_database

pytestmark = pytest.mark.slow


def _as_server_user(folder: Path) -> list[str]:
    """PgBouncer refuses to run as root: then it runs as postgres, who must own its folder."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam("postgres")
    for path in [folder, *folder.iterdir()]:
        os.chown(path, user.pw_uid, user.pw_gid)
    return ["-u", "postgres"]


@pytest.fixture(scope="module")
def bouncer(module_db_url: str) -> Iterator[str]:
    """The URL of the module's database through PgBouncer (transaction mode, 2 server conns)."""
    program = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(program).exists():
        pytest.skip("pgbouncer is not installed (.ci/system-packages.sh test installs it)")
    seed_api_data(module_db_url)
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    ini = folder / "pgbouncer.ini"
    ini.write_text(pgbouncer_ini(module_db_url, listen_port=port, pool_size=2, folder=folder))
    proc = subprocess.Popen([program, "-q", *_as_server_user(folder), str(ini)])
    dbname = module_db_url.rsplit("/", 1)[1]
    url = f"postgresql://smarttrees@127.0.0.1:{port}/{dbname}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pooled_server(bouncer: str) -> Iterator[str]:
    """A server whose every connection goes through PgBouncer."""
    with serve_database(bouncer, transaction_pooler="true", pool_max_size="6") as base:
        yield base


def test_pgbouncer_config_command(module_db_url: str) -> None:
    outcome = run_cli("db", "pgbouncer-config", "--port", "6543", "--pool-size", "4",
                      env=cli_env(SMARTTREES_DATABASE_URL=module_db_url), timeout=60)
    assert outcome.code == 0, outcome.stderr
    lines = outcome.stdout.splitlines()
    assert "pool_mode = transaction" in lines and "listen_port = 6543" in lines
    assert "default_pool_size = 4" in lines
    dbname = module_db_url.rsplit("/", 1)[1]
    target = next(line for line in lines if line.startswith(f"{dbname} = "))
    assert "SET search_path = smarttrees,public" in target


def test_reads_and_tiles_through_pgbouncer(pooled_server: str) -> None:
    with httpx.Client(base_url=pooled_server, timeout=30) as client:
        # The same statements, again and again: psycopg would prepare them after five runs.
        for _ in range(12):
            page = client.get("/collections/trees/items", params={"limit": 500})
            assert page.status_code == 200 and len(page.json()["features"]) == TREE_COUNT
            one = client.get("/collections/trees/items", params={"tree_code": "G7"})
            assert [f["properties"]["tree_code"] for f in one.json()["features"]] == ["G7"]
        tile = client.get("/collections/trees/tiles/WebMercatorQuad/15/14378/26015")
        assert tile.status_code == 200 and tile.content
        assert client.get("/collections/trees/queryables").status_code == 200
        assert client.get("/collections/communes/items").json()["numberReturned"] == 2


def _patch_many(base: str, token: str, ids: list[int], dbh: float,
                statuses: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=30,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        for tree_id in ids:
            r = client.patch(f"/collections/trees/items/{tree_id}",
                             json={"type": "Feature", "properties": {"dbh_cm": dbh}})
            statuses.append(r.status_code)


def test_writes_through_pgbouncer_record_their_authors(
    pooled_server: str, bouncer: str, module_db_url: str
) -> None:
    editor, admin = make_token(module_db_url, "editor"), make_token(module_db_url, "admin")
    with connect(module_db_url) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM trees ORDER BY id LIMIT 40")]
    statuses: list[int] = []
    writers = [threading.Thread(target=_patch_many, args=(pooled_server, editor, ids[:20], 61.0,
                                                           statuses)),
               threading.Thread(target=_patch_many, args=(pooled_server, admin, ids[20:], 62.0,
                                                          statuses))]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert statuses == [204] * 40
    created = httpx.post(f"{pooled_server}/collections/trees/items", timeout=30,
                         headers={"Authorization": f"Bearer {editor}"},
                         json={"type": "Feature", "properties": {"tree_code": "PGB-1",
                               "category": "urban"},
                               "geometry": {"type": "Point", "coordinates": [105.81, 21.51]}})
    assert created.status_code == 201
    with connect(module_db_url) as conn:
        rows = conn.execute(
            "SELECT actor, source, (changes -> 'dbh_cm' ->> 'new')::float FROM tree_history "
            "WHERE change = 'update' AND tree_id = ANY(%s)", [ids]).fetchall()
        inserted = conn.execute("SELECT actor, source FROM tree_history "
                                "WHERE tree_code = 'PGB-1'").fetchall()
    assert set(rows) == {("test-editor", "api", 61.0), ("test-admin", "api", 62.0)}
    assert len(rows) == 40
    assert inserted == [("test-editor", "api")]
    # Nothing of those transactions stayed on PgBouncer's server connections.
    with psycopg.connect(bouncer, autocommit=True) as conn:
        for _ in range(4):
            actor = conn.execute("SELECT current_setting('smarttrees.actor', true)").fetchone()
            assert actor in ((None,), ("",))


def test_analyst_api_through_pgbouncer(bouncer: str) -> None:
    with smarttrees.connect(bouncer) as db:
        trees = db.trees(columns=["tree_code"])
    assert len(trees) >= TREE_COUNT and "G7" in set(trees["tree_code"])
