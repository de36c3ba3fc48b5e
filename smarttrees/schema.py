"""Versioned schema migrations (yoyo), applied by ``smarttrees db upgrade``."""

from __future__ import annotations

import logging
from importlib.resources import files

from yoyo import get_backend, read_migrations

# Yoyo logs every SQL step at INFO; a person wants the migration ids, which we print ourselves.
logging.getLogger("yoyo").setLevel(logging.WARNING)


def _yoyo_url(url: str) -> str:
    """Yoyo picks psycopg 3 from the ``postgresql+psycopg`` scheme.

    Its bookkeeping tables are pinned to ``public``: with the default search path they would
    move into the ``smarttrees`` schema (named like our database user) once it exists.
    """
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        url = f"postgresql+psycopg://{rest}"
    return url + ("&" if "?" in url else "?") + "schema=public"


def pending_migrations(url: str) -> list[str]:
    """Ids of the migrations not yet applied to the database."""
    migrations = read_migrations(str(files("smarttrees") / "migrations"))
    with get_backend(_yoyo_url(url)) as backend:  # closes its connection on exit
        return [m.id for m in backend.to_apply(migrations)]


def upgrade(url: str) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the ids applied."""
    migrations = read_migrations(str(files("smarttrees") / "migrations"))
    with get_backend(_yoyo_url(url)) as backend, backend.lock():
        todo = backend.to_apply(migrations)
        backend.apply_migrations(todo)
    return [m.id for m in todo]
