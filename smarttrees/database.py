"""Database connections: the configured server, or the managed local cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from smarttrees.cluster import Cluster
from smarttrees.errors import ClusterError
from smarttrees.settings import Settings, get_settings

# Every SmartTrees table lives in these schemas; PostGIS stays in public.
SEARCH_PATH = "smarttrees,public"


def managed_cluster(settings: Settings | None = None) -> Cluster:
    """The local cluster the settings describe (whether or not a URL overrides it)."""
    settings = settings or get_settings()
    return Cluster(settings.data_dir, port=settings.db_port, dbname=settings.db_name)


def database_url(settings: Settings | None = None, *, start: bool = True) -> str:
    """The URL every component connects to.

    With ``SMARTTREES_DATABASE_URL`` set that URL is returned unchanged and nothing local starts;
    otherwise the managed cluster is started when ``start`` is true.
    """
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    cluster = managed_cluster(settings)
    if start:
        cluster.start()
    elif not cluster.is_running():
        raise ClusterError(
            f"the local database is not running: `smarttrees db start` ({cluster.pgdata})"
        )
    return cluster.url()


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """Open one connection with SmartTrees' search path; commits on success, rolls back on error."""
    conn = psycopg.connect(
        url or database_url(), autocommit=autocommit, options=f"-c search_path={SEARCH_PATH}"
    )
    with conn:
        yield conn
