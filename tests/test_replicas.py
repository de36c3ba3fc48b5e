"""Read replicas: `smarttrees db replica create`, reads on the replica, writes and one's own reads
on the primary, a lagging or killed replica out of rotation — with two real clusters.

The module makes a managed primary with the real command line (``SMARTTREES_DATA_DIR`` in a
temporary folder), a replica of it with ``smarttrees db replica create``, and servers with
``SMARTTREES_REPLICA_URLS``. Which database answered is seen the way a person would see it: a
tree written on the primary while the replica's replay is paused is missing on the replica.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from smarttrees.cluster import Cluster
from smarttrees.replication import managed_replica, primary_lsn, wait_for_replay
from tests.fixtures.cli import cli_env, run_cli
from tests.fixtures.server import make_token, seed_api_data, serve_database, tree_position

pytestmark = pytest.mark.slow

POINT = {"type": "Point", "coordinates": list(tree_position(7))}


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """True once ``condition()`` holds, polling for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    """The managed cluster's folder for this module (a primary and its replica live there)."""
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-replicas-"))
    folder.chmod(0o755)  # as root the servers run as postgres and must enter it
    yield folder
    for name in ("replicas/r1", ""):
        Cluster(folder / name).stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def made(data_dir: Path) -> dict[str, Any]:
    """A primary with the small API data set, and replica r1 made by the command line."""
    env = cli_env(SMARTTREES_DATA_DIR=str(data_dir))
    env.pop("SMARTTREES_DATABASE_URL", None)
    assert run_cli("db", "upgrade", env=env, timeout=180).code == 0  # starts it, migrates
    primary = Cluster(data_dir)
    seed_api_data(primary.url())
    outcome = run_cli("db", "replica", "create", "r1", env=env, timeout=180)
    assert outcome.code == 0, outcome.stderr
    return {"env": env, "outcome": outcome, "primary": primary,
            "replica": managed_replica(primary, "r1")}


@pytest.fixture(scope="module")
def server(made: dict[str, Any]) -> Iterator[str]:
    """A server reading from r1, with a lag limit no paused replay reaches."""
    with serve_database(made["primary"].url(), replica_urls=made["replica"].url(),
                        replica_max_lag_s="600", replica_check_s="0.2",
                        read_own_writes_s="30") as base:
        yield base


@pytest.fixture
def paused(made: dict[str, Any]) -> Iterator[None]:
    """The replica's replay paused for the test (it receives WAL but applies none)."""
    url = made["replica"].url()
    lsn = primary_lsn(made["primary"].url())
    assert lsn is not None and wait_for_replay(url, lsn)  # caught up first: lag starts at 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")


