"""Load the provinces where people were stranded (``data/ioc/southern_provinces.csv``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg

UPSERT = """
INSERT INTO smarttrees.support_provinces (code, name, geom)
VALUES (%s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ON CONFLICT (code) DO UPDATE SET name = excluded.name, geom = excluded.geom
WHERE (support_provinces.name, support_provinces.geom)
      IS DISTINCT FROM (excluded.name, excluded.geom)
"""


def default_provinces() -> Path:
    """The list shipped in the repository's ``data/ioc/`` folder."""
    return Path(__file__).resolve().parent.parent / "data" / "ioc" / "southern_provinces.csv"


def read_provinces(path: Path | None = None) -> list[tuple[str, str, float, float]]:
    """(code, name, lon, lat) of each province in the list."""
    with (path or default_provinces()).open(encoding="utf-8-sig", newline="") as handle:
        return [
            (r["code"].strip(), r["name"].strip(), float(r["lon"]), float(r["lat"]))
            for r in csv.DictReader(handle)
        ]


def load_provinces(conn: psycopg.Connection[Any], path: Path | None = None) -> int:
    """Insert or refresh every province of the list; return how many it holds."""
    rows = read_provinces(path)
    with conn.cursor() as cur:
        cur.executemany(UPSERT, rows)
    return len(rows)
