"""Fault injection: PostgreSQL restarted, or one of its backends killed, under a running server.

The module runs its own cluster (a temporary folder, like the session's) so that stopping it
never disturbs tests running in parallel on the session cluster. What must hold: during the
outage every failure is a 503 with ``Retry-After`` and ``/readyz`` says "unreachable"; once
PostgreSQL is back, no request fails — not the first one on each pooled connection, nor the next.

The load tests print the figures the issue asks for (seconds from the stop to the first answer
again, from PostgreSQL's return to that answer, 5xx during and after); run it with ``-s`` to see
them: ``pytest -s tests/test_faults.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from etl.species import load_species
from gis_api.database import APPLICATION_NAME
from smarttrees import schema
from smarttrees.cluster import Cluster
from smarttrees.database import connect
from tests.fixtures.server import seed_api_data, serve_database

pytestmark = pytest.mark.slow

POOL_SIZE = 4
# A mix of what clients ask: a page, one item, a filtered page, a collection document.
PATHS = (
    "/collections/trees/items?limit=5",
    "/collections/trees/items/1",
    "/collections/trees/items?filter=dbh_cm%20%3E%2020&limit=3",
    "/collections/stands/items",
)


@pytest.fixture(scope="module")
def own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL of this module's own, with the small API data set in database ``faults``."""
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-faults-"))
    folder.chmod(0o755)  # when root, the server runs as another user and must enter it
    cluster = Cluster(folder, dbname="faults", extra_config={"fsync": "off"})
    cluster.start()
    schema.upgrade(cluster.url())
    with connect(cluster.url()) as conn:
        load_species(conn)
    seed_api_data(cluster.url())
    yield cluster
    cluster.destroy()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(own_cluster: Cluster) -> Iterator[str]:
    with serve_database(own_cluster.url(), pool_min_size=str(POOL_SIZE),
                        pool_max_size=str(POOL_SIZE)) as base:
        yield base


def restart(cluster: Cluster, down_for: float = 0.0) -> float:
    """Stop PostgreSQL (fast: sessions are ended), wait ``down_for`` s, start it; when it is back."""
    cluster.stop()
    time.sleep(down_for)
    cluster.start()
    return time.monotonic()


def fill_the_pool(base: str) -> None:
    """Use every pooled connection once, so that each is a stale one after a restart."""
    barrier = threading.Barrier(POOL_SIZE * 2)

    def one() -> None:
        barrier.wait()
        httpx.get(f"{base}{PATHS[0]}", timeout=30)

    threads = [threading.Thread(target=one) for _ in range(POOL_SIZE * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_after_a_restart_while_idle_no_request_fails(own_cluster, server):
    fill_the_pool(server)
    restart(own_cluster)
    statuses = [httpx.get(f"{server}{path}", timeout=30).status_code
                for _ in range(3) for path in PATHS]
    assert statuses == [200] * len(statuses)


def test_during_the_outage_503_with_retry_after_and_readiness_unreachable(own_cluster, server):
    fill_the_pool(server)
    own_cluster.stop()
    try:
        r = httpx.get(f"{server}{PATHS[1]}", timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "ServiceUnavailable"
        assert r.headers["Retry-After"].isdigit()
        ready = httpx.get(f"{server}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["status"] == "unreachable"
    finally:
        own_cluster.start()
    assert httpx.get(f"{server}{PATHS[1]}", timeout=30).status_code == 200


@dataclass(frozen=True)
class Answer:
    """One response of the load loop: when it started and ended (monotonic s), its status."""

    started: float
    ended: float
    status: int
    retry_after: str | None


def load_loop(base: str, stop: threading.Event, answers: list[Answer], worker: int) -> None:
    """Ask for the PATHS in turn until ``stop`` is set; a transport error counts as status 0."""
    with httpx.Client(timeout=30) as client:
        i = worker
        while not stop.is_set():
            started = time.monotonic()
            try:
                r = client.get(f"{base}{PATHS[i % len(PATHS)]}")
                status, retry_after = r.status_code, r.headers.get("Retry-After")
            except httpx.TransportError:
                status, retry_after = 0, None
            answers.append(Answer(started, time.monotonic(), status, retry_after))
            i += 1
            time.sleep(0.02)


def under_load(base: str, fault: Callable[[], float]) -> tuple[list[Answer], float, float]:
    """Run the load loop, inject ``fault`` after a second, keep on for 4 s after it returns.

    ``fault`` returns when PostgreSQL accepts connections again. Returns the answers, when the
    fault began and when PostgreSQL was back (monotonic s).
    """
    answers: list[Answer] = []
    stop = threading.Event()
    workers = [threading.Thread(target=load_loop, args=(base, stop, answers, w))
               for w in range(POOL_SIZE)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        began = time.monotonic()
        back = fault()
        time.sleep(4.0)
    finally:
        stop.set()
        for w in workers:
            w.join()
    return answers, began, back


def check_and_report(what: str, answers: list[Answer], began: float, back: float) -> None:
    """Print the outage figures; assert 503s with Retry-After during it and no error after."""
    after_fault = [a for a in answers if a.ended > began]
    first_ok = next(a for a in after_fault if a.status == 200 and a.started >= back)
    during = [a for a in after_fault if a.started <= first_ok.ended]
    after = [a for a in after_fault if a.started > first_ok.ended]
    print(
        f"\nfaults, {what}: outage {first_ok.ended - began:.2f} s from the fault to the first "
        f"answer again ({first_ok.ended - back:.2f} s after PostgreSQL was back); during it "
        f"{sum(a.status == 503 for a in during)} × 503 and "
        f"{sum(a.status >= 500 and a.status != 503 for a in during)} other 5xx of {len(during)} "
        f"answers; after recovery {sum(a.status >= 500 for a in after)} 5xx of {len(after)}"
    )
    assert all(a.status == 200 or (a.status == 503 and a.retry_after) for a in during)
    assert after and all(a.status == 200 for a in after)


def test_a_restart_under_load_gives_503s_then_no_errors(own_cluster, server):
    answers, began, back = under_load(server, lambda: restart(own_cluster, down_for=1.0))
    check_and_report("restart (stop, 1 s, start)", answers, began, back)


def kill_an_api_backend(cluster: Cluster) -> float:
    """SIGKILL one backend of the server, as the OOM killer would: PostgreSQL then ends every
    session and reinitialises. Returns when it accepts connections again."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s LIMIT 1",
            [APPLICATION_NAME],
        ).fetchone()
    assert row is not None, "the server has no session open"
    os.kill(int(row[0]), signal.SIGKILL)
    time.sleep(0.05)  # the postmaster notices the crash
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(cluster.url(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return time.monotonic()
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise AssertionError("PostgreSQL did not come back within 30 s of a backend crash")


def test_a_backend_crash_under_load_gives_503s_then_no_errors(own_cluster, server):
    answers, began, back = under_load(server, lambda: kill_an_api_backend(own_cluster))
    check_and_report("backend killed (crash recovery)", answers, began, back)