def readyz(base: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{base}/readyz", timeout=10).json()
    return body


def replica_status(base: str) -> dict[str, Any]:
    status: dict[str, Any] = readyz(base)["reads"]["replicas"][0]
    return status


def post_tree(base: str, token: str, code: str) -> httpx.Response:
    feature = {"type": "Feature", "geometry": POINT,
               "properties": {"tree_code": code, "category": "urban"}}
    return httpx.post(f"{base}/collections/trees/items", json=feature, timeout=10,
                      headers={"Authorization": f"Bearer {token}"})


def test_replica_create_makes_a_streaming_replica(made: dict[str, Any]) -> None:
    replica_url = made["replica"].url()
    assert f"SMARTTREES_REPLICA_URLS={replica_url}" in made["outcome"].stdout
    with psycopg.connect(replica_url) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM smarttrees.trees")
    with psycopg.connect(made["primary"].url(), autocommit=True) as conn:
        conn.execute("INSERT INTO smarttrees.agencies (code, name, level) "
                     "VALUES ('REPL-1', 'streamed', 'commune')")

    def streamed() -> bool:
        with psycopg.connect(replica_url) as conn:
            return conn.execute("SELECT count(*) FROM smarttrees.agencies "
                                "WHERE code = 'REPL-1'").fetchone() == (1,)

    assert wait_for(streamed, 10)
    listed = run_cli("db", "replica", "list", env=made["env"], timeout=60)
    assert listed.code == 0 and "r1: postgresql://" in listed.stdout
    again = run_cli("db", "replica", "create", "r1", env=made["env"], timeout=60)
    assert again.code == 1 and "exists already" in again.stderr


def test_reads_go_to_the_replica_and_own_writes_to_the_primary(
    made: dict[str, Any], server: str, paused: None
) -> None:
    token = make_token(made["primary"].url(), "editor")
    created = post_tree(server, token, "RYOW-1")
    assert created.status_code == 201
    location = created.headers["location"]
    # A stranger reads from the replica, whose replay is paused: the new tree is not there yet.
    assert httpx.get(location, timeout=10).status_code == 404
    # The writer reads its own write: by its token, and by the cookie the write's answer set.
    mine = httpx.get(location, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert mine.status_code == 200 and mine.json()["properties"]["tree_code"] == "RYOW-1"
    with httpx.Client(cookies=created.cookies, timeout=10) as browser:
        assert browser.get(location).status_code == 200
    page = httpx.get(f"{server}/collections/trees/items?limit=500", timeout=10).json()
    assert len(page["features"]) == 150  # the replica's trees: without RYOW-1
    status = replica_status(server)
    assert status["in_rotation"] and status["reads"] >= 2


def test_a_lagging_replica_leaves_the_rotation_and_comes_back(made: dict[str, Any]) -> None:
    with serve_database(made["primary"].url(), replica_urls=made["replica"].url(),
                        replica_max_lag_s="1", replica_check_s="0.2") as base:
        assert wait_for(lambda: replica_status(base)["in_rotation"], 10), replica_status(base)
        replica = psycopg.connect(made["replica"].url(), autocommit=True)
        with replica:
            replica.execute("SELECT pg_wal_replay_pause()")
            try:
                with psycopg.connect(made["primary"].url(), autocommit=True) as conn:
                    conn.execute(
                        "INSERT INTO smarttrees.trees (tree_code, category, geom) VALUES "
                        "('LAG-1', 'urban', ST_SetSRID(ST_MakePoint(105.8, 21.5), 4326))")
                assert wait_for(lambda: not replica_status(base)["in_rotation"], 15)
                assert replica_status(base)["lag_s"] > 1
                found = httpx.get(f"{base}/collections/trees/items?tree_code=LAG-1", timeout=10)
                codes = [f["properties"]["tree_code"] for f in found.json()["features"]]
                assert codes == ["LAG-1"]  # read on the primary: the replica has no LAG-1 yet
            finally:
                replica.execute("SELECT pg_wal_replay_resume()")
        assert wait_for(lambda: replica_status(base)["in_rotation"], 15)


def _read_under_load(base: str, stop: threading.Event, statuses: list[int]) -> None:
    urls = [f"{base}/collections/trees/items?bbox=105.79,21.49,105.84,21.53&limit=50",
            f"{base}/collections/trees/tiles/WebMercatorQuad/15/14378/26015",
            f"{base}/collections/trees/items/1"]
    with httpx.Client(timeout=30) as client:
        i = 0
        while not stop.is_set() and i < 2000:  # bounded, whatever happens
            statuses.append(client.get(urls[i % len(urls)]).status_code)
            i += 1


def test_killing_the_replica_under_load_moves_reads_to_the_primary(
    made: dict[str, Any], server: str
) -> None:
    replica: Cluster = made["replica"]
    assert wait_for(lambda: replica_status(server)["in_rotation"], 10)
    before = readyz(server)["reads"]
    statuses: list[int] = []
    stop = threading.Event()
    readers = [threading.Thread(target=_read_under_load, args=(server, stop, statuses))
               for _ in range(4)]
    for reader in readers:
        reader.start()
    time.sleep(1.0)
    replica._run([replica._install().program("pg_ctl"), "-D", str(replica.pgdata),
                  "-m", "immediate", "stop"])  # killed: no shutdown checkpoint, sessions cut
    time.sleep(2.0)
    stop.set()
    for reader in readers:
        reader.join(60)
    after = readyz(server)["reads"]
    assert statuses and all(s == 200 for s in statuses), sorted(set(statuses))
    assert after["replicas"][0]["reads"] > before["replicas"][0]["reads"]  # it served, then died
    assert after["primary_reads"] > before["primary_reads"]  # and the primary took over
    assert not after["replicas"][0]["in_rotation"] and after["replicas"][0]["error"]
    replica.start()
    assert wait_for(lambda: replica_status(server)["in_rotation"], 20)


def test_analysts_read_from_a_healthy_replica(
    made: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import smarttrees
    from smarttrees.settings import get_settings

    primary, replica = made["primary"].url(), made["replica"].url()
    monkeypatch.setenv("SMARTTREES_DATABASE_URL", primary)
    monkeypatch.setenv("SMARTTREES_REPLICA_URLS", replica)
    monkeypatch.setenv("SMARTTREES_REPLICA_MAX_LAG_S", "1")
    get_settings.cache_clear()
    try:
        with smarttrees.connect() as db:
            assert db.url == replica and db.primary_url == primary
            assert len(db.trees(columns=["tree_code"])) >= 150
        with psycopg.connect(replica, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            try:
                with psycopg.connect(primary, autocommit=True) as writer:
                    writer.execute("UPDATE smarttrees.agencies SET name = name")
                assert wait_for(lambda: smarttrees.connect().url == primary, 15)
            finally:
                conn.execute("SELECT pg_wal_replay_resume()")
    finally:
        get_settings.cache_clear()
