"""Database connections: the configured server, or the managed local cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

from smarttrees.cluster import Cluster
from smarttrees.errors import ClusterError
from smarttrees.settings import Settings, get_settings

# Every SmartTrees table lives in these schemas; PostGIS stays in public.
SEARCH_PATH = "smarttrees,public"


def managed_cluster(settings: Settings | None = None) -> Cluster:
    """The local cluster the settings describe (whether or not a URL overrides it)."""
    settings = settings or get_settings()
    return Cluster(settings.data_dir, port=settings.db_port, dbname=settings.db_name,
                   origin=settings.data_dir_origin)


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


def with_search_path(conninfo: str) -> str:
    """The ``options`` of ``conninfo`` (a URL or key=value string) plus SmartTrees' search path."""
    options = conninfo_to_dict(conninfo).get("options") or ""
    return f"{options} -c search_path={SEARCH_PATH}".strip()


@contextmanager
def connect(url: str | None = None, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
    """Open one connection with SmartTrees' search path; commits on success, rolls back on error.

    Options already in ``url`` (a statement timeout, say) are kept.
    """
    url = url or database_url()
    conn = psycopg.connect(url, autocommit=autocommit, options=with_search_path(url))
    with conn:
        yield conn
