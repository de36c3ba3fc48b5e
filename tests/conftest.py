"""Fixtures: a throwaway PostGIS cluster per test session, a fresh database per test.

The cluster is made by the same manager users run (``smarttrees.cluster``), in a temporary
folder, with fsync off. A template database holds the migrated schema, the species
catalogue and a territory (the demo province's extent, as a loaded boundary); each test that asks for ``db_url`` gets its own copy, dropped afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from etl.species import load_species
from smarttrees import schema
from smarttrees.cluster import Cluster
from smarttrees.database import connect
from tests.fixtures.databases import TEMPLATE, copied_database, store_test_territory

pytest_plugins = ["tests.fixtures.province", "tests.fixtures.server", "tests.fixtures.browser"]

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """A private PostgreSQL + PostGIS for this test session."""
    folder = Path(tempfile.mkdtemp(prefix="smarttrees-test-"))
    folder.chmod(0o755)  # when root, the server runs as another user and must enter it
    cluster = Cluster(folder, dbname=TEMPLATE, extra_config={"fsync": "off", "full_page_writes": "off"})
    cluster.start()
    url = cluster.url()
    schema.upgrade(url)
    with connect(url) as conn:
        load_species(conn)
        store_test_territory(conn)
    yield cluster
    cluster.destroy()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def db_url(cluster: Cluster) -> Iterator[str]:
    """URL of a fresh database (schema + species) for one test, dropped afterwards."""
    with copied_database(cluster, TEMPLATE) as url:
        yield url


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the test's own database (search path set)."""
    with connect(db_url) as connection:
        yield connection


@pytest.fixture
def settings_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point every SmartTrees component (CLI, server) at the test's database."""
    from smarttrees.settings import get_settings

    monkeypatch.setenv("SMARTTREES_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public reference data beside the repository; tests needing it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    return SHARED_DATA
