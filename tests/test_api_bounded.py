"""Bounded work: the statement timeout, cancellation when the client leaves, a pool no kind of
request can take whole, and a readiness that tells "busy" from "unreachable".

The slow request is a real one: ``S_TOUCHES`` between each of 100,000 trees and a 400-vertex
polygon (GEOS computes a full relate per row, about 10 s on a small machine), seen in
PostgreSQL's ``pg_stat_activity`` as an active query of the API's sessions.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from gis_api.database import APPLICATION_NAME
from smarttrees.cluster import Cluster
from smarttrees.database import connect
from tests.fixtures.server import serve_database

pytestmark = pytest.mark.slow

TREES = 100_000


def star_polygon(vertices: int = 400) -> str:
    """WKT of a star-shaped polygon around every test tree (none on its boundary).

    The trees lie inside the test territory (tests.fixtures.databases.TEST_TERRITORY).
    """
    points = []
    for i in range(vertices + 1):
        angle = 2 * math.pi * (i % vertices) / vertices
        r = 1.0 + 0.05 * (i % 2)
        points.append(f"{105.75 + 0.6 * r * math.cos(angle):.5f} {21.35 + 0.3 * r * math.sin(angle):.5f}")
    return f"POLYGON(({', '.join(points)}))"


SLOW_FILTER = f"S_TOUCHES(geometry, {star_polygon()})"


@pytest.fixture(scope="module")
def many_trees(module_db_url: str) -> str:
    """The module's database with 100,000 trees on a grid."""
    with connect(module_db_url) as conn:
        conn.execute(
            "INSERT INTO admin_units (level, code, name, name_ascii, unit_type, valid_from, geom) "
            "VALUES ('commune', '00001', 'Một', 'mot', 'xã', '2025-07-01', "
            "ST_Multi(ST_MakeEnvelope(105.3, 21.3, 106.3, 22.3, 4326)))"
        )
        conn.execute(
            "INSERT INTO trees (tree_code, category, species_id, dbh_cm, commune_code, source, geom) "
            "SELECT 'F' || g, 'urban', 1 + g %% 5, 10 + g %% 40, '00001', 'test', "
            "ST_SetSRID(ST_MakePoint(105.3 + (g %% 1000) * 0.0009, 21.3 + (g / 1000) * 0.0009), 4326) "
            "FROM generate_series(1, %s) g",
            [TREES],
        )
        conn.execute("ANALYZE trees")
    return module_db_url


@pytest.fixture(scope="module")
def one_tree_path(many_trees: str) -> str:
    with connect(many_trees) as conn:
        row = conn.execute("SELECT min(id) FROM trees").fetchone()
    assert row is not None
    return f"/collections/trees/items/{row[0]}"


def running_slow_queries(cluster: Cluster, database: str) -> int:
    """How many of the API's backends in ``database`` are running a query other than a probe."""
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active' "
            "AND backend_type = 'client backend' AND application_name = %s "
            "AND query NOT LIKE 'SELECT 1%%'",
            [database, APPLICATION_NAME],
        ).fetchone()
    assert row is not None
    return int(row[0])


def wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def slow_requests(base: str, count: int, client_timeout: float) -> Iterator[threading.Thread]:
    """Start ``count`` slow filtered requests whose clients give up after ``client_timeout`` s."""

    def one() -> None:
        # The client gives up and leaves: that is the point.
        with httpx.Client(timeout=client_timeout) as client, contextlib.suppress(
            httpx.TimeoutException
        ):
            client.get(f"{base}/collections/trees/items", params={"filter": SLOW_FILTER})

    for _ in range(count):
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        yield thread


def dbname(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_query_past_the_statement_timeout_is_a_503_that_says_so(many_trees, one_tree_path):
    with serve_database(many_trees, statement_timeout_ms="300") as base:
        r = httpx.get(f"{base}/collections/trees/items", params={"filter": SLOW_FILTER},
                      timeout=30)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "ServiceUnavailable"
        assert "longer than 0.3 s" in body["description"]
        assert "narrow the request" in body["description"]
        # The connection went back to the pool in working order.
        assert httpx.get(f"{base}{one_tree_path}", timeout=10).status_code == 200


def test_a_request_whose_client_leaves_stops_in_postgresql(cluster, many_trees):
    with serve_database(many_trees, statement_timeout_ms="120000") as base:
        threads = list(slow_requests(base, 1, client_timeout=2.0))
        assert wait_for(lambda: running_slow_queries(cluster, dbname(many_trees)) == 1, 2.0)
        for thread in threads:
            thread.join()
        # The client has gone: its query must stop within a couple of seconds, not run on.
        assert wait_for(lambda: running_slow_queries(cluster, dbname(many_trees)) == 0, 2.0)


def test_readiness_says_busy_when_every_connection_is_taken(cluster, many_trees):
    with serve_database(
        many_trees, statement_timeout_ms="120000", pool_max_size="2", filter_concurrency="2"
    ) as base:
        threads = list(slow_requests(base, 2, client_timeout=6.0))
        assert wait_for(lambda: running_slow_queries(cluster, dbname(many_trees)) == 2, 3.0)
        r = httpx.get(f"{base}/readyz", timeout=10)
        assert r.status_code == 503
        assert r.json()["status"] == "busy"
        assert r.headers["Retry-After"].isdigit()
        for thread in threads:
            thread.join()
        assert wait_for(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, 5.0)


def test_filtered_requests_leave_connections_for_the_others(cluster, many_trees, one_tree_path):
    # Pool of 3: requests with a filter may hold 1 connection (3 - 2) at a time.
    with serve_database(many_trees, statement_timeout_ms="120000", pool_max_size="3") as base:
        threads = list(slow_requests(base, 3, client_timeout=8.0))
        assert wait_for(lambda: running_slow_queries(cluster, dbname(many_trees)) >= 1, 3.0)
        time.sleep(0.5)  # give the other two every chance to take a connection
        assert running_slow_queries(cluster, dbname(many_trees)) == 1
        r = httpx.get(f"{base}{one_tree_path}", timeout=5)
        assert r.status_code == 200
        assert httpx.get(f"{base}/readyz", timeout=5).json() == {"status": "ready"}
        for thread in threads:
            thread.join()
