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
from tests.fixtures.databases import (
    TEMPLATE,
    copied_database,
    finish_drops,
    store_test_territory,
)

pytest_plugins = ["tests.fixtures.province", "tests.fixtures.server", "tests.fixtures.browser"]

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# The longest test files, longest first (seconds of setup + calls + teardown summed from a
# whole run's `--durations`, session 8). Under `-n 2 --dist loadfile` a worker takes the next
# file when it is nearly done with its own; started last, one of these would leave the other
# worker idle for a minute at the end. They go first, in this order; the other files follow as
# xdist would order them (most tests first). Keep it roughly current: a rough order is enough.
LONGEST_FIRST = (
    "test_webmap_browser.py", "test_api_fuzz.py", "test_field_teams.py",
    "test_api_schemathesis.py", "test_field_checks_browser.py", "test_replicas.py",
    "test_care_webmap_browser.py", "test_backup.py", "test_walkthrough_city.py",
    "test_api_bounded.py", "test_field_browser.py", "test_faults.py", "test_cluster.py",
    "test_care_report_browser.py", "test_load_cli.py", "test_raster_mercator.py",
    "test_raster_serving.py", "test_raster_sample.py", "test_care_orders.py",
    "test_national_layout.py", "test_notebooks.py", "test_ioc_load.py", "test_load_limits.py",
    "test_demo.py", "test_raster_qgis.py", "test_data_folder.py", "test_load_fuzz.py",
)


def pytest_configure(config: pytest.Config) -> None:
    """Keep the file order of :func:`pytest_collection_modifyitems` under xdist's scheduler."""
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: by number of tests else
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST_FIRST` first, then the others by their number of tests.

    Every worker collects the same files and sorts them the same way (the sort is stable), so
    xdist sees one collection; the order of the tests within a file is kept.
    """
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    counts: dict[str, int] = {}
    for item in items:
        counts[item.path.name] = counts.get(item.path.name, 0) + 1

    def key(item: pytest.Item) -> tuple[int, int]:
        name = item.path.name
        return (rank[name], 0) if name in rank else (len(rank), -counts[name])

    items.sort(key=key)


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
    finish_drops()
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
