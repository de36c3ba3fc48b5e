"""SmartTrees core: settings, database, the managed local PostGIS, schema and domain vocabulary.

Analysts start with ``db = smarttrees.connect()`` (see :mod:`smarttrees.api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from smarttrees.api import Database

__version__ = "0.1.0"


def connect(url: str | None = None) -> Database:
    """Open the SmartTrees database for analysis (see :func:`smarttrees.api.connect`).

    The analyst API (geopandas, Arrow) is imported here, on first use, so that the command
    line and the server start without it.
    """
    from smarttrees.api import connect as open_database

    return open_database(url)
